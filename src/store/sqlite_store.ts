/**
 * The SQLite event store (`node:sqlite`, WAL mode). Every SQL statement is a named
 * constant here; the rest of the server sees only {@link EventStore}.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import type { JobError, JobRecord } from "../jobs/job.ts";
import { applyEvent, isRefusal } from "../jobs/reducer.ts";
import { envelopesOf, type StoredEvent } from "../jobs/envelope.ts";
import type { NewEvent } from "../jobs/events.ts";
import { isTerminal, type JobStatus } from "../jobs/status.ts";
import type {
  AppendOutcome,
  AppendRequest,
  CommittedEvent,
  CreateOutcome,
  EventStore,
  JobPage,
  JobQuery,
  NewJob,
  SweepPolicy,
} from "./event_store.ts";
import { StoreBusyError, StoreFullError, StoreLostError } from "./event_store.ts";
import { migrate } from "./migrations.ts";
import { AuthStore } from "./auth_store.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { StartupRefusal } from "../startup_errors.ts";

// busy_timeout first: isolates open the file together, and switching to WAL waits for a
// lock that another connection may hold for a moment ("database is locked" otherwise).
const PRAGMAS = `
  PRAGMA busy_timeout = 2000;
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  PRAGMA temp_store = MEMORY;
`;

/**
 * Checkpoints run on a worker thread ({@link startCheckpointer}: this store's, or one the
 * launcher of several isolates runs for them all), never in a commit: a checkpoint
 * fsyncs, and that wait would stall every stream this isolate serves.
 */
const NO_AUTOCHECKPOINT = `PRAGMA wal_autocheckpoint = 0;`;

/** Milliseconds between background checkpoints. */
const CHECKPOINT_INTERVAL_MS = 200;

/**
 * Size of the WAL file past which a writer checkpoints it itself, right after a commit.
 * The background checkpoints are passive: under steady writes they never catch up with
 * the writers, nothing makes the WAL start over, and it grew by tens of megabytes a
 * second. A checkpoint on the writer's connection after its commit (TRUNCATE, which keeps
 * other writers out while it runs) copies every frame (most were copied by the background
 * already) and cuts the file to nothing.
 */
export const WAL_LIMIT_BYTES = 64 * 1024 * 1024;

/** Least time between two checkpoints tried while the disk is full, in ms. */
const FULL_RETRY_MS = 100;

/** Least time between two looks at the WAL's size, in ms. */
const WAL_CHECK_MS = 100;

const JOB_COLUMNS = `id, kind, owner, status, progress, stage, message, eta_seconds, created_at,
  queued_at, started_at, updated_at, completed_at, result, error, metadata, last_sequence,
  first_sequence, stalled, eta_base_at, eta_base_progress, last_event_at, ended_at`;

const SQL = {
  insertJob: `INSERT INTO jobs (${JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
    ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  selectJob: `SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`,
  selectVersion: `SELECT rowid AS position, last_sequence, created_at FROM jobs WHERE id = ?`,
  updateProgress: `UPDATE jobs SET progress = ?, stage = ?, message = ?, eta_seconds = ?,
    updated_at = ?, last_sequence = ?, first_sequence = ?, stalled = ?, eta_base_at = ?,
    eta_base_progress = ?, last_event_at = ? WHERE id = ?`,
  updateResult: `UPDATE jobs SET result = ? WHERE id = ?`,
  updateError: `UPDATE jobs SET error = ? WHERE id = ?`,
  begin: `BEGIN IMMEDIATE`,
  beginRead: `BEGIN`,
  commit: `COMMIT`,
  rollback: `ROLLBACK`,
  checkpoint: `PRAGMA wal_checkpoint(PASSIVE)`,
  checkpointTruncate: `PRAGMA wal_checkpoint(TRUNCATE)`,
  waitForLock: `PRAGMA busy_timeout = 2000`,
  failOnLock: `PRAGMA busy_timeout = 0`,
  updateJob: `UPDATE jobs SET status = ?, progress = ?, stage = ?, message = ?, eta_seconds = ?,
    queued_at = ?, started_at = ?, updated_at = ?, completed_at = ?, last_sequence = ?,
    first_sequence = ?, stalled = ?, eta_base_at = ?, eta_base_progress = ?, last_event_at = ?,
    ended_at = ? WHERE id = ?`,
  deleteJob: `DELETE FROM jobs WHERE id = ?`,
  countByStatus: `SELECT status, COUNT(*) AS n FROM jobs GROUP BY status`,
  selectEvents: `SELECT sequence, type, timestamp, data FROM events
    WHERE job_id = ? AND sequence > ? ORDER BY sequence LIMIT ?`,
  deleteEventsBelow: `DELETE FROM events WHERE job_id = ? AND sequence < ?`,
  deleteEvents: `DELETE FROM events WHERE job_id = ?`,
  selectIdempotency: `SELECT sequences, fingerprint FROM idempotency WHERE job_id = ? AND key = ?`,
  insertIdempotency: `INSERT INTO idempotency (job_id, key, sequences, created_at, fingerprint)
    VALUES (?, ?, ?, ?, ?)`,
  deleteIdempotencyOfJob: `DELETE FROM idempotency WHERE job_id = ?`,
  expireIdempotency: `DELETE FROM idempotency WHERE created_at < ?`,
  selectCreateKey: `SELECT job_id FROM create_keys WHERE caller_key = ?`,
  insertCreateKey: `INSERT INTO create_keys (caller_key, job_id, created_at) VALUES (?, ?, ?)`,
  expireCreateKeys: `DELETE FROM create_keys WHERE created_at < ?`,
  selectTombstone: `SELECT gone_at FROM tombstones WHERE id = ?`,
  insertTombstone: `INSERT OR REPLACE INTO tombstones (id, gone_at) VALUES (?, ?)`,
  deleteTombstone: `DELETE FROM tombstones WHERE id = ?`,
  expireTombstones: `DELETE FROM tombstones WHERE gone_at < ?`,
  expireLeases: `DELETE FROM leases WHERE until < ?`,
  releaseLease: `DELETE FROM leases WHERE name = ? AND owner = ?`,
  selectExpired: `SELECT id FROM jobs WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?`,
  // A lease running later than one taken now was taken by a clock ahead of this one (the
  // clock stepped back since): it is taken over, not waited out.
  takeLease: `INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
    WHERE leases.until < ? OR leases.owner = excluded.owner OR leases.until > excluded.until`,
  selectOpen: `SELECT id, last_sequence, created_at FROM jobs
    WHERE status NOT IN ('completed', 'failed', 'cancelled') LIMIT ?`,
  selectStalled: `SELECT id FROM jobs
    WHERE status = 'running' AND stalled = 0 AND last_event_at < ? LIMIT ?`,
} as const;

/** Most events one INSERT writes; there is a statement for each count up to it. */
const INSERT_ROWS = 16;
/**
 * A row holds what an envelope says beyond its job and sequence: its type, time and data.
 * The envelope is rebuilt on reading (`envelopesOf`), byte for byte; a row is then about
 * half the size, and a commit writes fewer pages.
 */
const INSERT_EVENTS = Array.from(
  { length: INSERT_ROWS },
  (_, i) =>
    `INSERT INTO events (job_id, sequence, type, timestamp, data) VALUES ${
      Array(i + 1).fill("(?, ?, ?, ?, ?)").join(", ")
    }`,
);

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Most events retained per job; older ones are dropped first. */
  maxEventsPerJob: number;
  /**
   * Who moves the WAL into the database file: a worker thread this store starts at its
   * first commit (`"thread"`, the default), SQLite during commits (`"commits"`, for
   * short-lived command-line uses), or another process sharing the file (`"elsewhere"`:
   * the launcher of a server on several isolates runs one thread for all of them).
   */
  checkpoints?: "thread" | "commits" | "elsewhere";
  /** Size of the WAL file past which a writer checkpoints it itself; default 64 MiB. */
  walLimitBytes?: number;
}

/** The worker thread that checkpoints a database file, and how to stop it. */
export interface Checkpointer {
  /** Stops the thread and waits (at most a second) until it has closed the file. */
  stop(): void;
}

/** Longest wait at close for the checkpointer thread to let go of the file. */
const CHECKPOINTER_STOP_MS = 1000;

/** Starts the worker thread that checkpoints the database file at `path`. */
export function startCheckpointer(path: string): Checkpointer {
  const worker = new Worker(new URL("./checkpointer_worker.ts", import.meta.url), {
    type: "module",
  });
  // A failing checkpointer costs only background checkpoints, never the server.
  worker.onerror = (event) => event.preventDefault();
  const done = new Int32Array(new SharedArrayBuffer(4));
  worker.postMessage({ path, intervalMs: CHECKPOINT_INTERVAL_MS, done });
  return {
    stop() {
      worker.postMessage("stop");
      Atomics.wait(done, 0, 0, CHECKPOINTER_STOP_MS);
      worker.terminate();
    },
  };
}

/** Most job records kept in memory between appends. */
const RECORD_CACHE_LIMIT = 10_000;

function isFull(error: unknown): boolean {
  const e = error as { errcode?: number } | null;
  return typeof e?.errcode === "number" && (e.errcode & 0xff) === 13;
}

/** The size of a WAL file; 0 when there is none. */
function walSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

function isBusy(error: unknown): boolean {
  const e = error as { errcode?: number; code?: string; message?: string };
  return (e.errcode !== undefined && (e.errcode & 0xff) === 5) ||
    /database is locked/i.test(e.message ?? "");
}

/**
 * A file's device and inode; `missing` when there is no file; `undefined` when it cannot
 * be told (a passing error of the file system, a directory turned unreadable).
 */
function fileIdentity(path: string): string | undefined {
  try {
    const info = Deno.statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? "missing" : undefined;
  }
}

/** Name of the database file inside the data directory. */
export const DATABASE_FILE = "jobwire.db";

type Row = Record<string, unknown>;

/**
 * Opens (creating when needed) the database in `dataDir`, or an in-memory database when
 * `dataDir` is `":memory:"`.
 */
export function openSqliteStore(dataDir: string, options: SqliteStoreOptions): SqliteStore {
  if (dataDir === ":memory:") return new SqliteStore(new DatabaseSync(":memory:"), options);
  // The database holds password hashes and tickets: a directory made here is private.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, DATABASE_FILE);
  // Made here, and private whatever the directory's mode: SQLite gives its WAL and shared
  // memory files the mode of the database file.
  createPrivateFile(path);
  // Asked of the file before SQLite opens it: on one it can only read, SQLite would make
  // the WAL's files read-only too, and they would refuse the next start after a chmod.
  try {
    Deno.openSync(path, { read: true, write: true }).close();
  } catch (error) {
    if (
      error instanceof Deno.errors.PermissionDenied ||
      /read-only file system/i.test((error as Error).message)
    ) {
      throw new StartupRefusal(`cannot write the database ${path}: ${(error as Error).message}`);
    }
    throw error;
  }
  try {
    return new SqliteStore(new DatabaseSync(path), options, path);
  } catch (error) {
    // "file is not a database" says which file.
    if (error instanceof Error) error.message = `${path}: ${error.message}`;
    throw error;
  }
}

/** Creates an empty file only its owner may read (an empty file is an empty database), unless there is one. */
export function createPrivateFile(path: string): void {
  try {
    Deno.writeFileSync(path, new Uint8Array(), { createNew: true, mode: 0o600 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
}

/** {@link EventStore} on one SQLite connection. Synchronous: calls never interleave. */
export class SqliteStore implements EventStore {
  #db: DatabaseSync;
  #options: SqliteStoreOptions;
  #statements = new Map<string, StatementSync>();
  /**
   * Job records as of their last append here. One is reused only while the row still has
   * the same rowid, creation time and last sequence: any write, by any isolate, changes
   * the sequence, so a reused record is never stale.
   */
  #records = new Map<string, { position: number; record: JobRecord }>();

  #checkpointer: Checkpointer | undefined;
  /** The database file, unless in memory. */
  #file: string | undefined;
  /** The database file when this connection checkpoints it on a thread of its own. */
  #checkpointed: string | undefined;
  /** The WAL file, when this connection writes a database file (see {@link #boundWal}). */
  #wal: string | undefined;
  #walLimit: number;
  /** Whether a write found the disk full (see `#refuseIfFull`). */
  #full = false;
  /** When `#refuseIfFull` last tried to checkpoint, by `performance.now()`. */
  #fullTriedAt = -Infinity;
  /** How many `#withoutWaiting` calls are running, one within another. */
  #notWaiting = 0;
  #walCheckedAt = 0;
  /** The file's device and inode when opened, to tell it from one put in its place. */
  #identity: string | undefined;
  /** Set once the file was found removed or replaced: every write is refused then. */
  #lost: string | undefined;

  /** @param path the database file, when it has one (see {@link SqliteStoreOptions.checkpoints}) */
  constructor(db: DatabaseSync, options: SqliteStoreOptions, path?: string) {
    this.#file = path;
    this.#identity = path === undefined ? undefined : fileIdentity(path);
    this.#db = db;
    this.#options = options;
    this.#walLimit = options.walLimitBytes ?? WAL_LIMIT_BYTES;
    try {
      db.exec(PRAGMAS);
      migrate(db);
      const checkpoints = options.checkpoints ?? "thread";
      if (path !== undefined && checkpoints !== "commits") {
        db.exec(NO_AUTOCHECKPOINT);
        db.exec(`PRAGMA journal_size_limit = ${this.#walLimit}`);
        this.#wal = `${path}-wal`;
      }
      if (checkpoints === "thread") this.#checkpointed = path;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** After a commit: checkpoints here when the WAL has grown past its limit (see {@link WAL_LIMIT_BYTES}). */
  #boundWal(): void {
    if (this.#wal === undefined) return;
    const now = performance.now();
    if (now - this.#walCheckedAt < WAL_CHECK_MS) return;
    this.#walCheckedAt = now;
    try {
      if (walSize(this.#wal) <= this.#walLimit) return;
      // TRUNCATE, not PASSIVE: with two isolates committing in turn, the other's commits
      // came between this one's checkpoint and its next commit, so the WAL never started
      // over and grew by gigabytes. Tried again after the next commit until it works.
      if (!this.#truncateWal()) this.#walCheckedAt = 0;
    } catch {
      // Another checkpoint is running (the background one): the next commit tries again.
      this.#walCheckedAt = 0;
    }
  }

  #stmt(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `work` in one transaction: a write's (`BEGIN IMMEDIATE`) unless `begin` says. */
  #transaction<T>(work: () => T, begin: string = SQL.begin): T {
    if (begin !== SQL.beginRead) this.#refuseWrites();
    this.#stmt(begin).run();
    try {
      const value = work();
      this.#stmt(SQL.commit).run();
      return value;
    } catch (error) {
      if (this.#db.isTransaction) this.#stmt(SQL.rollback).run();
      if (isFull(error)) this.#full = true;
      throw error;
    }
  }

  /** Refuses a write to a file that is gone, or while the disk is full (see below). */
  #refuseWrites(): void {
    this.#refuseIfLost();
    this.#refuseIfFull();
  }

  /**
   * Once a write found the disk full, each write first moves the write-ahead log into the
   * database file and cuts it back to nothing, and is refused until that works. Space freed
   * on the disk then goes to the checkpoint: writes that came first (producers retrying
   * their 503s) would grow the log into it, leaving the database file unable to take the
   * log's pages, even after a restart.
   *
   * @throws {StoreFullError} while the checkpoint cannot be done
   */
  #refuseIfFull(): void {
    if (!this.#full) return;
    let why = "the disk is still full";
    // At most one try per FULL_RETRY_MS: producers retrying their 503s would otherwise make
    // the isolate copy pages for every refused request.
    const now = performance.now();
    if (now - this.#fullTriedAt >= FULL_RETRY_MS) {
      this.#fullTriedAt = now;
      try {
        const truncated = this.#truncateWal();
        if (truncated && (this.#wal === undefined || walSize(this.#wal) === 0)) {
          this.#full = false;
          return;
        }
        if (!truncated) why = "another connection is using the log";
      } catch (error) {
        if (!isFull(error)) why = (error as Error).message;
      }
    }
    throw new StoreFullError(
      `database or disk is full: writes resume once the write-ahead log fits in the database ` +
        `file (${why})`,
    );
  }

  /**
   * Checkpoints the whole WAL and cuts its file to nothing (TRUNCATE: other writers are kept
   * out meanwhile), without waiting for anyone.
   *
   * @returns false when another writer, or a reader mid-read, was in the way
   */
  #truncateWal(): boolean {
    return this.#withoutWaiting(
      () => (this.#stmt(SQL.checkpointTruncate).get() as { busy: number }).busy === 0,
      () => false,
    );
  }

  readConsistently<T>(read: () => T): T {
    // Within a transaction (a write's), its statements already see one database.
    return this.#db.isTransaction ? read() : this.#transaction(read, SQL.beginRead);
  }

  createJob(job: NewJob, now: number, key?: string): CreateOutcome {
    return this.#transaction(() => {
      if (key !== undefined) {
        const made = this.#stmt(SQL.selectCreateKey).get(key) as Row | undefined;
        if (made !== undefined) {
          return { ok: false as const, code: "keyed" as const, jobId: String(made.job_id) };
        }
      }
      if (this.#stmt(SQL.selectJob).get(job.id) !== undefined) {
        return { ok: false as const, code: "exists" as const };
      }
      if (key !== undefined) this.#stmt(SQL.insertCreateKey).run(key, job.id, now);
      // A job made again under an id it had before is always created after the earlier
      // one went, even within the same millisecond: isolates tell the two apart by it.
      const gone = this.#stmt(SQL.selectTombstone).get(job.id) as Row | undefined;
      const created = gone === undefined ? now : Math.max(now, Number(gone.gone_at) + 1);
      const iso = new Date(created).toISOString();
      const record: JobRecord = {
        id: job.id,
        kind: job.kind,
        owner: job.owner,
        status: "pending",
        progress: 0,
        stage: null,
        message: null,
        eta_seconds: null,
        created_at: iso,
        queued_at: null,
        started_at: null,
        updated_at: iso,
        completed_at: null,
        result: null,
        error: null,
        metadata: job.metadata,
        last_sequence: 0,
        first_sequence: 1,
        stalled: false,
        eta_base_at: null,
        eta_base_progress: null,
        last_event_at: now,
      };
      this.#stmt(SQL.deleteTombstone).run(job.id);
      this.#stmt(SQL.insertJob).run(
        record.id,
        record.kind,
        record.owner,
        record.status,
        record.progress,
        null,
        null,
        null,
        record.created_at,
        null,
        null,
        record.updated_at,
        null,
        null,
        null,
        JSON.stringify(record.metadata),
        0,
        1,
        0,
        null,
        null,
        now,
        null,
      );
      return { ok: true as const, job: record };
    });
  }

  getJob(id: string): JobRecord | undefined {
    const row = this.#stmt(SQL.selectJob).get(id) as Row | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  isGone(id: string): boolean {
    return this.#stmt(SQL.selectTombstone).get(id) !== undefined;
  }

  listJobs(query: JobQuery): JobPage {
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    if (query.status !== undefined) {
      where.push("status = ?");
      params.push(query.status);
    }
    if (query.kind !== undefined) {
      where.push("kind = ?");
      params.push(query.kind);
    }
    if (query.owner !== undefined) {
      where.push("owner = ?");
      params.push(query.owner);
    }
    if (query.visibleTo !== undefined) {
      const { owner, ids } = query.visibleTo;
      const terms: string[] = [];
      if (owner !== null) {
        terms.push("owner = ?");
        params.push(owner);
      }
      if (ids.length > 0) {
        terms.push(`id IN (${ids.map(() => "?").join(", ")})`);
        params.push(...ids);
      }
      where.push(terms.length === 0 ? "0" : `(${terms.join(" OR ")})`);
    }
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    if (after !== undefined) {
      where.push("rowid < ?");
      params.push(after);
    }
    // Filters are few, so the statements built here stay a small set; only `jobs` claims of
    // different lengths add more, and those are not cached.
    const sql = `SELECT rowid AS position, ${JOB_COLUMNS} FROM jobs ${
      where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""
    } ORDER BY rowid DESC LIMIT ?`;
    const statement = query.visibleTo !== undefined && query.visibleTo.ids.length > 0
      ? this.#db.prepare(sql)
      : this.#stmt(sql);
    const rows = statement.all(...params, query.limit + 1) as Row[];
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      jobs: page.map(toRecord),
      next_cursor: rows.length > query.limit && last !== undefined
        ? encodeCursor(Number(last.position))
        : null,
    };
  }

  countByStatus(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const row of this.#stmt(SQL.countByStatus).all() as Row[]) {
      counts[String(row.status)] = Number(row.n);
    }
    return counts;
  }

  /**
   * @throws {StoreBusyError} at once, without waiting, when another connection (another
   *   isolate) holds the write lock: the caller retries without blocking its event loop
   */
  appendBatch(requests: readonly AppendRequest[], now: number): AppendOutcome[] {
    if (requests.length === 0) return [];
    this.#refuseWrites();
    this.#withoutWaiting(() => this.#stmt(SQL.begin).run(), () => {
      throw new StoreBusyError("The database is locked by another connection");
    });
    try {
      // One commit time for the whole group, formatted once.
      const timestamp = new Date(now).toISOString();
      const outcomes = requests.map((request) => this.#appendOne(request, now, timestamp));
      this.#stmt(SQL.commit).run();
      // Started with the first commit, so stores that never write start no thread.
      if (this.#checkpointed !== undefined && this.#checkpointer === undefined) {
        this.#checkpointer = startCheckpointer(this.#checkpointed);
      }
      this.#boundWal();
      return outcomes;
    } catch (error) {
      if (this.#db.isTransaction) this.#stmt(SQL.rollback).run();
      this.#records.clear();
      if (isFull(error)) this.#full = true;
      throw error;
    }
  }

  /** The current record of a job, from the cache when it is still current. */
  #current(jobId: string): JobRecord | undefined {
    const version = this.#stmt(SQL.selectVersion).get(jobId) as Row | undefined;
    if (version === undefined) {
      this.#records.delete(jobId);
      return undefined;
    }
    const cached = this.#records.get(jobId);
    const position = Number(version.position);
    if (
      cached !== undefined && cached.position === position &&
      cached.record.last_sequence === Number(version.last_sequence) &&
      cached.record.created_at === version.created_at
    ) {
      return cached.record;
    }
    const row = this.#stmt(SQL.selectJob).get(jobId) as Row;
    const record = toRecord(row);
    this.#remember(jobId, position, record);
    return record;
  }

  /**
   * Whether the events from sequence `first` on are `events` as they were written: a
   * retry, not another producer's publish at a place already taken. Every field sent must
   * be there with the same value; the server may have added others (an estimated ETA in
   * place of a missing or null one). `undefined` when some of those places were dropped by
   * the per-job cap: what was there cannot be compared.
   */
  #wroteAlready(jobId: string, first: number, events: readonly NewEvent[]): boolean | undefined {
    const stored = this.readEvents(jobId, first - 1, events.length);
    // Rows are read from `first` on: fewer than sent, or a first row past `first`, means
    // the oldest of those places are gone.
    if (stored.length < events.length || stored[0]?.sequence !== first) return undefined;
    return stored.every((row) => {
      // Every row is one of the places asked about (read from `first`, as many as sent).
      const sent = events[row.sequence - first]!;
      const written = JSON.parse(row.envelope) as { type: string; data: Record<string, unknown> };
      if (written.type !== sent.type) return false;
      for (const key in sent.data) {
        if (key === "eta_seconds" && written.data.eta_estimated === true) continue;
        if (JSON.stringify(written.data[key]) !== JSON.stringify(sent.data[key])) return false;
      }
      return true;
    });
  }

  #remember(jobId: string, position: number, record: JobRecord): void {
    if (this.#records.size >= RECORD_CACHE_LIMIT) this.#records.clear();
    this.#records.set(jobId, { position, record });
  }

  #appendOne(request: AppendRequest, now: number, timestamp: string): AppendOutcome {
    const { jobId } = request;
    const before = this.#current(jobId);
    if (before === undefined) {
      return this.isGone(jobId)
        ? { ok: false, code: "job_gone", message: `Job ${jobId} was deleted or purged` }
        : { ok: false, code: "job_not_found", message: `No job ${jobId}` };
    }
    if (request.authorize !== undefined && !request.authorize(before)) {
      return { ok: false, code: "forbidden", message: `No write access to job ${jobId}` };
    }
    const quietSince = request.stalledIfQuietSince;
    if (
      quietSince !== undefined &&
      (before.status !== "running" || before.stalled || before.last_event_at >= quietSince)
    ) {
      return { ok: true, sequences: [], committed: [], job: before, replayed: false };
    }
    if (request.idempotencyKey !== undefined) {
      const seen = this.#stmt(SQL.selectIdempotency).get(jobId, request.idempotencyKey) as
        | Row
        | undefined;
      if (seen !== undefined) {
        if (seen.fingerprint !== null && seen.fingerprint !== fingerprintOf(request.events)) {
          return {
            ok: false,
            code: "idempotency_key_reused",
            message:
              `The Idempotency-Key ${request.idempotencyKey} was used for other events on job ${jobId}`,
          };
        }
        const sequences = JSON.parse(String(seen.sequences)) as number[];
        return { ok: true, sequences, committed: [], job: before, replayed: true };
      }
    }
    const count = request.events.length;
    if (request.expectedSequence !== undefined) {
      const expected = request.expectedSequence;
      if (before.last_sequence >= expected + count - 1 && expected >= 1) {
        const retry = this.#wroteAlready(jobId, expected, request.events);
        if (retry === undefined) {
          return {
            ok: false,
            code: "sequence_conflict",
            message:
              `Sequences ${expected}-${
                expected + count - 1
              } of job ${jobId} are no longer kept (--max-events-per-job), so whether they were ` +
              "these events cannot be told: a retry that may come this late needs an Idempotency-Key",
          };
        }
        if (!retry) {
          return {
            ok: false,
            code: "sequence_conflict",
            message: `Sequences ${expected}-${
              expected + count - 1
            } of job ${jobId} hold other events: this is not a retry of them`,
          };
        }
        const sequences = Array.from({ length: count }, (_, i) => expected + i);
        return { ok: true, sequences, committed: [], job: before, replayed: true };
      }
      if (before.last_sequence !== expected - 1) {
        return {
          ok: false,
          code: "sequence_conflict",
          message: `Expected sequence ${expected} but the next sequence of job ${jobId} is ${
            before.last_sequence + 1
          }`,
        };
      }
    }
    // Every event is applied in memory first: a refused one leaves nothing to undo.
    const committed: CommittedEvent[] = [];
    const sequences: number[] = [];
    const envelopeOf = envelopesOf(jobId);
    let record = before;
    for (const event of request.events) {
      const applied = applyEvent(record, event, now, timestamp);
      if (isRefusal(applied)) return { ok: false, ...applied };
      record = applied.record;
      const sequence = record.last_sequence;
      // The data is serialized once (by the publish route already, unless applying the event
      // added to it): the envelope is built around it, and a commit message to other
      // isolates carries it alone.
      const data = applied.data === event.data && event.json !== undefined
        ? event.json
        : JSON.stringify(applied.data);
      const envelope = envelopeOf(event.type, sequence, timestamp, data);
      committed.push({
        event: { job_id: jobId, sequence, type: event.type, envelope },
        job: record,
        timestamp,
        data,
      });
      sequences.push(sequence);
    }
    if (quietSince !== undefined) record = { ...record, stalled: true };
    // Several rows per statement: a call into SQLite costs about as much as a row.
    for (let at = 0; at < committed.length; at += INSERT_ROWS) {
      const rows = committed.slice(at, at + INSERT_ROWS);
      const values: (string | number)[] = [];
      for (const { event, timestamp, data } of rows) {
        values.push(jobId, event.sequence, event.type, timestamp, data);
      }
      this.#stmt(INSERT_EVENTS[rows.length - 1]!).run(...values);
    }
    const cap = this.#options.maxEventsPerJob;
    if (record.last_sequence - record.first_sequence + 1 > cap) {
      const first = record.last_sequence - cap + 1;
      this.#stmt(SQL.deleteEventsBelow).run(jobId, first);
      record = { ...record, first_sequence: first };
    }
    this.#writeRecord(before, record);
    if (request.idempotencyKey !== undefined) {
      this.#stmt(SQL.insertIdempotency).run(
        jobId,
        request.idempotencyKey,
        JSON.stringify(sequences),
        now,
        fingerprintOf(request.events),
      );
    }
    const cached = this.#records.get(jobId);
    if (cached !== undefined) this.#remember(jobId, cached.position, record);
    // The snapshot handed on with the last event carries the final bookkeeping.
    const last = committed.at(-1);
    if (last !== undefined) last.job = record;
    return { ok: true, sequences, committed, job: record, replayed: false };
  }

  /**
   * Writes what changed. Most events leave the status and its timestamps alone: those
   * updates skip every indexed column, so no index is rewritten. Result and error are
   * rewritten only when they changed.
   */
  #writeRecord(before: JobRecord, r: JobRecord): void {
    if (
      r.status === before.status && r.queued_at === before.queued_at &&
      r.started_at === before.started_at && r.completed_at === before.completed_at
    ) {
      this.#stmt(SQL.updateProgress).run(
        r.progress,
        r.stage,
        r.message,
        r.eta_seconds,
        r.updated_at,
        r.last_sequence,
        r.first_sequence,
        r.stalled ? 1 : 0,
        r.eta_base_at,
        r.eta_base_progress,
        r.last_event_at,
        r.id,
      );
    } else {
      const ended = r.completed_at !== null && isTerminal(r.status)
        ? Date.parse(r.completed_at)
        : null;
      this.#stmt(SQL.updateJob).run(
        r.status,
        r.progress,
        r.stage,
        r.message,
        r.eta_seconds,
        r.queued_at,
        r.started_at,
        r.updated_at,
        r.completed_at,
        r.last_sequence,
        r.first_sequence,
        r.stalled ? 1 : 0,
        r.eta_base_at,
        r.eta_base_progress,
        r.last_event_at,
        ended,
        r.id,
      );
    }
    if (r.result !== before.result) {
      this.#stmt(SQL.updateResult).run(
        r.result === null || r.result === undefined ? null : JSON.stringify(r.result),
        r.id,
      );
    }
    if (r.error !== before.error) {
      this.#stmt(SQL.updateError).run(r.error === null ? null : JSON.stringify(r.error), r.id);
    }
  }

  readEvents(jobId: string, after: number, limit: number): StoredEvent[] {
    // Rows as arrays, converted once: replays read up to the per-job cap at a time.
    const rows = this.#arrays(SQL.selectEvents).all(jobId, after, limit) as unknown as [
      number,
      string,
      string,
      string,
    ][];
    const envelope = envelopesOf(jobId);
    const events: StoredEvent[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      // Indexed rather than destructured: destructuring doubled this loop's time.
      events[i] = {
        job_id: jobId,
        sequence: row[0],
        type: row[1],
        envelope: envelope(row[1], row[0], row[2], row[3]),
      };
    }
    return events;
  }

  /** A prepared statement that returns rows as arrays. */
  #arrays(sql: string): StatementSync {
    const key = `arrays:${sql}`;
    let statement = this.#statements.get(key);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      // Present at run time in this runtime's node:sqlite; its type declarations lag behind.
      (statement as StatementSync & { setReturnArrays(enabled: boolean): void }).setReturnArrays(
        true,
      );
      this.#statements.set(key, statement);
    }
    return statement;
  }

  deleteJob(id: string, now: number, createdAt?: string): boolean {
    return this.#transaction(() => {
      // Only the job the caller checked: not one made again under its id meanwhile.
      if (createdAt !== undefined) {
        const row = this.#stmt(SQL.selectJob).get(id) as Row | undefined;
        if (row === undefined || String(row.created_at) !== createdAt) return false;
      }
      return this.#purge(id, now);
    });
  }

  #purge(id: string, now: number): boolean {
    this.#records.delete(id);
    const removed = this.#stmt(SQL.deleteJob).run(id).changes > 0;
    if (!removed) return false;
    this.#stmt(SQL.deleteEvents).run(id);
    this.#stmt(SQL.deleteIdempotencyOfJob).run(id);
    this.#stmt(SQL.insertTombstone).run(id, now);
    return true;
  }

  knowsIdempotencyKey(jobId: string, key: string): boolean {
    return this.#stmt(SQL.selectIdempotency).get(jobId, key) !== undefined;
  }

  sweep(now: number, policy: SweepPolicy): string[] {
    return this.#transaction(() => {
      const expired = this.#stmt(SQL.selectExpired).all(
        now - policy.retentionMs,
        policy.batch,
      ) as Row[];
      const purged: string[] = [];
      for (const row of expired) {
        const id = String(row.id);
        if (this.#purge(id, now)) purged.push(id);
      }
      this.#stmt(SQL.expireTombstones).run(now - policy.tombstoneMs);
      this.#stmt(SQL.expireLeases).run(now - 60_000);
      this.#stmt(SQL.expireIdempotency).run(now - policy.idempotencyMs);
      this.#stmt(SQL.expireCreateKeys).run(now - policy.idempotencyMs);
      return purged;
    });
  }

  /**
   * Whether the database file is still the one this connection opened. Removed (the data
   * directory deleted) or replaced while the server runs, it would take writes that no
   * restart finds, and a second server could start on the same directory: from the first
   * time this finds so, every write is refused.
   *
   * @returns why the file can no longer be written, or `undefined` while it can
   */
  checkFile(): string | undefined {
    if (this.#lost !== undefined || this.#file === undefined) return this.#lost;
    const now = fileIdentity(this.#file);
    // Only a file that is gone, or another one: a stat that failed tells nothing.
    if (now !== undefined && this.#identity !== undefined && now !== this.#identity) {
      this.#lost = `the database file ${this.#file} was removed or replaced while the server ran`;
    }
    return this.#lost;
  }

  #refuseIfLost(): void {
    // Looked at before every write (a stat, a few µs against a commit's tens): a write to a
    // file removed since would be acknowledged and lost. The server's timer also looks every
    // second, for `/healthz` while nothing is written.
    this.checkFile();
    // Told without the file's path, which answers would show: the log has it.
    if (this.#lost !== undefined) {
      throw new StoreLostError(
        "the database file was removed or replaced while the server ran: restart the server",
      );
    }
  }

  withoutBlocking<T>(write: () => T): T {
    // Every write goes through here or a transaction of this store's (the sign-ins' and
    // tickets' too): each is refused on a lost file or a full disk alike.
    this.#refuseWrites();
    try {
      return this.#withoutWaiting(write, () => {
        throw new StoreBusyError("database is locked by another connection");
      });
    } catch (error) {
      if (isFull(error)) this.#full = true;
      throw error;
    }
  }

  /** @returns false also when another connection holds the write lock: never waits for it */
  takeLease(name: string, owner: string, until: number, now: number): boolean {
    return this.#withoutWaiting(
      () => this.#stmt(SQL.takeLease).run(name, owner, until, now).changes > 0,
      () => false,
    );
  }

  releaseLease(name: string, owner: string): void {
    this.#withoutWaiting(
      () => void this.#stmt(SQL.releaseLease).run(name, owner),
      () => undefined,
    );
  }

  /**
   * Runs `write` without waiting for a write lock another connection holds (that wait
   * would block this thread, and every stream it serves): `busy()` answers instead.
   */
  #withoutWaiting<T>(write: () => T, busy: () => T): T {
    // Nested (a write within a write that does not wait), only the outermost puts SQLite's
    // wait back: an inner one must not make the rest of the outer write wait.
    if (this.#notWaiting++ === 0) this.#stmt(SQL.failOnLock).run();
    try {
      return write();
    } catch (error) {
      if (isBusy(error)) return busy();
      throw error;
    } finally {
      if (--this.#notWaiting === 0) this.#stmt(SQL.waitForLock).run();
    }
  }

  openJobs(limit: number): { id: string; last_sequence: number; created_at: string }[] {
    const rows = this.#stmt(SQL.selectOpen).all(limit) as Row[];
    return rows.map((row) => ({
      id: String(row.id),
      last_sequence: Number(row.last_sequence),
      created_at: String(row.created_at),
    }));
  }

  findStalled(before: number, limit: number): string[] {
    const rows = this.#stmt(SQL.selectStalled).all(before, limit) as Row[];
    return rows.map((row) => String(row.id));
  }

  /** Users, tickets and login failures, on the same database connection. */
  authStore(): AuthStore {
    return new AuthStore(this.#db);
  }

  /**
   * Refuses a database this connection can read but not write (a read-only file or mount,
   * which SQLite opens read-only without a word): a server on it would answer every write
   * with 503 while `/healthz` said ok.
   *
   * @throws {StartupRefusal} naming the file
   */
  assertWritable(): void {
    if (this.#file === undefined) return;
    // A statement that writes nothing still needs a writable database (`BEGIN IMMEDIATE`
    // alone does not: it takes the lock even on a read-only connection).
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      this.#db.exec("DELETE FROM jobs WHERE 0");
    } catch (error) {
      throw new StartupRefusal(
        `cannot write the database ${this.#file}: ${(error as Error).message}`,
      );
    } finally {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
    }
  }

  close(): void {
    if (!this.#db.isOpen) return;
    this.#checkpointer?.stop();
    this.#checkpointer = undefined;
    this.#statements.clear();
    // The last connection to close checkpoints the whole WAL into the database file.
    this.#db.close();
  }
}

function parseJson<T>(text: unknown, fallback: T): T {
  if (typeof text !== "string") return fallback;
  return JSON.parse(text) as T;
}

function nullableString(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

function nullableNumber(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/** A digest of the events a request sent (their types and data), to tell a retry from another request. */
function fingerprintOf(events: readonly NewEvent[]): string {
  const hash = createHash("sha256");
  for (const event of events) {
    hash.update(`${event.type}\n${event.json ?? JSON.stringify(event.data)}\n`);
  }
  return hash.digest("base64");
}

function toRecord(row: Row): JobRecord {
  return {
    id: String(row.id),
    kind: nullableString(row.kind),
    owner: nullableString(row.owner),
    status: String(row.status) as JobStatus,
    progress: Number(row.progress),
    stage: nullableString(row.stage),
    message: nullableString(row.message),
    eta_seconds: nullableNumber(row.eta_seconds),
    created_at: String(row.created_at),
    queued_at: nullableString(row.queued_at),
    started_at: nullableString(row.started_at),
    updated_at: String(row.updated_at),
    completed_at: nullableString(row.completed_at),
    result: parseJson<unknown>(row.result, null),
    error: parseJson<JobError | null>(row.error, null),
    metadata: parseJson<Record<string, unknown>>(row.metadata, {}),
    last_sequence: Number(row.last_sequence),
    first_sequence: Number(row.first_sequence),
    stalled: Number(row.stalled) === 1,
    eta_base_at: nullableNumber(row.eta_base_at),
    eta_base_progress: nullableNumber(row.eta_base_progress),
    last_event_at: Number(row.last_event_at),
  };
}
