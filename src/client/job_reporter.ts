/**
 * The producer side: a job reports its lifecycle, progress, logs and result. Requests
 * are sent one at a time in call order; log lines are batched (one `POST /jobs/:id/log`
 * per `logFlushMs` or `logBatchSize` lines) and flushed before any other report, so the
 * job's stream keeps the order of the calls. Every request is retried with the same
 * `Idempotency-Key` until it lands, so nothing is written twice.
 *
 * @module
 */
import { asJobwireError, JobwireError } from "./errors.ts";
import { type HttpContext, jobPath, REQUEST_TIMEOUT_MS } from "./http.ts";
import { randomId } from "./random_id.ts";
import { type RetryPolicy, sendWithRetry } from "./retry_request.ts";
import type { FetchLike, JobSnapshot, JobStatus, TokenSource } from "./types.ts";

/** Options of a reporter. */
export interface ReporterOptions {
  /** Bearer token (or a function giving the current one). */
  token?: TokenSource | undefined;
  /** `fetch` implementation; default `globalThis.fetch`. */
  fetch?: FetchLike | undefined;
  /** Retries of each request after the first try. Default 8. */
  retries?: number | undefined;
  /** Ceiling of the first retry delay, in ms. Default 200. */
  initialDelayMs?: number | undefined;
  /** Ceiling of every retry delay, in ms. Default 10,000. */
  maxDelayMs?: number | undefined;
  /** Longest wait for one try's answer, in ms, before it is retried. Default 30,000. */
  timeoutMs?: number | undefined;
  /** Longest time a log line waits in the buffer, in ms. Default 250. */
  logFlushMs?: number | undefined;
  /** Lines that trigger a flush at once. Default 100. */
  logBatchSize?: number | undefined;
  /** Told about failures of background log flushes (they also reject the next `flush()`). */
  onError?: ((error: JobwireError) => void) | undefined;
  /**
   * Aborts every request of this reporter, retries and the waits between them included;
   * the pending calls reject with the signal's reason (a background log flush with a
   * `closed` error whose `cause` is that reason).
   */
  signal?: AbortSignal | undefined;
}

/** Options of {@link JobReporter.create}. */
export interface CreateJobOptions extends ReporterOptions {
  /** Job id; a random UUID made here when absent (so a retried create is recognised). */
  id?: string | undefined;
  kind?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
}

/** Log levels the server accepts. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Optional fields of a progress report. */
export interface ProgressDetails {
  stage?: string | undefined;
  message?: string | undefined;
  current?: number | undefined;
  total?: number | undefined;
  /** Seconds left; the server estimates one from the progress rate when absent. */
  eta_seconds?: number | undefined;
}

/** The server's reply to a publish. */
export interface PublishResult {
  job_id: string;
  sequences: number[];
  last_sequence: number;
  status: JobStatus;
  watchers: number;
  replayed: boolean;
}

/** Reports one job's progress to a jobwire server. */
export class JobReporter {
  /** The job's id. */
  readonly jobId: string;
  #http: HttpContext;
  #policy: RetryPolicy;
  #flushMs: number;
  #batchSize: number;
  #onError: ((error: JobwireError) => void) | undefined;
  #signal: AbortSignal | undefined;
  #lines: { line: string; level: LogLevel; source?: string }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #backgroundError: JobwireError | undefined;
  #closed = false;
  #job: JobSnapshot | undefined;

  /** Reports to an existing job. */
  constructor(baseUrl: string, jobId: string, options: ReporterOptions = {}) {
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof fetchImpl !== "function") throw new TypeError("No fetch: pass options.fetch");
    this.jobId = jobId;
    this.#http = { baseUrl, token: options.token, fetch: fetchImpl };
    this.#policy = {
      retries: options.retries ?? 8,
      initialDelayMs: options.initialDelayMs ?? 200,
      maxDelayMs: options.maxDelayMs ?? 10_000,
      timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
    };
    this.#flushMs = options.logFlushMs ?? 250;
    this.#batchSize = Math.max(1, options.logBatchSize ?? 100);
    this.#onError = options.onError;
    this.#signal = options.signal;
  }

  /**
   * Creates a job (`POST /jobs`) and returns its reporter. Retried like every request;
   * a retry answered "already exists" counts as created when the job holds what this call
   * sent and nothing happened to it yet (an earlier try made it, its reply lost).
   *
   * @throws {JobwireError} `job_exists` when the id was taken before this call
   */
  static async create(baseUrl: string, options: CreateJobOptions = {}): Promise<JobReporter> {
    const reporter = new JobReporter(baseUrl, options.id ?? randomId(), options);
    let retried = false;
    try {
      const reply = await sendWithRetry<{ job: JobSnapshot }>(
        reporter.#http,
        {
          method: "POST",
          path: "/jobs",
          body: {
            id: reporter.jobId,
            ...(options.kind === undefined ? {} : { kind: options.kind }),
            ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
          },
          ...(reporter.#signal === undefined ? {} : { signal: reporter.#signal }),
        },
        reporter.#policy,
        () => (retried = true),
      );
      reporter.#job = reply.job;
    } catch (error) {
      if (!(retried && error instanceof JobwireError && error.code === "job_exists")) throw error;
      // An earlier try may have made the job, its reply lost. It is this call's only if it
      // holds what this call sent and nothing happened to it since (a job of someone else's
      // under a chosen id would have, or would hold something else).
      const found = await sendWithRetry<JobSnapshot>(
        reporter.#http,
        {
          method: "GET",
          path: `/jobs/${encodeURIComponent(reporter.jobId)}`,
          ...(reporter.#signal === undefined ? {} : { signal: reporter.#signal }),
        },
        reporter.#policy,
      );
      if (
        found.kind !== (options.kind ?? null) ||
        canonical(found.metadata ?? {}) !== canonical(options.metadata ?? {}) ||
        found.status !== "pending" || found.last_sequence !== 0
      ) {
        throw error;
      }
      reporter.#job = found;
    }
    return reporter;
  }

  /** The snapshot the server returned when {@link create} made the job. */
  get job(): JobSnapshot | undefined {
    return this.#job;
  }

  /** Moves the job to `queued`. */
  queued(message?: string): Promise<PublishResult> {
    return this.#publish("/queue", message === undefined ? {} : { message });
  }

  /** Moves the job to `running`. */
  started(message?: string): Promise<PublishResult> {
    return this.#publish("/start", message === undefined ? {} : { message });
  }

  /** Reports progress, 0–100 (`percentage` and an ETA are added by the server). */
  progress(progress: number, details: ProgressDetails = {}): Promise<PublishResult> {
    return this.#publish("/progress", { progress, ...details });
  }

  /**
   * Buffers a log line; it is sent within `logFlushMs`, before any later report.
   *
   * @param source where the line came from, such as `stdout` (the event's `source`)
   */
  log(line: string, level: LogLevel = "info", source?: string): void {
    this.#assertOpen();
    this.#lines.push(source === undefined ? { line, level } : { line, level, source });
    if (this.#lines.length >= this.#batchSize) {
      this.#flushLines();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#flushLines(), this.#flushMs);
    }
  }

  /** Publishes a custom event (`type` such as `training_progress`). */
  event(type: string, data: Record<string, unknown> = {}): Promise<PublishResult> {
    return this.#publish("/events", { type, data });
  }

  /** Records the result and moves the job to `completed`, in one commit. */
  complete(result?: unknown, message?: string): Promise<PublishResult> {
    return this.#publish("/complete", {
      ...(result === undefined ? {} : { result }),
      ...(message === undefined ? {} : { message }),
    });
  }

  /** Records the error and moves the job to `failed`, in one commit. */
  fail(error: string | Error, errorType?: string, details?: unknown): Promise<PublishResult> {
    return this.#publish("/fail", {
      error: typeof error === "string" ? error : error.message,
      ...(errorType === undefined ? {} : { error_type: errorType }),
      ...(details === undefined ? {} : { details }),
    });
  }

  /** Moves the job to `cancelled`. */
  cancel(reason?: string): Promise<PublishResult> {
    return this.#publish("/cancel", reason === undefined ? {} : { reason });
  }

  /**
   * Sends buffered log lines and waits for every report made so far.
   *
   * @throws {JobwireError} the first failure of a background log flush since the last call
   */
  async flush(): Promise<void> {
    this.#flushLines();
    await this.#tail;
    const error = this.#backgroundError;
    this.#backgroundError = undefined;
    if (error !== undefined) throw error;
  }

  /** Flushes, then refuses further reports. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush().finally(() => (this.#closed = true));
  }

  #publish(path: string, body: unknown): Promise<PublishResult> {
    this.#assertOpen();
    this.#flushLines();
    return this.#send(path, body);
  }

  #flushLines(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const lines = this.#lines;
    this.#lines = [];
    this.#send("/log", { lines }).catch((caught: unknown) => {
      const error = asJobwireError(caught, "closed");
      this.#backgroundError ??= error;
      this.#onError?.(error);
    });
  }

  /** Queues one logical publish behind the previous ones; one key for all its tries. */
  #send(path: string, body: unknown): Promise<PublishResult> {
    const key = randomId();
    const sent = this.#tail.then(() =>
      sendWithRetry<PublishResult>(this.#http, {
        method: "POST",
        path: `${jobPath(this.jobId)}${path}`,
        body,
        idempotencyKey: key,
        ...(this.#signal === undefined ? {} : { signal: this.#signal }),
      }, this.#policy)
    );
    this.#tail = sent.catch(() => {});
    return sent;
  }

  #assertOpen(): void {
    if (this.#closed) throw new JobwireError("closed", "The reporter is closed");
  }
}

/** JSON text of a value with its object keys sorted, to compare two values. */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}
