/**
 * A worker thread that moves committed WAL frames into the database file in the
 * background (`wal_checkpoint(PASSIVE)`), so the fsync a checkpoint needs never runs on
 * a thread that serves requests.
 *
 * Messages: `{path, intervalMs, done}` starts it (`done` is a shared Int32Array); `"stop"`
 * makes it close its connection, set `done[0]` to 1 and notify, so the owner can wait
 * until the file is no longer held open.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

let db: DatabaseSync | undefined;
let timer: ReturnType<typeof setInterval> | undefined;
let done: Int32Array | undefined;

function checkpoint(): void {
  try {
    db?.prepare("PRAGMA wal_checkpoint(PASSIVE)").get();
  } catch {
    // Busy (another checkpoint, or a writer mid-commit): the next tick tries again.
  }
}

function stop(): void {
  if (timer !== undefined) clearInterval(timer);
  checkpoint();
  try {
    db?.close();
  } catch {
    // Already closed.
  }
  db = undefined;
  if (done !== undefined) {
    Atomics.store(done, 0, 1);
    Atomics.notify(done, 0);
  }
  self.close();
}

self.onmessage = (
  e: MessageEvent<{ path: string; intervalMs: number; done: Int32Array } | "stop">,
) => {
  if (e.data === "stop") return stop();
  done = e.data.done;
  try {
    // Only an existing database: this thread never creates one.
    Deno.statSync(e.data.path);
    db = new DatabaseSync(e.data.path);
    db.exec("PRAGMA busy_timeout = 100");
    timer = setInterval(checkpoint, e.data.intervalMs);
  } catch {
    db = undefined;
  }
};
