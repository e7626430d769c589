/**
 * Folds one validated event into a job record: the status machine, timestamps, the
 * snapshot fields each built-in type sets, and the automatic ETA.
 *
 * @module
 */
import type { JobError, JobRecord } from "./job.ts";
import type { NewEvent } from "./events.ts";
import { canTransition, isTerminal, type JobStatus } from "./status.ts";

/** Why an event cannot apply to a job; both answer 409. */
export interface Refusal {
  code: "job_finished" | "invalid_transition";
  message: string;
  /** For `job_finished`: the status the job ended in, so a producer can tell a cancel. */
  details?: { status: JobStatus };
}

/** The job after the event, and the event data as it will be persisted. */
export interface Applied {
  record: JobRecord;
  data: Record<string, unknown>;
}

/** Below this much progress since the ETA base point, an estimate would be noise. */
const MIN_PROGRESS_FOR_ETA = 0.5;

/** Below this many seconds since the ETA base point, an estimate would be noise. */
const MIN_SECONDS_FOR_ETA = 1;

/**
 * An ETA given at `from` as it stands at `to` (both ISO 8601), to the millisecond; the
 * client library ages a snapshot's the same way.
 */
export function agedEta(eta: number, from: string, to: string): number {
  const elapsed = (Date.parse(to) - Date.parse(from)) / 1000;
  if (!(elapsed > 0)) return eta;
  return Math.max(0, Math.round((eta - elapsed) * 1000) / 1000);
}

/**
 * Applies `event` to `record` at time `now` (epoch milliseconds).
 *
 * @param iso `now` in ISO 8601, when the caller has it already (formatting it costs about as
 *   much as the rest of this function, and every event of a request shares it)
 * @returns the new record and the data to persist, or a refusal.
 */
export function applyEvent(
  record: JobRecord,
  event: NewEvent,
  now: number,
  iso: string = new Date(now).toISOString(),
): Applied | Refusal {
  if (isTerminal(record.status)) {
    return {
      code: "job_finished",
      message: `Job ${record.id} is ${record.status}: it accepts no more events`,
      details: { status: record.status },
    };
  }
  const next: JobRecord = {
    ...record,
    updated_at: iso,
    last_sequence: record.last_sequence + 1,
    last_event_at: now,
    stalled: false,
  };
  let data = event.data;
  // The ETA is as of `updated_at`, from which viewers count it down: an event that gives
  // none (a log line) ages it by the time since, or it would go back up on every event.
  if (event.type !== "progress" && record.eta_seconds !== null) {
    next.eta_seconds = agedEta(record.eta_seconds, record.updated_at, iso);
  }
  switch (event.type) {
    case "status": {
      const to = data.status as JobStatus;
      if (!canTransition(record.status, to)) {
        return {
          code: "invalid_transition",
          message: `Job ${record.id} cannot move from ${record.status} to ${to}` +
            (to === "completed" && !isTerminal(record.status)
              ? ": start it first (status running, or POST /jobs/:id/start)"
              : ""),
        };
      }
      next.status = to;
      // A start or an end says its own message or none: the words of the wait ("Position 2
      // in queue") or of the last step ("Transcribing…") would read as what the job is doing
      // still. A move into the queue keeps what the job said while it waited.
      if (typeof data.message === "string") next.message = data.message;
      else if (isTerminal(to) || (to === "running" && record.status !== "running")) {
        next.message = null;
      }
      if (to === "queued" && next.queued_at === null) next.queued_at = iso;
      if (to === "running" && next.started_at === null) next.started_at = iso;
      if (isTerminal(to)) {
        next.completed_at = iso;
        next.eta_seconds = null;
        if (to === "completed") {
          next.progress = 100;
          next.eta_seconds = 0;
        }
      }
      break;
    }
    case "progress": {
      const progress = data.progress as number;
      next.progress = progress;
      // A progress event may say `running` (and nothing else): a job not yet started is
      // started by it, as its producer meant, rather than keep a status its data denies.
      if (data.status === "running" && record.status !== "running") {
        next.status = "running";
        if (next.started_at === null) next.started_at = iso;
        // As a status event's start: the words of the wait are not the work's.
        if (typeof data.message !== "string") next.message = null;
      }
      if (typeof data.stage === "string") next.stage = data.stage;
      if (typeof data.message === "string") next.message = data.message;
      if (next.eta_base_at === null || next.eta_base_progress === null) {
        // A started job is taken to have begun at 0 %, which gives an estimate from the
        // first report; otherwise the first report is the base point.
        const startedAt = next.started_at === null ? NaN : Date.parse(next.started_at);
        const fromStart = !Number.isNaN(startedAt) && startedAt < now;
        next.eta_base_at = fromStart ? startedAt : now;
        next.eta_base_progress = fromStart ? 0 : progress;
      } else if (progress < next.eta_base_progress) {
        next.eta_base_at = now;
        next.eta_base_progress = progress;
      }
      if (typeof data.eta_seconds === "number") {
        next.eta_seconds = data.eta_seconds;
      } else {
        const eta = estimateEta(next.eta_base_at, next.eta_base_progress, now, progress);
        next.eta_seconds = eta;
        if (eta !== null) data = { ...data, eta_seconds: eta, eta_estimated: true };
      }
      break;
    }
    case "result":
      next.result = data.results ?? null;
      break;
    case "error": {
      const error: JobError = { error: String(data.error), error_type: String(data.error_type) };
      if (data.details !== undefined) error.details = data.details;
      next.error = error;
      break;
    }
    default:
      break;
  }
  return { record: next, data };
}

/**
 * Seconds left at the average rate since the base point, or `null` when there is too
 * little progress to tell.
 */
export function estimateEta(
  baseAt: number,
  baseProgress: number,
  now: number,
  progress: number,
): number | null {
  if (progress >= 100) return 0;
  const gained = progress - baseProgress;
  const elapsed = (now - baseAt) / 1000;
  if (gained < MIN_PROGRESS_FOR_ETA || elapsed < MIN_SECONDS_FOR_ETA) return null;
  return Math.round((elapsed / gained) * (100 - progress));
}

/** Whether an error is a refusal rather than an applied event. */
export function isRefusal(outcome: Applied | Refusal): outcome is Refusal {
  return "code" in outcome;
}
