/**
 * One server per data directory. Two servers on one database commit to the same jobs,
 * but each tells only its own watchers: live streams on one miss what the other commits.
 * The server holds an exclusive SQLite lock on `jobwire.lock` for as long as it runs; the
 * system lets go of it when the process ends, however it ends.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, join, resolve } from "node:path";
import { mkdirSync, statSync } from "node:fs";
import { ConfigError } from "../config.ts";
import { createPrivateFile } from "./sqlite_store.ts";

/** Name of the lock file inside the data directory. */
export const LOCK_FILE = "jobwire.lock";
/** Name of the file that says which process holds the lock. */
const HOLDER_FILE = "jobwire.pid";

/**
 * Refuses a data directory that is a file, or that would be made inside one, as a usage
 * error naming it (the file system would say EEXIST or ENOTDIR).
 *
 * @throws {ConfigError}
 */
export function refuseFileAsDataDir(dataDir: string): void {
  if (dataDir === ":memory:") return;
  const absolute = resolve(dataDir);
  for (let path = absolute;; path = dirname(path)) {
    let stat;
    try {
      stat = statSync(path, { throwIfNoEntry: false });
    } catch (error) {
      // ENOTDIR: a parent of it is a file, found further up.
      if ((error as { code?: string }).code !== "ENOTDIR") throw error;
    }
    if (stat !== undefined) {
      if (stat.isDirectory()) return;
      throw new ConfigError(
        path === absolute
          ? `The data directory ${dataDir} is a file, not a directory`
          : `The data directory ${dataDir} would be inside ${path}, which is a file`,
      );
    }
    if (dirname(path) === path) return;
  }
}

/** A held lock on a data directory. */
export interface DataLock {
  release(): void;
}

/**
 * Takes the data directory's lock, making the directory (private: the database holds
 * password hashes and tickets) when there is none.
 *
 * @throws {ConfigError} naming the process that holds it, when another server does
 */
export function lockDataDir(dataDir: string): DataLock {
  refuseFileAsDataDir(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, LOCK_FILE);
  createPrivateFile(path);
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA busy_timeout = 0");
    // In exclusive locking mode the lock a write takes is kept until the connection closes.
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    // A file SQLite could only open read-only takes no lock at all, and would let a second
    // server on the directory (asked of the file: a write would need room on the disk).
    Deno.openSync(path, { write: true }).close();
    db.exec("BEGIN EXCLUSIVE");
    db.exec("COMMIT");
  } catch (error) {
    db.close();
    const message = String((error as Error).message);
    if (!/locked|busy/i.test(message)) {
      throw new ConfigError(
        `Cannot lock the data directory with ${path}: ${message}` +
          (/full|no space/i.test(message)
            ? " (the disk is full)"
            : " (it holds no data: if no jobwire server runs on this directory, delete it, " +
              "or make it writable)"),
      );
    }
    let holder = "";
    try {
      holder = ` (pid ${Deno.readTextFileSync(join(dataDir, HOLDER_FILE)).trim()})`;
    } catch {
      // No note of who holds it: the message goes without.
    }
    throw new ConfigError(
      `The data directory ${dataDir} is in use by another jobwire server${holder}: ` +
        "stop it, or give this one its own --data-dir",
    );
  }
  try {
    Deno.writeTextFileSync(join(dataDir, HOLDER_FILE), `${Deno.pid}\n`, { mode: 0o600 });
  } catch {
    // Only a note for the message above.
  }
  return {
    release() {
      db.close();
    },
  };
}

/** Files of the data directory that only the server's user may read. */
const PRIVATE_FILES = ["jwt-secret", "jobwire.db", "jobwire.db-wal", "jobwire.db-shm"];

/**
 * Makes the data directory's own files private again when they are not (a secret others
 * can read lets them sign admin tokens), and says so; says too when the directory itself
 * is writable by others (they could replace the secret), which is left to its owner.
 *
 * @returns warnings for the log
 */
export function guardDataDir(dataDir: string): string[] {
  if (Deno.build.os === "windows") return [];
  const warnings: string[] = [];
  for (const name of PRIVATE_FILES) {
    const path = join(dataDir, name);
    let mode: number | null;
    try {
      const info = Deno.statSync(path);
      // Something else under the name (a directory) is refused later, and left as it is.
      if (!info.isFile) continue;
      mode = info.mode;
    } catch {
      continue; // Not made yet: it will be made private.
    }
    if (mode === null || (mode & 0o077) === 0) continue;
    // Only what others may do is taken away: a file its owner made read-only stays so (and
    // is refused at start as such, rather than made writable behind the owner's back).
    const private_ = mode & 0o700;
    const octal = private_.toString(8).padStart(4, "0");
    try {
      Deno.chmodSync(path, private_);
      warnings.push(
        `${path} could be read by other users (mode ${
          (mode & 0o777).toString(8)
        }): made it ${octal}` +
          (name === "jwt-secret"
            ? "; if someone else may have read it, delete it for a new one (tokens signed with it stop working)"
            : ""),
      );
    } catch (error) {
      warnings.push(`${path} can be read by other users and could not be made private: ${error}`);
    }
  }
  try {
    const mode = Deno.statSync(dataDir).mode;
    if (mode !== null && (mode & 0o022) !== 0) {
      warnings.push(
        `the data directory ${dataDir} is writable by other users (mode ` +
          `${(mode & 0o777).toString(8)}): they could replace its secret or database; chmod 700 it`,
      );
    }
  } catch {
    // Made by the lock just before; nothing to say.
  }
  return warnings;
}
