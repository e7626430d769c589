/**
 * Wire types the client reads and the small runtime interfaces it depends on. Nothing
 * here is specific to Deno, Node or browsers.
 *
 * @module
 */

/** A job status (DESIGN §2). */
export type JobStatus = "pending" | "queued" | "running" | "completed" | "failed" | "cancelled";

/** Statuses after which a job accepts no more events. */
export const TERMINAL_STATUSES: readonly JobStatus[] = ["completed", "failed", "cancelled"];

/** Whether `status` is final. */
export function isTerminalStatus(status: string | undefined | null): boolean {
  return TERMINAL_STATUSES.includes(status as JobStatus);
}

/** The error recorded on a job by an `error` event or a failed status. */
export interface JobErrorInfo {
  error: string;
  error_type: string;
  details?: unknown;
}

/** A job's snapshot as the server sends it, kept up to date by the watcher. */
export interface JobSnapshot {
  id: string;
  kind: string | null;
  owner: string | null;
  status: JobStatus;
  /** Percent complete, 0–100. */
  progress: number;
  stage: string | null;
  message: string | null;
  /** Seconds until completion, or `null` when unknown. */
  eta_seconds: number | null;
  created_at: string;
  queued_at: string | null;
  started_at: string | null;
  updated_at: string;
  completed_at: string | null;
  result?: unknown;
  has_result?: boolean;
  error: JobErrorInfo | null;
  metadata: Record<string, unknown>;
  /** Sequence of the newest event this snapshot reflects. */
  last_sequence: number;
  first_sequence?: number;
  stalled?: boolean;
}

/**
 * The one message shape of every transport. Persisted events have a number in
 * `sequence`; session messages (`connection`, `heartbeat`, `pong`…) have `null`.
 */
export interface Envelope<D = Record<string, unknown>> {
  type: string;
  job_id: string | null;
  sequence: number | null;
  timestamp: string;
  data: D;
}

/** A persisted event: an envelope with a job and a sequence. */
export interface JobEvent<D = Record<string, unknown>> extends Envelope<D> {
  job_id: string;
  sequence: number;
}

/** A page of `GET /jobs/:id/events` (JSON). */
export interface EventsPage {
  job_id: string;
  events: JobEvent[];
  last_sequence: number;
  next_since: number;
  first_available: number;
  truncated: boolean;
  has_more: boolean;
  status: JobStatus;
}

/** How a watcher receives events. */
export type TransportName = "websocket" | "sse" | "poll";

/** Where a watcher's connection stands. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** Round-trip quality of a WebSocket (`unknown` before the first pong and on other transports). */
export type ConnectionQuality = "excellent" | "good" | "fair" | "poor" | "unknown";

/** The part of a message event the client reads. */
export interface MessageLike {
  data: unknown;
}

/** The part of a close event the client reads. */
export interface CloseLike {
  code: number;
  reason: string;
}

/**
 * The part of the WHATWG `WebSocket` the client uses, so a wrapper or another
 * implementation (such as the `ws` package in Node) can be injected.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: MessageLike) => void) | null;
  onclose: ((event: CloseLike) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A constructor of {@link WebSocketLike} sockets, such as `globalThis.WebSocket`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The `fetch` function the client calls (the global one unless injected). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** A bearer token, or a function giving a fresh one for each connection or request. */
export type TokenSource = string | (() => string | Promise<string>);
