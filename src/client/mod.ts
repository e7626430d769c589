/**
 * The jobwire client, for browsers, Deno and Node 20+ (web-standard APIs only).
 *
 * Watchers follow jobs over WebSocket, falling back to SSE and long-polling; they
 * reconnect with backoff, resume from the last sequence, fill gaps and deliver every
 * event once, in order. {@link JobReporter} is the producer side.
 *
 * @example
 * ```ts
 * import { JobReporter, watchJob } from "./src/client/mod.ts";
 *
 * const reporter = await JobReporter.create("http://localhost:8080", { kind: "build" });
 * const watcher = watchJob("http://localhost:8080", reporter.jobId);
 * watcher.on("event", (e) => console.log(e.sequence, e.type));
 * await reporter.started();
 * await reporter.progress(50, { stage: "compile" });
 * await reporter.complete({ artifact: "app.tar.gz" });
 * ```
 *
 * @module
 */
export { watchJob, watchJobs } from "./watch_job.ts";
export { JobWatcher } from "./job_watcher.ts";
export type { WatcherEvents } from "./watch_events.ts";
export type { WatchJobOptions, WatchJobsOptions, WatchOptions } from "./watch_options.ts";
export { JobReporter } from "./job_reporter.ts";
export type {
  CreateJobOptions,
  LogLevel,
  ProgressDetails,
  PublishResult,
  ReporterOptions,
} from "./job_reporter.ts";
export { JobwireError } from "./errors.ts";
export type { ClientErrorCode } from "./errors.ts";
export { QUALITY_THRESHOLDS_MS, qualityOf } from "./quality.ts";
export { backoffDelay } from "./backoff.ts";
export { SseParser } from "./sse_parser.ts";
export type { SseMessage } from "./sse_parser.ts";
export { applyEvent } from "./job_state.ts";
export { isTerminalStatus, TERMINAL_STATUSES } from "./types.ts";
export type {
  ConnectionQuality,
  ConnectionState,
  Envelope,
  EventsPage,
  FetchLike,
  JobErrorInfo,
  JobEvent,
  JobSnapshot,
  JobStatus,
  TokenSource,
  TransportName,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.ts";
