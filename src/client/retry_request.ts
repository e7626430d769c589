/**
 * Sending a request until it lands: network errors, 429 and 5xx are retried with
 * backoff (honouring `Retry-After`), always with the same `Idempotency-Key`, so a retry
 * of a publish whose reply was lost writes nothing twice. Other 4xx fail at once with
 * the server's error.
 *
 * @module
 */
import { backoffDelay, sleep } from "./backoff.ts";
import { errorFromResponse, JobwireError, unreachable } from "./errors.ts";
import { authHeaders, Deadline, type HttpContext, joinUrl } from "./http.ts";

/** How a request is retried. */
export interface RetryPolicy {
  /** Retries after the first try. */
  retries: number;
  /** Ceiling of the first retry delay, in ms (full jitter). */
  initialDelayMs: number;
  /** Ceiling of every retry delay, in ms (also caps `Retry-After`). */
  maxDelayMs: number;
  /** Longest wait for one try's answer, in ms, before it counts as lost. */
  timeoutMs: number;
}

/** One logical request. */
export interface RetriedRequest {
  method: string;
  path: string;
  body?: unknown;
  /** Sent on every try of this request. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/**
 * Sends `request` and returns the JSON reply.
 *
 * @param onRetry told before each retry, with the wait before it (for logging)
 * @throws {JobwireError} the server's error for a refusal (4xx other than 429), or the
 *   last failure once the retries are used up
 */
export async function sendWithRetry<T>(
  http: HttpContext,
  request: RetriedRequest,
  policy: RetryPolicy,
  onRetry?: (attempt: number, error: JobwireError, delayMs: number) => void,
): Promise<T> {
  const url = joinUrl(http.baseUrl, request.path);
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  for (let attempt = 0;; attempt++) {
    let failure: JobwireError;
    let waitMs: number | undefined;
    const deadline = new Deadline(policy.timeoutMs, request.signal);
    try {
      const headers = await authHeaders(http.token, {
        accept: "application/json",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(request.idempotencyKey === undefined
          ? {}
          : { "idempotency-key": request.idempotencyKey }),
      });
      const response = await http.fetch(url, {
        method: request.method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: deadline.signal,
      });
      if (response.ok) {
        const text = await response.text();
        return (text === "" ? undefined : JSON.parse(text)) as T;
      }
      failure = await errorFromResponse(response);
      if (!failure.retryable) throw failure;
      waitMs = retryAfterMs(response.headers.get("retry-after"));
    } catch (caught) {
      const error = deadline.explain(caught, () => unreachable(http.baseUrl, caught));
      if (!(error instanceof JobwireError) || !error.retryable) throw error;
      // A lost reply (the body cut off) is retried like a lost request: the key makes it safe.
      failure = error;
    } finally {
      deadline.clear();
    }
    if (attempt >= policy.retries) throw failure;
    const backoff = backoffDelay(attempt + 1, policy);
    const delayMs = Math.min(policy.maxDelayMs, Math.max(backoff, waitMs ?? 0));
    onRetry?.(attempt + 1, failure, delayMs);
    await sleep(delayMs, request.signal);
  }
}

/** `Retry-After` in ms (seconds or an HTTP date), or `undefined`. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
