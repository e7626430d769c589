/**
 * The job status machine: canonical statuses, accepted input aliases and the
 * allowed transitions of DESIGN §2.
 *
 * @module
 */

/** Every canonical job status, in lifecycle order. */
export const JOB_STATUSES = [
  "pending",
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
] as const;

/** A canonical job status. */
export type JobStatus = typeof JOB_STATUSES[number];

const TERMINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);

/** Input spellings mapped to a canonical status; matching is case-insensitive. */
const ALIASES: Readonly<Record<string, JobStatus>> = {
  in_progress: "running",
  processing: "running",
  processed: "completed",
  canceled: "cancelled",
};

/** The statuses and their input spellings, for messages: `pending, queued, … (also in_progress, …)`. */
export const STATUS_WORDS = `${JOB_STATUSES.join(", ")} (also ${Object.keys(ALIASES).join(", ")})`;

/** Allowed next statuses; a status may always repeat itself while it is not terminal. */
const NEXT: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  pending: ["queued", "running", "failed", "cancelled"],
  queued: ["running", "failed", "cancelled"],
  running: ["completed", "failed", "cancelled"],
  completed: [],
  failed: [],
  cancelled: [],
};

/**
 * Maps an input status (canonical, alias, any letter case) to its canonical form.
 *
 * @returns the canonical status, or `undefined` when the input names none.
 */
export function normalizeStatus(input: string): JobStatus | undefined {
  const lower = input.trim().toLowerCase();
  if ((JOB_STATUSES as readonly string[]).includes(lower)) return lower as JobStatus;
  return ALIASES[lower];
}

/** Whether a status is final (completed, failed or cancelled). */
export function isTerminal(status: JobStatus): boolean {
  return TERMINAL.has(status);
}

/** Whether a job may move from `from` to `to`. */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  if (isTerminal(from)) return false;
  return from === to || NEXT[from].includes(to);
}
