/**
 * Writes that wait for another process's write lock without blocking the isolate.
 *
 * @module
 */

import { type EventStore, StoreBusyError } from "./event_store.ts";

/** Longest a request's write waits for a write lock another process holds, in ms. */
export const LOCK_WAIT_MS = 2000;

/**
 * Runs a store write; while another connection holds the write lock it is tried again
 * after short pauses, for up to {@link LOCK_WAIT_MS}, without blocking the isolate (SQLite's
 * own wait would hold every stream it serves meanwhile).
 *
 * @throws {StoreBusyError} when the lock is still taken then (a 503)
 */
export async function writeSoon<T>(store: EventStore, write: () => T): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let pause = 2;; pause = Math.min(pause * 2, 50)) {
    try {
      return store.withoutBlocking(write);
    } catch (error) {
      if (!(error instanceof StoreBusyError) || Date.now() + pause > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
