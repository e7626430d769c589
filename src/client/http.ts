/**
 * URLs and single HTTP requests to the server: joining paths onto a base URL (which may
 * carry a path prefix behind a proxy), the bearer token, and reading JSON replies.
 *
 * @module
 */
import { errorFromResponse, isAbort, JobwireError, unreachable } from "./errors.ts";
import type { EventsPage, FetchLike, JobSnapshot, TokenSource } from "./types.ts";

/** Query parameters; `undefined` values are left out. */
export type Query = Record<string, string | number | undefined>;

/**
 * `base` + `path` + `query`. The base may end with a slash or carry a path prefix
 * (`https://example.com/jobwire`).
 */
export function joinUrl(base: string, path: string, query: Query = {}): string {
  const url = new URL(base.replace(/\/+$/, "") + path);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  return url.toString();
}

/**
 * Checks a server's base URL as a caller gave it: an absolute `http:` or `https:` URL. A
 * mistyped one (`localhost:8080`, `http//host`) would otherwise fail every request as if
 * the server were down, and be retried as such.
 *
 * @throws {TypeError} naming the URL and the form expected
 */
export function checkBaseUrl(baseUrl: string): void {
  const protocol = URL.canParse(baseUrl) ? new URL(baseUrl).protocol : undefined;
  if (protocol !== "http:" && protocol !== "https:") {
    throw new TypeError(
      `The server's URL must be an absolute http(s) URL, such as http://localhost:8080, not ${
        JSON.stringify(String(baseUrl)).slice(0, 200)
      }`,
    );
  }
}

/**
 * A job id as the server knows it: text, or a whole number written as text (`123` is job
 * `"123"`, as channels keyed by a database id name their jobs).
 *
 * @param where the function checking, for the message
 * @throws {TypeError} for anything else, or an empty id
 */
export function jobIdOf(jobId: unknown, where: string): string {
  if (typeof jobId === "number" && Number.isSafeInteger(jobId) && jobId >= 0) {
    return String(jobId);
  }
  if (typeof jobId !== "string" || jobId === "") {
    throw new TypeError(
      `${where} needs a job id: text such as "build-42" (or a whole number), not ${
        typeof jobId === "string" ? '""' : String(JSON.stringify(jobId) ?? jobId).slice(0, 80)
      }`,
    );
  }
  return jobId;
}

/** The WebSocket URL of an HTTP one (`http:` → `ws:`, `https:` → `wss:`). */
export function toWebSocketUrl(url: string): string {
  return url.replace(/^http(s?):/i, "ws$1:");
}

/** The current token of a {@link TokenSource}. */
export async function resolveToken(source: TokenSource | undefined): Promise<string | undefined> {
  if (source === undefined) return undefined;
  return typeof source === "string" ? source : await source();
}

/** Headers of a request with an optional bearer token. */
export async function authHeaders(
  token: TokenSource | undefined,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  const value = await resolveToken(token);
  return value === undefined ? { ...extra } : { ...extra, authorization: `Bearer ${value}` };
}

/** What every request of a watcher or reporter needs. */
export interface HttpContext {
  baseUrl: string;
  token: TokenSource | undefined;
  fetch: FetchLike;
}

/**
 * Longest wait for a plain request's answer, in ms (added to a long-poll's own wait). A
 * request that hangs would otherwise hold a watcher's queue forever.
 */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * One GET that answers JSON.
 *
 * @param signal aborts the request (the abort error is rethrown as is)
 * @param waitMs how long the server may hold the request before answering (long-poll)
 * @throws {JobwireError} the server's error for a refusal, `network_error` when no
 *   response came in time, `invalid_response` when the body is not JSON
 */
export async function getJson<T>(
  http: HttpContext,
  path: string,
  query: Query = {},
  signal?: AbortSignal,
  waitMs = 0,
): Promise<T> {
  const deadline = new Deadline(waitMs + REQUEST_TIMEOUT_MS, signal);
  try {
    let response: Response;
    try {
      response = await http.fetch(joinUrl(http.baseUrl, path, query), {
        headers: await authHeaders(http.token, { accept: "application/json" }),
        signal: deadline.signal,
      });
    } catch (error) {
      throw deadline.explain(error, () => unreachable(http.baseUrl, error));
    }
    if (!response.ok) throw await errorFromResponse(response);
    try {
      return await response.json() as T;
    } catch (error) {
      throw deadline.explain(
        error,
        () =>
          new JobwireError("invalid_response", "The server's reply is not JSON", { cause: error }),
      );
    }
  } finally {
    deadline.clear();
  }
}

/** An abort signal that fires after `ms` or when `parent` aborts, whichever comes first. */
export class Deadline {
  readonly signal: AbortSignal;
  #timedOut = false;
  #ms: number;
  #timer: ReturnType<typeof setTimeout>;
  #parent: AbortSignal | undefined;
  #forward: () => void;

  constructor(ms: number, parent?: AbortSignal) {
    const abort = new AbortController();
    this.signal = abort.signal;
    this.#ms = ms;
    this.#parent = parent;
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      abort.abort();
    }, ms);
    this.#forward = () => abort.abort(parent?.reason);
    if (parent?.aborted) this.#forward();
    parent?.addEventListener("abort", this.#forward, { once: true });
  }

  /**
   * What a failed request should throw: the parent's abort as is, a timeout as a
   * `network_error`, anything else as `otherwise` makes it.
   */
  explain(error: unknown, otherwise: () => JobwireError): unknown {
    if (this.#timedOut) {
      return new JobwireError("network_error", `No answer within ${this.#ms} ms`, {
        cause: error,
      });
    }
    if (isAbort(error) || error instanceof JobwireError) return error;
    return otherwise();
  }

  /** Whether the timer fired (not the parent signal). */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** Cancels the timer. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#parent?.removeEventListener("abort", this.#forward);
  }
}

/** Path of a job (`/jobs/:id`). */
export function jobPath(jobId: string): string {
  return `/jobs/${encodeURIComponent(jobId)}`;
}

/** `GET /jobs/:id`. */
export function fetchJob(
  http: HttpContext,
  jobId: string,
  signal?: AbortSignal,
): Promise<JobSnapshot> {
  return getJson<JobSnapshot>(http, jobPath(jobId), {}, signal);
}

/**
 * `GET /jobs/:id/events?since=&limit=` (JSON page), optionally long-polling `wait`
 * seconds for the next event.
 */
export function fetchEventsPage(
  http: HttpContext,
  jobId: string,
  options: { since: number; limit?: number; wait?: number; ticket?: string },
  signal?: AbortSignal,
): Promise<EventsPage> {
  return getJson<EventsPage>(
    http,
    `${jobPath(jobId)}/events`,
    {
      since: options.since,
      limit: options.limit ?? 1000,
      wait: options.wait,
      ticket: options.ticket,
    },
    signal,
    (options.wait ?? 0) * 1000,
  );
}
