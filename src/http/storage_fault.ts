/**
 * Database failures that last (see `store/faults.ts`), remembered for `/healthz` on every
 * isolate: a file damaged in places answers the health check's own read and fails every
 * request that touches those places.
 *
 * @module
 */
import type { AppDeps } from "./app.ts";
import { isLastingFault } from "../store/faults.ts";
import { StoreBusyError } from "../store/event_store.ts";

/** Least time between two messages telling the other isolates of a fault, in ms. */
const TELL_EVERY_MS = 1000;

/** How long a lasting database failure keeps `/healthz` unhealthy after it, in ms. */
export const FAULT_MEMORY_MS = 60_000;

/**
 * Counts a request the database failed, and remembers `error` when it is a failure that
 * lasts, telling the other isolates.
 */
export function noteStorageFault(
  deps: AppDeps,
  error: unknown,
  lasting = isLastingFault(error),
): void {
  deps.stats.storageErrors++;
  if (lasting) markStorageFault(deps);
}

/**
 * Marks the server unhealthy for {@link FAULT_MEMORY_MS} from now, on every isolate (told
 * at most every {@link TELL_EVERY_MS}).
 */
export function markStorageFault(deps: AppDeps): void {
  const now = Date.now();
  const last = deps.stats.storageFaultAt;
  deps.stats.storageFaultAt = now;
  if (last === undefined || now - last >= TELL_EVERY_MS) deps.peers.fault(now);
}

/** Seconds since the last lasting failure, when it was within {@link FAULT_MEMORY_MS}. */
export function recentStorageFault(deps: AppDeps): number | undefined {
  const at = deps.stats.storageFaultAt;
  if (at === undefined || Date.now() - at >= FAULT_MEMORY_MS) return undefined;
  return Math.max(0, Math.round((Date.now() - at) / 1000));
}

/** What the database said of a failure, short enough for an answer and a log line. */
export function storageReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

/** Whether `error` is SQLite's (node:sqlite's errors, or the store's busy and lost ones). */
export function isStorageError(error: unknown): boolean {
  return error instanceof StoreBusyError ||
    (error instanceof Error && (error as { code?: unknown }).code === "ERR_SQLITE_ERROR");
}
