/**
 * Finding a job for a request (404 or 410) and waiting for its next event (long-poll,
 * `wait=terminal`).
 *
 * @module
 */
import { type Hub, SHUTTING_DOWN, type Subscriber } from "../hub/hub.ts";
import type { WireEvent } from "../hub/wire_event.ts";
import type { JobRecord } from "../jobs/job.ts";
import type { EventStore } from "../store/event_store.ts";
import { ApiError } from "./errors.ts";
import { JOB_ID_PATTERN } from "./schemas.ts";

/**
 * The job with this id.
 *
 * @throws {ApiError} 410 when it was deleted or purged, 404 when it never existed
 */
export function findJob(store: EventStore, id: string): JobRecord {
  const job = JOB_ID_PATTERN.test(id) ? store.getJob(id) : undefined;
  if (job !== undefined) return job;
  if (JOB_ID_PATTERN.test(id) && store.isGone(id)) {
    throw new ApiError("job_gone", `Job ${id} was deleted or purged`);
  }
  throw new ApiError("job_not_found", `No job ${id}`);
}

/**
 * The job after a wait, or the answer when the wait could not end well: 503 when the
 * server's stopping ended it (the client tries again, later or elsewhere), 410 when the
 * job was deleted meanwhile.
 *
 * @param what what was waited for, for the message
 */
export function jobAfterWait(
  store: EventStore,
  id: string,
  ended: WaitOutcome,
  what: string,
): JobRecord {
  if (ended === "shutdown") {
    throw new ApiError("unavailable", "The server is shutting down: retry", undefined, {
      "retry-after": "1",
    });
  }
  const job = store.getJob(id);
  if (ended === "deleted" || job === undefined) {
    throw new ApiError("job_gone", `Job ${id} was deleted while waiting for ${what}`);
  }
  return job;
}

/** How a wait ended. */
export type WaitOutcome = "event" | "timeout" | "aborted" | "deleted" | "shutdown";

/**
 * Resolves when an event of the job that satisfies `match` is committed after this call,
 * or on timeout, abort, deletion of the job or the server stopping.
 */
export function waitForEvent(
  hub: Hub,
  jobId: string,
  timeoutMs: number,
  signal: AbortSignal,
  match: (event: WireEvent) => boolean = () => true,
): Promise<WaitOutcome> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: WaitOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      hub.unsubscribe(jobId, waiter);
      resolve(outcome);
    };
    const waiter: Subscriber = {
      cursor: 0,
      deliver: (event) => {
        if (match(event)) queueMicrotask(() => finish("event"));
      },
      end: (reason) => finish(reason === SHUTTING_DOWN ? "shutdown" : "deleted"),
    };
    const onAbort = () => finish("aborted");
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    signal.addEventListener("abort", onAbort);
    // Joining at the job's current end: nothing is replayed, only what commits next.
    const joined = hub.subscribe(jobId, waiter, Number.MAX_SAFE_INTEGER, 0, () => {});
    if (joined === undefined) finish("deleted");
  });
}
