/**
 * Options of `watchJob` and `watchJobs`, with their defaults.
 *
 * @module
 */
import type {
  FetchLike,
  JobStatus,
  TokenSource,
  TransportName,
  WebSocketConstructor,
} from "./types.ts";

/** Options every watcher takes. */
export interface WatchOptions {
  /** Bearer token (or a function giving the current one): `?token=` on WebSocket URLs, `Authorization` elsewhere. */
  token?: TokenSource | undefined;
  /**
   * Gives a short-lived stream ticket, put in WebSocket and SSE URLs as `?ticket=`.
   * Called before every connection with the job id (several ids joined by commas;
   * `*` for an `all` watcher).
   */
  getTicket?: ((jobId: string) => Promise<string>) | undefined;
  /** Transports to use, in order of preference. Default `["websocket", "sse", "poll"]`. */
  transports?: TransportName[] | undefined;
  /** WebSocket implementation; default `globalThis.WebSocket` (absent in Node 20, which then uses SSE). */
  WebSocket?: WebSocketConstructor | undefined;
  /** `fetch` implementation; default `globalThis.fetch`. */
  fetch?: FetchLike | undefined;
  /** Ceiling of the first reconnect delay, in ms (full jitter). Default 500. */
  initialDelayMs?: number | undefined;
  /** Ceiling of every reconnect delay, in ms. Default 30,000. */
  maxDelayMs?: number | undefined;
  /** Failed attempts in a row before giving up (`max_reconnect_attempts`). Default 10; `Infinity` never gives up. */
  maxAttempts?: number | undefined;
  /** Failed attempts in a row, before any message and while the server answers plain HTTP, after which the next transport is tried. Default 2. */
  fallbackAfter?: number | undefined;
  /** Interval of WebSocket pings that measure quality, in ms (one is sent on connect). Default 15,000; 0 disables. */
  pingIntervalMs?: number | undefined;
  /** Time for a connection to be greeted by the server, in ms. Default 10,000. */
  connectTimeoutMs?: number | undefined;
  /**
   * Silence after which a connection is taken for dead and replaced, in ms. Default 75,000
   * (two and a half of the server's 30 s heartbeats); 0 disables.
   */
  idleTimeoutMs?: number | undefined;
  /** Long-poll wait, in seconds (the server allows up to 60). Default 25. */
  pollWaitSeconds?: number | undefined;
  /** Closes the watcher when aborted. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link watchJob}. */
export interface WatchJobOptions extends WatchOptions {
  /** Sequence already seen: events after it are replayed. Default 0 (every retained event). */
  since?: number | undefined;
  /** Stop (and emit `finished`) once the job ends. Default true. */
  closeOnFinish?: boolean | undefined;
}

/** Options of {@link watchJobs}: name `jobs`, or set `all`. */
export interface WatchJobsOptions extends WatchOptions {
  /** Jobs to follow over one multi-job connection. */
  jobs?: (string | number)[] | undefined;
  /** Follow every job the caller may see (new ones included), from now on. */
  all?: boolean | undefined;
  /** With `all`: only jobs of this kind. */
  kind?: string | undefined;
  /** With `all`: only jobs in this status. */
  status?: JobStatus | undefined;
  /** Sequence already seen, for every job or per job id. Default 0. */
  since?: number | Record<string, number> | undefined;
  /** Stop once every named job has ended (never for `all`). Default true. */
  closeOnFinish?: boolean | undefined;
}

/** Every option resolved. */
export interface ResolvedWatchOptions {
  readonly token: TokenSource | undefined;
  readonly getTicket: ((jobId: string) => Promise<string>) | undefined;
  readonly transports: readonly TransportName[];
  readonly WebSocket: WebSocketConstructor | undefined;
  readonly fetch: FetchLike;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxAttempts: number;
  readonly fallbackAfter: number;
  readonly pingIntervalMs: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly pollWaitSeconds: number;
  readonly signal: AbortSignal | undefined;
}

/** Transports in the default order of preference. */
export const DEFAULT_TRANSPORTS: readonly TransportName[] = ["websocket", "sse", "poll"];

/**
 * Fills in defaults and drops transports this runtime cannot use.
 *
 * @throws {TypeError} when there is no `fetch`
 */
export function resolveWatchOptions(options: WatchOptions): ResolvedWatchOptions {
  const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
  if (typeof fetchImpl !== "function") throw new TypeError("No fetch: pass options.fetch");
  const WebSocketImpl = options.WebSocket ??
    (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  const transports = (options.transports ?? DEFAULT_TRANSPORTS).filter((t, i, all) =>
    all.indexOf(t) === i && (t !== "websocket" || WebSocketImpl !== undefined)
  );
  return {
    token: options.token,
    getTicket: options.getTicket,
    transports,
    WebSocket: WebSocketImpl,
    fetch: fetchImpl,
    initialDelayMs: options.initialDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 30_000,
    maxAttempts: options.maxAttempts ?? 10,
    fallbackAfter: Math.max(1, options.fallbackAfter ?? 2),
    pingIntervalMs: options.pingIntervalMs ?? 15_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 75_000,
    // The server holds a long-poll for at most 60 s (and whole seconds).
    // At least 1: a wait of 0 would ask again at once, as fast as the server answers.
    pollWaitSeconds: Number.isFinite(options.pollWaitSeconds)
      ? Math.min(60, Math.max(1, Math.floor(options.pollWaitSeconds!)))
      : 25,
    signal: options.signal,
  };
}
