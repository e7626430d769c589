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
import { checkBaseUrl, type HttpContext, jobIdOf, jobPath, REQUEST_TIMEOUT_MS } from "./http.ts";
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
  /**
   * Told once about each failure to send log lines: lines refused and dropped (also the next
   * `flush()`'s rejection), or lines the server could not be reached for (kept, and tried
   * again).
   */
  onError?: ((error: JobwireError) => void) | undefined;
  /**
   * Told before each retry of a request, with its failure and the wait before the retry (a
   * 429's `Retry-After`, say): the server may be answering, only not yet accepting.
   */
  onRetry?: ((error: JobwireError, delayMs: number) => void) | undefined;
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
  #onRetry: ((error: JobwireError, delayMs: number) => void) | undefined;
  #dropped = 0;
  #split = 0;
  /** Whether the pending timer is the unreferenced retry of lines that could not be sent. */
  #retrying = false;
  #signal: AbortSignal | undefined;
  /** Lines logged and not yet cut into batches. */
  #lines: LogLine[] = [];
  /**
   * Batches to send, in order, each with the one key of all its tries and the number of the
   * cut that made it: a report sends the batches cut when it was called, not lines logged
   * after it.
   */
  #batches: { key: string; lines: LogLine[]; cut: number }[] = [];
  #cuts = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  /** Lines the server refused since the last flush (raised once). */
  #backgroundError: JobwireError | undefined;
  #closed = false;
  #job: JobSnapshot | undefined;

  /** Reports to an existing job. */
  constructor(baseUrl: string, jobId: string | number, options: ReporterOptions = {}) {
    checkBaseUrl(baseUrl);
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof fetchImpl !== "function") throw new TypeError("No fetch: pass options.fetch");
    this.jobId = jobIdOf(jobId, "JobReporter");
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
    this.#onRetry = options.onRetry;
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
      // An id this call made up is nobody else's: taken, it was taken by this call, whose
      // request the runtime itself may have sent again (a reused connection that closed
      // before the reply), without a retry of ours to say so.
      const ours = retried || options.id === undefined;
      if (!(ours && error instanceof JobwireError && error.code === "job_exists")) throw error;
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

  /**
   * Log lines dropped: refused by the server (over its size limits, say), or still unsent
   * when `fail()` or `cancel()` ended the job.
   */
  get droppedLines(): number {
    return this.#dropped;
  }

  /** Log lines cut into batches and not sent yet (the server could not be reached). */
  get unsentLines(): number {
    let count = 0;
    for (const batch of this.#batches) count += batch.lines.length;
    return count;
  }

  /** Batches the server refused as too large, sent again in halves. */
  get splitBatches(): number {
    return this.#split;
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
    if (this.#closed) throw closedError();
    this.#lines.push(source === undefined ? { line, level } : { line, level, source });
    if (this.#lines.length >= this.#batchSize) {
      this.#flushLines();
    } else if (this.#timer === undefined || this.#retrying) {
      // A new line holds the process until it is sent, as the retry's timer does not.
      this.#cancelTimer();
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
   * @throws {JobwireError} the error that keeps lines from being sent (they stay buffered
   *   and go first next time), else that of lines the server refused since the last flush
   */
  flush(): Promise<void> {
    const cut = this.#cut();
    return this.#queue(async () => {
      const unsent = await this.#sendLines(cut);
      if (unsent !== undefined) throw unsent;
      const refused = this.#backgroundError;
      this.#backgroundError = undefined;
      if (refused !== undefined) throw refused;
    });
  }

  /** Refuses further reports and lines from now on, and flushes what came before. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
    } finally {
      this.#cancelTimer();
    }
  }

  #publish(path: string, body: unknown): Promise<PublishResult> {
    if (this.#closed) return Promise.reject(closedError());
    const cut = this.#cut();
    return this.#queue(async () => {
      const unsent = await this.#sendLines(cut);
      if (path === "/fail" || path === "/cancel") {
        // Ending the job matters more than lines that could not be sent: it goes out, and
        // what became of the lines is told to `onError`.
        const reply = await this.#send(path, body);
        // The job has ended: what could not be sent never will be (told to `onError` when
        // it failed), and what was refused was told then too.
        for (const batch of this.#batches) {
          if (batch.cut <= cut) this.#dropped += batch.lines.length;
        }
        this.#batches = this.#batches.filter((batch) => batch.cut > cut);
        this.#backgroundError = undefined;
        return reply;
      }
      // Lines that could not be sent come before this report: it is not sent after the gap.
      // (Lines the server refused are gone for good: they hold nothing up, and are told to
      // `onError` and the next `flush()`.)
      this.#signal?.throwIfAborted();
      if (unsent !== undefined) throw unsent;
      return await this.#send(path, body);
    });
  }

  /** Sends the buffered lines in the background (a full batch, or the timer). */
  #flushLines(): void {
    const cut = this.#cut();
    void this.#queue(() => this.#sendLines(cut)).catch(() => {});
  }

  /** Cuts the lines logged so far into batches; returns the cut's number. */
  #cut(): number {
    this.#cancelTimer();
    const cut = ++this.#cuts;
    let batch: LogLine[] = [];
    let size = 0;
    for (const line of this.#lines) {
      const length = line.line.length + (line.source?.length ?? 0) + 32;
      if (
        batch.length > 0 && (batch.length >= this.#batchSize || size + length > LOG_BATCH_CHARS)
      ) {
        this.#batches.push({ key: randomId(), lines: batch, cut });
        batch = [];
        size = 0;
      }
      batch.push(line);
      size += length;
    }
    if (batch.length > 0) this.#batches.push({ key: randomId(), lines: batch, cut });
    this.#lines = [];
    return cut;
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#retrying = false;
  }

  /**
   * Sends the batches cut up to `cut`. A batch keeps its key until it lands. Batches the
   * server could not be reached for stay, in order, in front of later lines (the timer tries
   * again); a batch refused as too large goes again in halves, and a refused line is
   * dropped, its error kept for the next flush. Runs in the queue.
   *
   * @returns why batches up to `cut` are left unsent, if they are
   */
  async #sendLines(cut: number): Promise<JobwireError | undefined> {
    while (this.#batches.length > 0 && this.#batches[0]!.cut <= cut) {
      const { key, lines, cut: made } = this.#batches[0]!;
      try {
        await this.#post("/log", { lines }, key);
      } catch (caught) {
        const aborted = this.#signal?.aborted === true;
        // Aborted: a `closed` error whose cause is the signal's reason. Anything else that is
        // no answer of the server (a token function that threw) is tried again later.
        const error = asJobwireError(caught, aborted ? "closed" : "network_error");
        if (aborted || error.retryable) {
          this.#onError?.(error);
          if (!this.#closed && !aborted) this.#armRetry();
          return error;
        }
        this.#batches.shift();
        if (error.status === 413 && lines.length > 1) {
          this.#split++;
          // Too large: the halves go again (and theirs, down to one line), so that only a
          // line over the server's limit is dropped.
          const half = Math.ceil(lines.length / 2);
          this.#batches.unshift(
            { key: randomId(), lines: lines.slice(0, half), cut: made },
            { key: randomId(), lines: lines.slice(half), cut: made },
          );
        } else {
          this.#dropped += lines.length;
          this.#onError?.(error);
          // A refusal that ends all publishing (the job gone, the token refused) is the one
          // told over a line too large.
          if (this.#backgroundError === undefined || this.#backgroundError.status === 413) {
            this.#backgroundError = error;
          }
        }
        continue;
      }
      this.#batches.shift();
    }
    return undefined;
  }

  /** Tries the lines left again after `logFlushMs`, without keeping the process alive. */
  #armRetry(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => this.#flushLines(), this.#flushMs);
    this.#retrying = true;
    unrefTimer(this.#timer);
  }

  /** Runs `work` after everything queued before it; the queue goes on whatever it does. */
  #queue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(work);
    this.#tail = run.catch(() => {});
    return run;
  }

  /** One logical publish; one key for all its tries. */
  #send(path: string, body: unknown): Promise<PublishResult> {
    return this.#post(path, body, randomId());
  }

  #post(path: string, body: unknown, key: string): Promise<PublishResult> {
    const onRetry = this.#onRetry;
    return sendWithRetry<PublishResult>(
      this.#http,
      {
        method: "POST",
        path: `${jobPath(this.jobId)}${path}`,
        body,
        idempotencyKey: key,
        ...(this.#signal === undefined ? {} : { signal: this.#signal }),
      },
      this.#policy,
      onRetry === undefined ? undefined : (_attempt, error, delayMs) => onRetry(error, delayMs),
    );
  }
}

/** A buffered log line. */
interface LogLine {
  line: string;
  level: LogLevel;
  source?: string;
}

/** Most characters of one log batch (about its body), as the Python client's 256 KiB. */
const LOG_BATCH_CHARS = 256 * 1024;

function closedError(): JobwireError {
  return new JobwireError("closed", "The reporter is closed");
}

/** Lets the process exit while `timer` waits (Deno and Node; nothing to do in browsers). */
function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
  if (typeof timer === "number") deno?.unrefTimer?.(timer);
  else (timer as { unref?: () => void }).unref?.();
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
