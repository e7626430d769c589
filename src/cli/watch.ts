/**
 * `main.ts watch JOB`: follows a job in the terminal through the client's `watchJob`
 * (WebSocket, falling back to SSE and long-poll; reconnects and resumes from the last
 * event it showed) until the job ends, and exits with a code that says how it ended.
 *
 * @module
 */
import { ConfigError } from "../config.ts";
import { watchJob } from "../client/watch_job.ts";
import type { JobwireError } from "../client/errors.ts";
import type { JobSnapshot, JobStatus, TokenSource } from "../client/types.ts";
import { authHint, connectionOf, flagValue, parseCommandLine } from "./client_args.ts";
import { formatDuration } from "./render.ts";
import { createOutput, type OutputMode, STDIO, type WatchOutput } from "./watch_output.ts";

export const WATCH_USAGE = `Usage: main.ts watch JOB [--server URL] [--token T] [--since N] [--json]

Follows a job until it ends: on a terminal, a progress bar (percentage, stage, ETA,
elapsed time) redrawn in place with log lines scrolling above it (levels in colour unless
NO_COLOR is set); otherwise one plain line per event, for CI logs. Reconnects and resumes
where it stopped when the connection drops.

  --server <url>   jobwire server [JOBWIRE_SERVER, else http://127.0.0.1:8080]
  --token <token>  bearer token with read access to the job [JOBWIRE_TOKEN]
  --since <n>      show only events after sequence n [0: every event the server keeps]
  --json           print each event's envelope as one JSON line (NDJSON)

Exit status: 0 completed, 1 failed, 130 cancelled (or interrupted with Ctrl-C),
3 when the job cannot be followed (unknown job, no access, server unreachable), 2 usage.`;

/** Exit status of a job's final status (`watch`, `wait`, `demo`). */
export const EXIT_CODES: Readonly<Record<"completed" | "failed" | "cancelled", number>> = {
  completed: 0,
  failed: 1,
  cancelled: 130,
};

/** Exit status when a job cannot be followed or waited for. */
export const EXIT_UNFOLLOWABLE = 3;

/** Exit status for a final status (1 for anything unexpected). */
export function exitCodeOf(status: JobStatus | string): number {
  return EXIT_CODES[status as keyof typeof EXIT_CODES] ?? 1;
}

/** Options of {@link followJob}. */
export interface FollowOptions {
  token?: TokenSource | undefined;
  /** Sequence already seen; default 0. */
  since?: number;
  output: WatchOutput;
  /** Stops following (counted as an interruption). */
  signal?: AbortSignal;
}

/** How following ended. */
export interface FollowOutcome {
  /** Exit status: by the final status, 130 when interrupted, 3 when it could not follow. */
  code: number;
  job: JobSnapshot | undefined;
  /** Why it stopped without an end, when it did. */
  reason?: string;
}

/** Follows `jobId` into `output` until it ends, the watcher gives up, or `signal` aborts. */
export function followJob(
  server: string,
  jobId: string,
  options: FollowOptions,
): Promise<FollowOutcome> {
  const { output } = options;
  return new Promise((resolve) => {
    const watcher = watchJob(server, jobId, {
      token: options.token,
      since: options.since ?? 0,
      closeOnFinish: true,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    let lastError: JobwireError | undefined;
    let finished: { status: JobStatus; job: JobSnapshot | undefined } | undefined;
    let lost = false;
    /** Why the server closed the last stream itself (a slow reader, a long replay). */
    let closedBy: string | undefined;
    watcher.on("event", (event) => output.event(event));
    watcher.on("snapshot", ({ job }) => output.snapshot(job));
    watcher.on("error", (error) => (lastError = error));
    watcher.on("disconnected", ({ code, reason }) => {
      lost = true;
      // A close the server chose, with its words: not a network failure.
      closedBy = code !== null && code >= 4000 && reason !== "" ? reason : undefined;
      output.setNote("reconnecting");
    });
    watcher.on("reconnecting", ({ attempt, delayMs }) => {
      if (closedBy !== undefined && lastError === undefined) {
        output.notice(`jobwire: the server closed the stream (${closedBy}); resuming`);
        return;
      }
      const why = lastError === undefined ? "" : `: ${lastError.message}`;
      output.notice(
        `jobwire: no connection${why}; retrying in ${retryDelay(delayMs)} ` +
          `(attempt ${attempt})`,
      );
    });
    watcher.on("connected", ({ transport }) => {
      if (lost) output.notice(`jobwire: reconnected (${transport})`);
      lost = false;
      // What went wrong before this connection is no reason for a later loss.
      lastError = undefined;
      closedBy = undefined;
      output.setNote(undefined);
    });
    watcher.on("truncated", ({ since, first_available }) => {
      output.notice(
        since >= first_available
          ? `jobwire: job ${jobId} has no events after ${since}: following it from its latest`
          : `jobwire: events before ${first_available} are no longer kept by the server`,
      );
    });
    watcher.on("finished", ({ status, job }) => (finished = { status, job }));
    watcher.on("closed", ({ reason }) => {
      if (finished !== undefined) {
        output.finish(jobId, finished.job ?? watcher.job);
        resolve({ code: exitCodeOf(finished.status), job: finished.job ?? watcher.job });
        return;
      }
      output.close();
      if (options.signal?.aborted) {
        resolve({ code: EXIT_CODES.cancelled, job: watcher.job, reason: "interrupted" });
        return;
      }
      const why = lastError?.message ?? reason;
      const hint = authHint(lastError, options.token !== undefined);
      output.notice(`jobwire: cannot follow job ${jobId} on ${server}: ${why}${hint}`);
      resolve({ code: EXIT_UNFOLLOWABLE, job: watcher.job, reason: why });
    });
  });
}

/**
 * The output mode for stdout: `json` when asked, `tty` on a terminal that can redraw a
 * line, else `plain` (a pipe, or `TERM=dumb`: an editor's shell, which shows escapes raw).
 */
export function outputMode(json: boolean, term = Deno.env.get("TERM")): OutputMode {
  if (json) return "json";
  return Deno.stdout.isTerminal() && term !== "dumb" ? "tty" : "plain";
}

/** Whether to colour: not when `NO_COLOR` is set, nor on a `TERM=dumb` terminal. */
export function colourWanted(term = Deno.env.get("TERM")): boolean {
  return !Deno.noColor && term !== "dumb";
}

/** `main.ts watch …`: returns the exit code. */
export async function watchCommand(args: string[]): Promise<number> {
  const line = parseCommandLine(args, { values: ["server", "token", "since"], booleans: ["json"] });
  if (line.flags.has("help")) {
    console.log(WATCH_USAGE);
    return 0;
  }
  const [jobId, extra] = line.positional;
  if (jobId === undefined || jobId === "") {
    throw new ConfigError("watch needs a job id: main.ts watch JOB (see --help)");
  }
  if (extra !== undefined) throw new ConfigError(`Unexpected argument ${JSON.stringify(extra)}`);
  const sinceText = flagValue(line, "since");
  const since = sinceText === undefined ? 0 : Number(sinceText);
  if (!Number.isSafeInteger(since) || since < 0 || sinceText?.trim() === "") {
    throw new ConfigError("Invalid value for --since: expected a sequence number (0 or more)");
  }
  const { server, token } = connectionOf(line);
  const output = createOutput(outputMode(line.flags.has("json")), STDIO, colourWanted());
  const abort = new AbortController();
  const onInterrupt = () => abort.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const outcome = await followJob(server, jobId, {
      token,
      since,
      output,
      signal: abort.signal,
    });
    return outcome.code;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/** A reconnect's delay as `watch` prints it: `0.4s` under ten seconds, else as durations are. */
export function retryDelay(ms: number): string {
  return ms < 10_000 ? `${(Math.max(0, ms) / 1000).toFixed(1)}s` : formatDuration(ms / 1000);
}
