/**
 * What every transport shares: the target of a stream, the callbacks a connection
 * reports through, and the stream URL's query.
 *
 * @module
 */
import type { JobwireError } from "./errors.ts";
import type { HttpContext, Query } from "./http.ts";
import type { Envelope, JobStatus, TransportName, WebSocketConstructor } from "./types.ts";

/** What a watcher follows. */
export type StreamTarget =
  | { kind: "job"; jobId: string; closeOnFinish: boolean }
  | { kind: "jobs"; jobIds: string[]; closeOnFinish: boolean }
  | { kind: "all"; filter: { kind?: string; status?: JobStatus } };

/** The job ids a target names (none for `all`). */
export function targetJobIds(target: StreamTarget): string[] {
  switch (target.kind) {
    case "job":
      return [target.jobId];
    case "jobs":
      return target.jobIds;
    case "all":
      return [];
  }
}

/** How a connection ended. */
export interface CloseInfo {
  /** Whether the connection opened (the socket opened, or the stream answered 200). */
  opened: boolean;
  /** WebSocket close code, or the `close_code` an HTTP stream ended with. */
  code: number | null;
  reason: string;
  /** The server's error code, when it said why it ends the stream (`job_gone`…). */
  errorCode?: string;
  error?: JobwireError;
  /** The transport cannot work here (wrong content type, no streaming body…). */
  unsupported?: boolean;
}

/** Callbacks of one connection. `close` is called at most once, never after `close()`. */
export interface ConnectionHandlers {
  open(): void;
  message(message: Envelope): void;
  close(info: CloseInfo): void;
}

/** Everything needed to open a connection. */
export interface ConnectOptions {
  http: HttpContext;
  target: StreamTarget;
  /** Where each named job resumes (its last delivered sequence). */
  cursors: ReadonlyMap<string, number>;
  /** Resolved bearer token, for transports that must put it in the URL. */
  token: string | undefined;
  ticket: string | undefined;
  WebSocket: WebSocketConstructor | undefined;
  /** Long-poll wait, in seconds. */
  pollWaitSeconds: number;
}

/** One open (or opening) connection. */
export interface Connection {
  readonly transport: TransportName;
  /** Sends a client message; false when the transport cannot send or is not open. */
  send(message: Record<string, unknown>): boolean;
  /** Closes without calling `handlers.close`. Idempotent. */
  close(): void;
}

/** Opens a connection of one transport. */
export type Connector = (options: ConnectOptions, handlers: ConnectionHandlers) => Connection;

/**
 * The jobs a connection asks for: those of the target still followed (a job deleted
 * meanwhile is left out, or the server would refuse the whole stream for it), or all of
 * them when none is left, for the server to say why.
 */
export function followedJobIds(options: ConnectOptions): string[] {
  const all = targetJobIds(options.target);
  if (options.target.kind !== "jobs") return all;
  const live = all.filter((id) => options.cursors.has(id));
  return live.length > 0 ? live : all;
}

/**
 * Path and query of a stream (WebSocket or SSE). `since` goes in the query for
 * WebSocket and multi-job streams; single-job SSE sends `Last-Event-ID` instead.
 */
export function streamLocation(
  options: ConnectOptions,
  transport: "websocket" | "sse",
): { path: string; query: Query } {
  const { target, cursors } = options;
  const query: Query = { ticket: options.ticket };
  if (transport === "websocket") {
    query.token = options.token;
    // Several envelopes a message, one per line: a replay takes a few messages, not one each.
    query.batch = 1;
  }
  if (target.kind === "all") {
    query.all = 1;
    query.kind = target.filter.kind;
    query.status = target.filter.status;
    return { path: transport === "websocket" ? "/ws" : "/events", query };
  }
  if (target.closeOnFinish) query.close_on_finish = 1;
  if (target.kind === "job") {
    if (transport === "websocket") query.since = cursors.get(target.jobId) ?? 0;
    const path = `/jobs/${encodeURIComponent(target.jobId)}`;
    return { path: transport === "websocket" ? `/ws${path}` : `${path}/events`, query };
  }
  const ids = followedJobIds(options);
  query.jobs = ids.join(",");
  query.since = ids.map((id) => `${id}:${cursors.get(id) ?? 0}`).join(",");
  return { path: transport === "websocket" ? "/ws" : "/events", query };
}
