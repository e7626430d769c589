/**
 * The jobwire client, for browsers, Deno and Node 20+ (web-standard APIs only).
 *
 * @module
 */
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
