/**
 * The storage boundary: everything the server needs from a database, so another SQLite
 * binding (or another database) replaces it in one file.
 *
 * @module
 */
import type { JobRecord } from "../jobs/job.ts";
import type { NewEvent } from "../jobs/events.ts";
import type { StoredEvent } from "../jobs/envelope.ts";
import type { JobStatus } from "../jobs/status.ts";

/** A job as its creator describes it. */
export interface NewJob {
  id: string;
  kind: string | null;
  owner: string | null;
  metadata: Record<string, unknown>;
}

/**
 * What {@link EventStore.createJob} did: made the job, found the id taken, or found the key
 * had made a job before (`jobId`, which may be gone since).
 */
export type CreateOutcome =
  | { ok: true; job: JobRecord }
  | { ok: false; code: "exists" }
  | { ok: false; code: "keyed"; jobId: string };

/** Events for one job that must commit together or not at all. */
export interface AppendRequest {
  jobId: string;
  events: NewEvent[];
  /** A retried request with the same key returns the first request's sequences. */
  idempotencyKey?: string;
  /** The sequence the first event must receive; lower means a retry, higher a conflict. */
  expectedSequence?: number;
  /**
   * The stall sweeper's warning: the events are written, and the job marked stalled after
   * them, only if the job is still running, not marked yet, and has had no event since
   * `quietSince` (ms since the epoch) when the transaction reads it; otherwise nothing is
   * written (an event that came after the sweep looked has cleared the stall).
   */
  stalledIfQuietSince?: number;
  /** Checked against the job as it stands in the transaction; false refuses (forbidden). */
  authorize?: (job: JobRecord) => boolean;
}

/** A committed event with the job as it stood right after it. */
export interface CommittedEvent {
  event: StoredEvent;
  job: JobRecord;
  /** When it was committed (ISO 8601), as its envelope says. */
  timestamp: string;
  /** The event's data as JSON text, as its envelope holds it (`envelopesOf`). */
  data: string;
}

/** Why an append was refused; nothing of the request was written. */
export type AppendRefusal = {
  ok: false;
  code:
    | "job_not_found"
    | "job_gone"
    | "job_finished"
    | "invalid_transition"
    | "sequence_conflict"
    | "idempotency_key_reused"
    | "forbidden";
  message: string;
  /** What the client may act on (for `job_finished`, the status the job ended in). */
  details?: Record<string, unknown>;
};

/** What an append did. `replayed` means an earlier identical request already wrote it. */
export type AppendOutcome =
  | {
    ok: true;
    sequences: number[];
    committed: CommittedEvent[];
    job: JobRecord;
    replayed: boolean;
  }
  | AppendRefusal;

/** Filters and page of `listJobs`. */
export interface JobQuery {
  status?: JobStatus;
  kind?: string;
  owner?: string;
  /** Opaque cursor from a previous page. */
  cursor?: string;
  limit: number;
  /** Only jobs of this owner or with one of these ids (a principal that may not see all). */
  visibleTo?: { owner: string | null; ids: readonly string[] };
}

/** One page of jobs, newest first. */
export interface JobPage {
  jobs: JobRecord[];
  next_cursor: string | null;
}

/** Limits and ages the sweeper applies, in milliseconds. */
export interface SweepPolicy {
  /** Terminal jobs older than this are purged. */
  retentionMs: number;
  /** Tombstones older than this are forgotten (the id then answers 404). */
  tombstoneMs: number;
  /** Idempotency keys older than this are forgotten. */
  idempotencyMs: number;
  /** Most jobs purged per sweep, so one sweep never holds the write lock for long. */
  batch: number;
}

/** Characters one read of a job's events aims at: large events are read a few at a time. */
const PAGE_CHARS = 4 * 1024 * 1024;
/** Most rows of the first read, before any event's size is known. */
const FIRST_PAGE = 64;
/** Most rows of one read. */
const MOST_PAGE = 1000;

/**
 * Hands `take` a job's events after `after` (at most `limit`), oldest first, until it
 * returns false. They are read in pages of about {@link PAGE_CHARS}: the first as if every
 * event were as large as `largest` allows, the next ones of the largest event read so far.
 * A request that stops early (a page of events cut at its size, a replay whose connection
 * closed) has not read a thousand events of 64 KiB, or of 16 MiB, to get there.
 *
 * @param largest the largest event the store may hold (`--max-event-bytes`)
 */
export function readEventsWhile(
  store: Pick<EventStore, "readEvents">,
  jobId: string,
  after: number,
  limit: number,
  take: (event: StoredEvent) => boolean,
  largest: number = PAGE_CHARS / FIRST_PAGE,
): void {
  const rowsOf = (size: number) => Math.max(1, Math.floor(PAGE_CHARS / Math.max(1, size)));
  let seen = 0;
  let cursor = after;
  let left = limit;
  while (left > 0) {
    const rows = Math.min(
      left,
      seen === 0 ? Math.min(FIRST_PAGE, rowsOf(largest)) : Math.min(MOST_PAGE, rowsOf(seen)),
    );
    const page = store.readEvents(jobId, cursor, rows);
    for (const event of page) {
      if (event.envelope.length > seen) seen = event.envelope.length;
      if (!take(event)) return;
    }
    if (page.length < rows) return;
    left -= rows;
    cursor = page.at(-1)!.sequence;
  }
}

/** The persistent store of jobs and their events. */
export interface EventStore {
  /** Creates a job; `exists` when a live job has that id. Clears a tombstone of that id. */
  /**
   * Creates a job. With `key` (the caller's Idempotency-Key, with the caller), a key that
   * made a job before makes none and names that job (which may be gone since).
   */
  createJob(job: NewJob, now: number, key?: string): CreateOutcome;
  getJob(id: string): JobRecord | undefined;
  /**
   * Runs `read` so that every read in it sees the same committed state: a commit made
   * meanwhile by another connection (another isolate deleting the job) lands before or after
   * all of them, never between a job's row and its events. `read` must not write.
   */
  readConsistently<T>(read: () => T): T;
  /**
   * Runs `write` (one of this store's writes) without waiting for a write lock another
   * connection holds: that wait would block the thread and every stream it serves.
   *
   * @throws {StoreBusyError} when the lock is taken (try again later)
   */
  withoutBlocking<T>(write: () => T): T;
  /** Whether the id belonged to a job that was purged or deleted. */
  isGone(id: string): boolean;
  /**
   * Why the database can no longer be written (its file removed or replaced while the
   * server runs), or `undefined`; once found, every write is refused.
   */
  checkFile(): string | undefined;
  listJobs(query: JobQuery): JobPage;
  /** Number of jobs per status. */
  countByStatus(): Record<string, number>;
  /**
   * Commits every request in one transaction; each succeeds or fails on its own.
   *
   * @throws {StoreBusyError} when another connection holds the write lock (retry later)
   */
  appendBatch(requests: readonly AppendRequest[], now: number): AppendOutcome[];
  /** Events with `sequence > after`, oldest first, at most `limit`. */
  readEvents(jobId: string, after: number, limit: number): StoredEvent[];
  /**
   * Removes a job and its events, leaving a tombstone; false when there was none (or, given
   * `createdAt`, when the job under the id is another, made since).
   */
  deleteJob(id: string, now: number, createdAt?: string): boolean;
  /** Whether a request with this Idempotency-Key was stored for the job (and is still kept). */
  knowsIdempotencyKey(jobId: string, key: string): boolean;
  /** Purges expired jobs, tombstones and idempotency keys; returns the purged job ids. */
  sweep(now: number, policy: SweepPolicy): string[];
  /**
   * Takes or renews a named lease until `until` (epoch ms); false while another owner
   * holds it. Several isolates share one store: a lease makes one of them do a chore.
   */
  takeLease(name: string, owner: string, until: number, now: number): boolean;
  /** Gives up lease `name` if `owner` holds it (without waiting for the write lock). */
  releaseLease(name: string, owner: string): void;
  /**
   * Unfinished jobs (any status but completed, failed, cancelled), their last sequence and
   * when they were created.
   */
  openJobs(limit: number): { id: string; last_sequence: number; created_at: string }[];
  /** Running jobs whose last event is older than `before` and that are not yet stalled. */
  findStalled(before: number, limit: number): string[];
  close(): void;
}

/**
 * Thrown by every write once the database file was removed or replaced while the server
 * ran (see `SqliteStore.checkFile`): what it took would be lost at the next start. Shaped as
 * SQLite's SQLITE_CANTOPEN, a failure that lasts until someone acts.
 */
export class StoreLostError extends Error {
  override name = "StoreLostError";
  readonly code = "ERR_SQLITE_ERROR";
  readonly errcode = 14;
}

/**
 * Thrown by writes after one found the disk full, until the write-ahead log could be moved
 * into the database file and cut back (see `SqliteStore`): space freed meanwhile goes to that
 * first. Shaped as SQLite's SQLITE_FULL, a failure that lasts until someone acts.
 */
export class StoreFullError extends Error {
  override name = "StoreFullError";
  readonly code = "ERR_SQLITE_ERROR";
  readonly errcode = 13;
}

/** Thrown by {@link EventStore.appendBatch} when another connection holds the write lock. */
export class StoreBusyError extends Error {
  override name = "StoreBusyError";
}
