/**
 * Telling a dead end from a bad moment: which failures no reconnect can fix (an unknown
 * job, a refused token), and whether the server answers plain HTTP at all.
 *
 * @module
 */
import { JobwireError } from "./errors.ts";
import { Deadline, fetchEventsPage, getJson, type HttpContext } from "./http.ts";
import type { CloseInfo } from "./transport.ts";

/** HTTP statuses after which reconnecting cannot help. */
const FATAL_STATUSES = new Set([400, 401, 403, 404, 410, 422]);

/** WebSocket close code of an unknown, deleted or purged job. */
const JOB_NOT_FOUND = 4004;

/** WebSocket close code of an authentication or authorization failure. */
const POLICY = 1008;

/** The error code of each reason the server gives a 1008 close, as its HTTP errors say it. */
const POLICY_CODES: Readonly<Record<string, string>> = {
  "authentication required": "unauthorized",
  "invalid token": "invalid_token",
  "invalid ticket": "invalid_token",
  "token expired": "token_expired",
  "token revoked": "invalid_token",
  "origin not allowed": "origin_not_allowed",
  "host not allowed": "host_not_allowed",
};

/**
 * The error that makes reconnecting pointless, or `undefined` when a retry may work.
 *
 * @param refreshable whether the next attempt uses new credentials (a token function or
 *   a ticket), in which case an authentication failure is worth a retry
 */
export function fatalError(info: CloseInfo, refreshable: boolean): JobwireError | undefined {
  if (info.code === JOB_NOT_FOUND) {
    // `job_gone` for a job that was there (deleted or purged), as over plain HTTP (410).
    return new JobwireError(info.errorCode ?? "job_not_found", info.reason || "Job not found");
  }
  if (info.code === POLICY && !refreshable) {
    return new JobwireError(
      POLICY_CODES[info.reason] ?? "forbidden",
      info.reason || "Policy violation",
    );
  }
  return isFatal(info.error, refreshable) ? info.error : undefined;
}

/** Whether `error` ends the watch; a 401 does not when the next try has new credentials. */
function isFatal(error: unknown, refreshable: boolean): error is JobwireError {
  if (!(error instanceof JobwireError) || error.status === null) return false;
  if (error.status === 401 && refreshable) return false;
  return FATAL_STATUSES.has(error.status);
}

/** What {@link probeServer} found. */
export type Probe =
  | { ok: true }
  /** `fatal` when no retry can help (an unknown job, no access); else the server is down. */
  | { ok: false; fatal: boolean; error: JobwireError };

/**
 * Asks the server a small question over plain HTTP: one event of `jobId` after `since`
 * (or one job of the list when there is no job id), allowing it `timeoutMs` to answer.
 */
export async function probeServer(
  http: HttpContext,
  jobId: string | undefined,
  since: number,
  signal: AbortSignal,
  refreshable = false,
  timeoutMs = 10_000,
): Promise<Probe> {
  const deadline = new Deadline(timeoutMs, signal);
  try {
    if (jobId === undefined) await getJson(http, "/jobs", { limit: 1 }, deadline.signal);
    else await fetchEventsPage(http, jobId, { since, limit: 1 }, deadline.signal);
    return { ok: true };
  } catch (caught) {
    const error = deadline.timedOut
      ? new JobwireError(
        "network_error",
        `No answer from ${http.baseUrl} within ${timeoutMs} ms`,
        { cause: caught },
      )
      : caught instanceof JobwireError
      ? caught
      : new JobwireError("network_error", String(caught), { cause: caught });
    return { ok: false, fatal: isFatal(error, refreshable), error };
  } finally {
    deadline.clear();
  }
}
