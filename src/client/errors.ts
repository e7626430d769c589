/**
 * The one error type the client throws and emits: the server's `{error: {code, message,
 * details}}` for refused requests, or a client-side code for network trouble.
 *
 * @module
 */

/**
 * Client-side error codes (the server's codes, such as `job_not_found` or
 * `validation_error`, pass through as they are).
 */
export type ClientErrorCode =
  | "network_error"
  | "connect_failed"
  | "connection_lost"
  | "gap_fill_failed"
  | "invalid_response"
  | "closed";

/** An error from the server or from talking to it. */
export class JobwireError extends Error {
  override name = "JobwireError";
  /** The server's stable error code, or a {@link ClientErrorCode}. */
  readonly code: string;
  /** HTTP status of the refusal, or `null` when no response came. */
  readonly status: number | null;
  /** The server's `details` (failing fields of a validation error, for instance). */
  readonly details: unknown;

  constructor(
    code: string,
    message: string,
    options: { status?: number | null; details?: unknown; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? null;
    this.details = options.details;
  }

  /** Whether retrying the same request later may succeed (network, 429 and 5xx). */
  get retryable(): boolean {
    return this.status === null || this.status === 429 || this.status >= 500;
  }
}

/** Reads a refused response into a {@link JobwireError} (the body is consumed). */
export async function errorFromResponse(response: Response): Promise<JobwireError> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body was lost; the status is enough.
  }
  try {
    const body = JSON.parse(text) as {
      error?: { code?: unknown; message?: unknown; details?: unknown };
    };
    const error = body.error;
    if (error !== undefined && typeof error.code === "string") {
      return new JobwireError(
        error.code,
        typeof error.message === "string" ? error.message : `HTTP ${response.status}`,
        { status: response.status, details: error.details },
      );
    }
  } catch {
    // Not the JSON error shape (a proxy's page, for instance).
  }
  return new JobwireError(
    `http_${response.status}`,
    `The server answered ${response.status}${text === "" ? "" : `: ${text.slice(0, 200)}`}`,
    { status: response.status },
  );
}

/** Whether `error` is an abort (our own `close()`), not a failure. */
export function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError" ||
    (typeof DOMException !== "undefined" && error instanceof DOMException &&
      error.name === "AbortError");
}

/**
 * The HTTP status the server answers with each error code a stream reports in a message or
 * a close, so that an error has the same `status` whatever the transport it came by.
 */
export const STREAM_ERROR_STATUS: Readonly<Record<string, number>> = {
  job_gone: 410,
  job_not_found: 404,
  forbidden: 403,
  unauthorized: 401,
  invalid_token: 401,
  token_expired: 401,
};

/** `error` itself when it is a {@link JobwireError}, else wrapped with `code`. */
export function asJobwireError(error: unknown, code: ClientErrorCode): JobwireError {
  return error instanceof JobwireError
    ? error
    : new JobwireError(code, String(error), { cause: error });
}

/**
 * The `network_error` of a request that got no response: `Cannot reach <server>: <why>`,
 * where the reason is the runtime's innermost one without the request's own address
 * (Deno: `tcp connect error: Connection refused (os error 111)`; browsers say only
 * `Failed to fetch`).
 */
export function unreachable(baseUrl: string, error: unknown): JobwireError {
  let server = baseUrl;
  try {
    server = new URL(baseUrl).origin;
  } catch {
    // Shown as given.
  }
  return new JobwireError("network_error", `Cannot reach ${server}: ${networkReason(error)}`, {
    cause: error,
  });
}

/** The most specific words of a network failure. */
export function networkReason(error: unknown): string {
  let inner = error;
  for (let depth = 0; depth < 5 && inner instanceof Error && inner.cause !== undefined; depth++) {
    inner = inner.cause;
  }
  const message = inner instanceof Error ? inner.message : String(inner);
  return message
    // "error sending request for url (…)", or "… from 127.0.0.1:1234 for URL (…)"
    .replace(/^error sending request (?:from \S+ )?for url \([^)]*\): /i, "")
    .replace(/^client error \(\w+\): /, "") || "no response";
}
