/**
 * The job snapshot: the state a job's events fold into (DESIGN §2).
 *
 * @module
 */
import type { JobStatus } from "./status.ts";

/** Error details recorded on a job by an `error` event or the `fail` shortcut. */
export interface JobError {
  error: string;
  error_type: string;
  details?: unknown;
}

/** A job's public snapshot, as served by `GET /jobs/:id` and inside `connection` messages. */
export interface Job {
  id: string;
  kind: string | null;
  owner: string | null;
  status: JobStatus;
  /** Percent complete, 0–100. */
  progress: number;
  stage: string | null;
  message: string | null;
  /** Seconds until completion: the producer's figure or an estimate from the progress rate. */
  eta_seconds: number | null;
  created_at: string;
  queued_at: string | null;
  started_at: string | null;
  updated_at: string;
  /** When the job reached a terminal status (completed, failed or cancelled). */
  completed_at: string | null;
  result: unknown;
  error: JobError | null;
  metadata: Record<string, unknown>;
  /** Sequence of the newest persisted event; 0 before the first. */
  last_sequence: number;
  /** Sequence of the oldest retained event; `last_sequence + 1` when none is retained. */
  first_sequence: number;
  /** Set when a running job has had no event for the stall threshold. */
  stalled: boolean;
}

/**
 * A job as the store keeps it: the snapshot plus the bookkeeping that never leaves the
 * server (the base point of the ETA estimate and the time of the last event).
 */
export interface JobRecord extends Job {
  /** Epoch milliseconds and progress of the first progress report the ETA is measured from. */
  eta_base_at: number | null;
  eta_base_progress: number | null;
  /** Epoch milliseconds of the newest event, for stall detection. */
  last_event_at: number;
}

/** The public view of a job record, with `has_result`. */
export function publicJob(record: JobRecord): Job & { has_result: boolean } {
  const {
    eta_base_at: _a,
    eta_base_progress: _p,
    last_event_at: _l,
    ...job
  } = record;
  return { ...job, has_result: record.result !== null && record.result !== undefined };
}

/**
 * The flat snapshot of `format=snapshot` streams (seeds 001/002): one object per state
 * change, without the envelope.
 */
export function flatSnapshot(job: Job): Record<string, unknown> {
  return {
    job_id: job.id,
    status: job.status,
    progress: job.progress,
    stage: job.stage,
    message: job.message,
    created_at: job.created_at,
    updated_at: job.updated_at,
    // The time of the state, under the name flat progress messages give it.
    timestamp: job.updated_at,
    // Whole seconds, as flat progress messages give it: the snapshot's is aged to the
    // millisecond between events (98.747), which a display of "ETA: …s" would show as is.
    estimated_time_remaining: job.eta_seconds === null ? null : Math.round(job.eta_seconds),
    // Flat messages give an error for a job that went wrong: a job that recorded an error and
    // then completed has none here (its snapshot keeps it, with the error's details).
    error: job.status === "completed" ? null : job.error?.error ?? null,
    metadata: job.metadata,
    sequence: job.last_sequence,
  };
}
