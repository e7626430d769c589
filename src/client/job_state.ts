/**
 * Folds events into a job snapshot on the client, as the server does (status,
 * progress, stage, message, ETA, result, error), so a watcher's `job` stays current
 * between the snapshots the server sends on each connection.
 *
 * @module
 */
import { isTerminalStatus, type JobEvent, type JobSnapshot, type JobStatus } from "./types.ts";

/** Event types that change a snapshot. */
const STATE_TYPES = new Set(["status", "progress", "result", "error"]);

/** Whether an event of `type` changes the job snapshot. */
export function changesState(type: string): boolean {
  return STATE_TYPES.has(type);
}

/** Whether `event` is the server's warning that its job went quiet for `--stall-after`. */
export function isStallWarning(event: JobEvent): boolean {
  return event.type === "log" && event.data.source === "jobwire" && event.data.stalled === true;
}

/**
 * The snapshot after `event`. Returns `job` itself when the event is not newer than the
 * snapshot (a replayed event the snapshot already reflects).
 */
export function applyEvent(job: JobSnapshot, event: JobEvent): JobSnapshot {
  if (event.sequence <= job.last_sequence) return job;
  const next: JobSnapshot = {
    ...job,
    last_sequence: event.sequence,
    updated_at: event.timestamp,
    // As on the server: the warning marks the job stalled, and any later event clears it.
    stalled: isStallWarning(event),
  };
  const data = event.data;
  // As on the server: the ETA is as of `updated_at`, and an event that gives none ages it.
  if (event.type !== "progress" && job.eta_seconds !== null) {
    const elapsed = (Date.parse(event.timestamp) - Date.parse(job.updated_at)) / 1000;
    if (elapsed > 0) {
      next.eta_seconds = Math.max(0, Math.round((job.eta_seconds - elapsed) * 1000) / 1000);
    }
  }
  switch (event.type) {
    case "status": {
      const status = data.status as JobStatus;
      next.status = status;
      // As on the server: a start or an end says its own message or none.
      if (typeof data.message === "string") next.message = data.message;
      else if (
        isTerminalStatus(status) || (status === "running" && job.status !== "running")
      ) next.message = null;
      if (status === "queued" && next.queued_at === null) next.queued_at = event.timestamp;
      if (status === "running" && next.started_at === null) next.started_at = event.timestamp;
      if (isTerminalStatus(status)) {
        next.completed_at = event.timestamp;
        next.eta_seconds = status === "completed" ? 0 : null;
        if (status === "completed") next.progress = 100;
      }
      break;
    }
    case "progress":
      if (typeof data.progress === "number") next.progress = data.progress;
      // As on the server: a progress event that says `running` starts a job not yet started.
      if (data.status === "running" && (next.status === "pending" || next.status === "queued")) {
        next.status = "running";
        if (next.started_at === null) next.started_at = event.timestamp;
        next.message = null;
      }
      if (typeof data.stage === "string") next.stage = data.stage;
      if (typeof data.message === "string") next.message = data.message;
      next.eta_seconds = typeof data.eta_seconds === "number" ? data.eta_seconds : null;
      break;
    case "result":
      next.result = data.results ?? null;
      next.has_result = next.result !== null;
      break;
    case "error":
      next.error = {
        error: String(data.error),
        error_type: typeof data.error_type === "string" ? data.error_type : "general",
        ...(data.details === undefined ? {} : { details: data.details }),
      };
      break;
  }
  return next;
}

/** Whether the job has ended and `cursor` has reached its last event. */
export function isFinished(job: JobSnapshot | undefined, cursor: number): boolean {
  return job !== undefined && isTerminalStatus(job.status) && cursor >= job.last_sequence;
}
