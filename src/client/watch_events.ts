/**
 * The events a watcher emits, by name, with their payloads.
 *
 * @module
 */
import type { JobwireError } from "./errors.ts";
import type {
  ConnectionQuality,
  Envelope,
  JobEvent,
  JobSnapshot,
  JobStatus,
  TransportName,
} from "./types.ts";

/** Event name → payload of everything a {@link JobWatcher} emits. */
export interface WatcherEvents {
  /** Every persisted event, in sequence order per job, each exactly once. */
  event: JobEvent;
  /** A connection is established and the server has greeted it. */
  connected: { transport: TransportName };
  /** An established connection was lost (the watcher reconnects unless told otherwise). */
  disconnected: { transport: TransportName; code: number | null; reason: string };
  /** The next connection attempt, after `delayMs`. Attempts restart at 1 after a success. */
  reconnecting: { attempt: number; delayMs: number; transport: TransportName };
  /** Something went wrong: a failed attempt, a refused stream, a server `error` message. */
  error: JobwireError;
  /** `maxAttempts` attempts failed in a row; the watcher stopped (`reconnect()` restarts it). */
  max_reconnect_attempts: { attempts: number };
  /** The round-trip quality changed (WebSocket only). */
  quality: { quality: ConnectionQuality; rttMs: number | null };
  /** A job's snapshot changed (from the server's greeting or a state-changing event). */
  snapshot: { job_id: string; job: JobSnapshot };
  /** The server's greeting (`connection` or `subscribed`), as received. */
  connection: Envelope;
  /** A job reached a terminal status and every event up to it was delivered. */
  finished: { job_id: string; status: JobStatus; job: JobSnapshot | undefined };
  /** The watcher moved to another transport (`from` is `null` on the first connection). */
  transport: { from: TransportName | null; to: TransportName; reason: string };
  /** Missing events were fetched over HTTP: `from`–`to` was the gap, `filled` the number got. */
  gap: { job_id: string; from: number; to: number; filled: number };
  /** Events the watcher asked for are no longer retained; it continues from `first_available`. */
  truncated: { job_id: string; since: number; first_available: number };
  /** A job appeared on an `all` watcher. */
  created: { job_id: string; job: JobSnapshot };
  /** A job was deleted or purged; the watcher stops following it. */
  deleted: { job_id: string; reason: string };
  /** The watcher stopped for good (closed, finished, refused, or out of attempts). */
  closed: { reason: string };
}

/** Every name of {@link WatcherEvents}, to tell a misspelt or event-type name at run time. */
export const WATCHER_EVENT_NAMES: ReadonlySet<string> = new Set<keyof WatcherEvents>([
  "event",
  "connected",
  "disconnected",
  "reconnecting",
  "error",
  "max_reconnect_attempts",
  "quality",
  "snapshot",
  "connection",
  "finished",
  "transport",
  "gap",
  "truncated",
  "created",
  "deleted",
  "closed",
]);
