/**
 * Telling a database failure that passes by itself (busy) from one that lasts until someone
 * acts (a damaged, unreadable, full or read-only file), for `/healthz`.
 *
 * @module
 */

/** SQLite's primary result codes of failures that do not pass by waiting. */
const LASTING_FAULTS = new Set([
  8, // SQLITE_READONLY
  10, // SQLITE_IOERR
  11, // SQLITE_CORRUPT
  13, // SQLITE_FULL
  14, // SQLITE_CANTOPEN
  26, // SQLITE_NOTADB
]);

/**
 * Whether a database error says the database is damaged, unreadable, full or read-only:
 * requests keep failing until someone acts (a busy database passes by itself).
 */
export function isLastingFault(error: unknown): boolean {
  const e = error as { errcode?: unknown; code?: unknown } | null;
  return typeof e?.errcode === "number" && e.code === "ERR_SQLITE_ERROR" &&
    LASTING_FAULTS.has(e.errcode & 0xff);
}
