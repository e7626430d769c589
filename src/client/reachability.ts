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

/**
 * What HTTP answers (code, status, message) for each reason the server gives a 1008 close,
 * so that a watcher refused over a WebSocket ends with the error an SSE or polling watcher
 * of the same job gets.
 */
const POLICY_ERRORS: Readonly<Record<string, readonly [string, number, string]>> = {
  "authentication required": [
    "unauthorized",
    401,
    "Authentication required: send a bearer token",
  ],
  "invalid token": ["invalid_token", 401, "The token is invalid"],
  "invalid ticket": ["invalid_token", 401, "The ticket is unknown, used or expired"],
  "token expired": ["token_expired", 401, "The token has expired"],
  "token revoked": [
    "invalid_token",
    401,
    "The token was revoked (signed out, or its user removed)",
  ],
  "origin not allowed": [
    "origin_not_allowed",
    403,
    "This Origin may not use the API (see --allowed-origins)",
  ],
  "host not allowed": [
    "host_not_allowed",
    403,
    "This server without authentication does not answer to this host name (see --allowed-hosts)",
  ],
  forbidden: ["forbidden", 403, "Not allowed"],
};

/**
 * The error that makes reconnecting pointless, or `undefined` when a retry may work.
 *
 * @param refreshable whether the next attempt uses new credentials (a token function or
 *   a ticket), in which case an authentication failure (not a refusal) is worth a retry
 * @param jobId the one job the stream followed, named in a refusal as HTTP names it
 */
export function fatalError(
  info: CloseInfo,
  refreshable: boolean,
  jobId?: string,
): JobwireError | undefined {
  if (info.code === JOB_NOT_FOUND) {
    // `job_gone` for a job that was there (deleted or purged), as over plain HTTP (410), and
    // with HTTP's status and, for the stream's own job, its words.
    const code = info.errorCode ?? "job_not_found";
    const gone = code === "job_gone";
    const message = jobId === undefined
      ? info.reason || "Job not found"
      : gone
      ? `Job ${jobId} was deleted or purged`
      : `No job ${jobId}`;
    return new JobwireError(code, message, { status: gone ? 410 : 404 });
  }
  const known = info.code === POLICY ? POLICY_ERRORS[info.reason] : undefined;
  // New credentials may cure a failed authentication (401), never a refusal (403), as over
  // HTTP; a reason this client does not know is tried again with them.
  const curable = known === undefined || known[1] === 401;
  if (info.code === POLICY && (!refreshable || !curable)) {
    // A reason this client does not know (a refusal of the request itself, such as too many
    // jobs for one stream): its HTTP status is not known either.
    if (known === undefined) {
      return new JobwireError("forbidden", info.reason || "Policy violation");
    }
    const [code, status, message] = known;
    return new JobwireError(
      code,
      code === "forbidden" && jobId !== undefined ? `No access to job ${jobId}` : message,
      { status },
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
