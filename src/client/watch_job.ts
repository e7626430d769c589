/**
 * The entry points of watching: {@link watchJob} for one job, {@link watchJobs} for
 * several over one connection or for every visible job.
 *
 * @module
 */
import { checkBaseUrl, jobIdOf } from "./http.ts";
import { JobWatcher } from "./job_watcher.ts";
import type { StreamTarget } from "./transport.ts";
import {
  resolveWatchOptions,
  type WatchJobOptions,
  type WatchJobsOptions,
} from "./watch_options.ts";

/**
 * Follows one job: replays its events after `since` (default: every retained event),
 * then live ones, each exactly once and in order, across reconnects and transports.
 *
 * @param baseUrl the server's URL, such as `https://jobs.example.com` (a path prefix is kept)
 * @returns the watcher; it connects on the next tick, so add listeners right away
 *
 * @example
 * ```ts
 * const watcher = watchJob("http://localhost:8080", "build-42");
 * watcher.on("event", (e) => console.log(e.sequence, e.type, e.data));
 * watcher.on("finished", ({ status }) => console.log("done:", status));
 * ```
 */
export function watchJob(
  baseUrl: string,
  jobIdOrNumber: string | number,
  options: WatchJobOptions = {},
): JobWatcher {
  checkBaseUrl(baseUrl);
  const jobId = jobIdOf(jobIdOrNumber, "watchJob");
  const target: StreamTarget = { kind: "job", jobId, closeOnFinish: options.closeOnFinish ?? true };
  return new JobWatcher(
    baseUrl,
    target,
    new Map([[jobId, checkSince(options.since ?? 0)]]),
    resolveWatchOptions(options),
  );
}

/** Most jobs one stream may name (the server's limit). */
const MAX_JOBS = 100;

/**
 * Follows several jobs over one connection (`jobs: [...]`), or every job the caller may
 * see (`all: true`, optionally filtered by `kind` and `status`; from now on, without
 * replay, and not over long-poll).
 *
 * @throws {TypeError} when neither `jobs` nor `all` is given, or `jobs` names more than 100
 *
 * @example
 * ```ts
 * const watcher = watchJobs("http://localhost:8080", { jobs: ["a", "b"] });
 * watcher.on("event", (e) => console.log(e.job_id, e.sequence, e.type));
 * ```
 */
export function watchJobs(baseUrl: string, options: WatchJobsOptions): JobWatcher {
  checkBaseUrl(baseUrl);
  const resolved = resolveWatchOptions(options);
  if (
    options.getTicket !== undefined && (options.all === true || (options.jobs?.length ?? 0) > 1)
  ) {
    throw new TypeError(
      "getTicket needs a stream of one job: a ticket grants one job's stream (use token here)",
    );
  }
  if (options.all === true) {
    const filter = {
      ...(options.kind === undefined ? {} : { kind: options.kind }),
      ...(options.status === undefined ? {} : { status: options.status }),
    };
    // Long-poll reads one job's events; it cannot follow every job.
    const transports = resolved.transports.filter((t) => t !== "poll");
    if (transports.length === 0 && resolved.transports.includes("poll")) {
      throw new TypeError(
        "all: true cannot use long-poll, which reads one job's events: allow websocket or sse",
      );
    }
    return new JobWatcher(baseUrl, { kind: "all", filter }, new Map(), {
      ...resolved,
      transports,
    });
  }
  const jobIds = [...new Set((options.jobs ?? []).map((id) => jobIdOf(id, "watchJobs")))];
  if (jobIds.length === 0) throw new TypeError("watchJobs needs jobs: [...] or all: true");
  if (jobIds.length > MAX_JOBS) {
    // The server refuses a stream naming more; a refused WebSocket handshake would only say
    // that the connection failed, again and again.
    throw new TypeError(
      `watchJobs follows at most ${MAX_JOBS} jobs by name (the server's limit for one stream), ` +
        `not ${jobIds.length}: split them across watchers, or use all: true`,
    );
  }
  const since = new Map<string, number>();
  for (const id of jobIds) {
    const value = typeof options.since === "object" ? options.since[id] : options.since;
    since.set(id, checkSince(value ?? 0));
  }
  const target: StreamTarget = {
    kind: "jobs",
    jobIds,
    closeOnFinish: options.closeOnFinish ?? true,
  };
  return new JobWatcher(baseUrl, target, since, resolved);
}

function checkSince(since: number): number {
  if (!Number.isSafeInteger(since) || since < 0) {
    throw new RangeError(`since must be a non-negative integer: ${since}`);
  }
  return since;
}
