/**
 * `main.ts wait JOB [--timeout S]`: blocks until a job ends, by long-polling
 * `GET /jobs/:id?wait=terminal&timeout=…` (no stream held open), and exits with a code
 * that says how it ended — for shell scripts and CI steps.
 *
 * @module
 */
import { ConfigError, TIMER_MAX_MS } from "../config.ts";
import { backoffDelay, sleep } from "../client/backoff.ts";
import { JobwireError } from "../client/errors.ts";
import { getJson, type HttpContext, jobPath } from "../client/http.ts";
import { isTerminalStatus, type JobSnapshot } from "../client/types.ts";
import { authHint, connectionOf, parseCommandLine, secondsFlag } from "./client_args.ts";
import { formatDuration, formatPercent, summaryLine } from "./render.ts";
import { EXIT_UNFOLLOWABLE, exitCodeOf } from "./watch.ts";

export const WAIT_USAGE = `Usage: main.ts wait JOB [--timeout S] [--server URL] [--token T] [--json]

Blocks until the job ends, then prints one line (or, with --json, the job's final
snapshot) and exits: 0 completed, 1 failed, 130 cancelled; 124 when --timeout passes
first (as timeout(1) does); 3 when the job cannot be waited for (unknown job, no access);
2 usage. Connection problems are retried until the timeout.

  --timeout <s>    give up after this long: seconds, or 30s, 10m, 1h [wait for ever]
  --server <url>   jobwire server [JOBWIRE_SERVER, else http://127.0.0.1:8080]
  --token <token>  bearer token with read access to the job [JOBWIRE_TOKEN]
  --json           print the final snapshot as JSON`;

/** Exit status when the timeout passes before the job ends (as `timeout(1)`). */
export const EXIT_TIMEOUT = 124;

/** How long past the deadline the last look at the job may take, in milliseconds. */
const FINAL_LOOK_MS = 1000;

/** Longest single wait asked of the server, in seconds (it allows up to 3600). */
const CHUNK_SECONDS = 60;

/** Result of {@link waitForJob}. */
export type WaitOutcome =
  | { kind: "ended"; job: JobSnapshot }
  | { kind: "timeout"; job: JobSnapshot | undefined }
  | { kind: "refused"; error: JobwireError };

/**
 * Waits until `jobId` is terminal or `timeoutSeconds` pass (`undefined`: no limit).
 * Network errors and 5xx are retried with backoff; `onRetry` hears about each.
 *
 * @param signal stops the wait: its reason is thrown
 */
export async function waitForJob(
  http: HttpContext,
  jobId: string,
  timeoutSeconds: number | undefined,
  onRetry: (error: JobwireError, attempt: number) => void = () => {},
  signal?: AbortSignal,
): Promise<WaitOutcome> {
  const deadline = timeoutSeconds === undefined ? Infinity : Date.now() + timeoutSeconds * 1000;
  let job: JobSnapshot | undefined;
  let attempt = 0;
  for (;;) {
    const left = (deadline - Date.now()) / 1000;
    // The server takes whole seconds: wait out a fraction here, then look once more.
    const chunk = Math.min(CHUNK_SECONDS, Math.floor(Math.max(0, left)));
    if (chunk === 0 && left > 0 && job !== undefined) await sleep(left * 1000, signal);
    // No request outlives the deadline by more than a moment, even to a server that hangs.
    // A deadline further off than a timer can wait (24 days) is not near: each request is
    // bounded by its own chunk meanwhile, and a longer timer would fire at once.
    const until = Math.max(0, deadline - Date.now()) + FINAL_LOOK_MS;
    const limit = until > TIMER_MAX_MS ? undefined : AbortSignal.timeout(until);
    const cut = limit !== undefined && signal !== undefined
      ? AbortSignal.any([limit, signal])
      : limit ?? signal;
    try {
      job = await getJson<JobSnapshot>(
        http,
        jobPath(jobId),
        { wait: "terminal", timeout: chunk },
        cut,
        chunk * 1000,
      );
      attempt = 0;
    } catch (error) {
      signal?.throwIfAborted();
      if (Date.now() >= deadline) return { kind: "timeout", job };
      if (!(error instanceof JobwireError) || !error.retryable) {
        if (error instanceof JobwireError) return { kind: "refused", error };
        throw error;
      }
      attempt++;
      onRetry(error, attempt);
      // Waits out the backoff, or what is left of the timeout and then looks once more.
      const delay = backoffDelay(attempt, { initialDelayMs: 500, maxDelayMs: 10_000 });
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
      continue;
    }
    if (isTerminalStatus(job.status)) return { kind: "ended", job };
    if (Date.now() >= deadline) return { kind: "timeout", job };
  }
}

/** `main.ts wait …`: returns the exit code. */
export async function waitCommand(args: string[]): Promise<number> {
  const line = parseCommandLine(args, {
    values: ["server", "token", "timeout"],
    booleans: ["json"],
  });
  if (line.flags.has("help")) {
    console.log(WAIT_USAGE);
    return 0;
  }
  const [jobId, extra] = line.positional;
  if (jobId === undefined || jobId === "") {
    throw new ConfigError("wait needs a job id: main.ts wait JOB (see --help)");
  }
  if (extra !== undefined) throw new ConfigError(`Unexpected argument ${JSON.stringify(extra)}`);
  const timeout = secondsFlag(line, "timeout");
  const { server, token } = connectionOf(line);
  let told = false;
  const outcome = await waitForJob({ baseUrl: server, token, fetch }, jobId, timeout, (error) => {
    if (told) return;
    told = true;
    console.error(`jobwire: ${error.message}; retrying`);
  });
  const json = line.flags.has("json");
  switch (outcome.kind) {
    case "ended":
      console.log(json ? JSON.stringify(outcome.job) : summaryLine(jobId, outcome.job, false));
      return exitCodeOf(outcome.job.status);
    case "timeout": {
      const job = outcome.job;
      const state = job === undefined
        ? ""
        : `; the job is ${job.status} (${formatPercent(job.progress)})`;
      if (json && job !== undefined) console.log(JSON.stringify(job));
      const after = (timeout ?? 0) < 60 ? `${timeout ?? 0}s` : formatDuration(timeout ?? 0);
      console.error(`jobwire: timed out after ${after}${state}`);
      return EXIT_TIMEOUT;
    }
    case "refused": {
      const hint = authHint(outcome.error, token !== undefined);
      console.error(`jobwire: cannot wait for job ${jobId}: ${outcome.error.message}${hint}`);
      return EXIT_UNFOLLOWABLE;
    }
  }
}
