/**
 * Schema migrations, applied in order, each in its own transaction, tracked with
 * `PRAGMA user_version`. A database written by a newer jobwire is refused rather than
 * misread.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { log } from "../log.ts";
import { StartupRefusal } from "../startup_errors.ts";

/** Ordered schema steps; step `i` moves the database to version `i + 1`. Append only. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT,
    owner TEXT,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT,
    message TEXT,
    eta_seconds REAL,
    created_at TEXT NOT NULL,
    queued_at TEXT,
    started_at TEXT,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    result TEXT,
    error TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    last_sequence INTEGER NOT NULL DEFAULT 0,
    first_sequence INTEGER NOT NULL DEFAULT 1,
    stalled INTEGER NOT NULL DEFAULT 0,
    eta_base_at INTEGER,
    eta_base_progress REAL,
    last_event_at INTEGER NOT NULL,
    ended_at INTEGER
  );
  CREATE INDEX jobs_by_status ON jobs (status);
  CREATE INDEX jobs_by_kind ON jobs (kind);
  CREATE INDEX jobs_by_owner ON jobs (owner);
  CREATE INDEX jobs_by_ended ON jobs (ended_at) WHERE ended_at IS NOT NULL;
  CREATE INDEX jobs_running ON jobs (last_event_at) WHERE status = 'running';
  CREATE TABLE events (
    job_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    type TEXT NOT NULL,
    envelope TEXT NOT NULL,
    PRIMARY KEY (job_id, sequence)
  ) WITHOUT ROWID;
  CREATE TABLE idempotency (
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    sequences TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, key)
  ) WITHOUT ROWID;
  CREATE INDEX idempotency_by_created ON idempotency (created_at);
  CREATE TABLE tombstones (
    id TEXT PRIMARY KEY,
    gone_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX tombstones_by_gone ON tombstones (gone_at);
  `,
  `
  CREATE TABLE users (
    username TEXT PRIMARY KEY,
    salt TEXT NOT NULL,
    hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    origin TEXT,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX tickets_by_expiry ON tickets (expires_at);
  CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX login_failures_by_key ON login_failures (key, at);
  `,
  `
  CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // Every event moves last_event_at: an index on it cost each publish an index rewrite.
  // The stall sweep finds running jobs through jobs_by_status instead.
  `
  DROP INDEX jobs_running;
  `,
  // Events keep their type, time and data, not the whole envelope: its job and sequence
  // are the row's key already, and the envelope is rebuilt from the parts byte for byte.
  // Rows become about half as large, and a commit writes fewer pages. An envelope is
  // \`{"type":…,"job_id":…,"sequence":…,"timestamp":…,"data":<data>}\`, and neither a type
  // nor a job id can hold a quote, so its data starts after the first \`"data":\`.
  `
  CREATE TABLE events_parts (
    job_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    type TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, sequence)
  ) WITHOUT ROWID;
  INSERT INTO events_parts (job_id, sequence, type, timestamp, data)
    SELECT job_id, sequence, type, json_extract(envelope, '$.timestamp'),
      substr(envelope, instr(envelope, '"data":') + 7,
        length(envelope) - instr(envelope, '"data":') - 7)
    FROM events;
  DROP TABLE events;
  ALTER TABLE events_parts RENAME TO events;
  `,
  // What each key was first sent with, so that a key reused for other events is refused
  // rather than answered with the first request's sequences. Keys stored before have none.
  `
  ALTER TABLE idempotency ADD COLUMN fingerprint TEXT;
  `,
  // Tokens signed out before they expire (`jti` of tokens from POST /auth/login), kept
  // until then.
  `
  CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // When a user's password or scopes were last set: sign-in tokens issued before are
  // refused. Users stored before have none (their creation time stands for it).
  `
  ALTER TABLE users ADD COLUMN changed_at TEXT;
  `,
  // The job each create with an Idempotency-Key made (and no id), by the caller and key,
  // so that a retry answers it; kept as long as publishes' keys.
  `
  CREATE TABLE create_keys (
    caller_key TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
];

/**
 * Brings the database to the newest schema.
 *
 * @throws {RangeError} when the database is newer than this code
 */
export function migrate(db: DatabaseSync): void {
  const version = () =>
    (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
  /** The database had a schema before: its steps are logged (a new one takes them silently). */
  let upgrading: boolean | undefined;
  for (;;) {
    // The version is read inside the write transaction: several isolates may open the
    // same file at once, and only one of them may apply each step.
    db.exec("BEGIN IMMEDIATE");
    try {
      const current = version();
      if (current > MIGRATIONS.length) {
        throw new StartupRefusal(
          `Database schema version ${current} is newer than this jobwire supports (${MIGRATIONS.length}): upgrade jobwire`,
        );
      }
      if (current === MIGRATIONS.length) {
        db.exec("COMMIT");
        return;
      }
      // An existing database is said to be upgraded: a step that rewrites a large table
      // keeps the server from starting for a while.
      upgrading ??= current > 0;
      const started = performance.now();
      if (upgrading) {
        log("info", "upgrading the database schema", { from: current, to: current + 1 });
      }
      db.exec(MIGRATIONS[current]!);
      db.exec(`PRAGMA user_version = ${current + 1}`);
      db.exec("COMMIT");
      if (upgrading) {
        log("info", "upgraded the database schema", {
          version: current + 1,
          ms: Math.round(performance.now() - started),
        });
      }
    } catch (error) {
      // SQLite has rolled back already after some errors (a full disk): a ROLLBACK then
      // would throw, and its error would hide the one that says what happened.
      if (db.isTransaction) db.exec("ROLLBACK");
      throw error;
    }
  }
}
