/**
 * Publishing a command's job in the background: lines wait in a bounded {@link LogQueue}
 * (oldest dropped when full), go out in batches, one request at a time, through the
 * client's `JobReporter` (retries with one idempotency key each, so nothing is written
 * twice); progress goes out at most every `progressIntervalMs`, always the latest, and
 * never before the line it was read from. Nothing here ever makes the command wait.
 *
 * @module
 */
import { JobReporter } from "../client/job_reporter.ts";
import { JobwireError } from "../client/errors.ts";
import { getJson, jobPath } from "../client/http.ts";
import type { JobSnapshot } from "../client/types.ts";
import { LogQueue, type QueuedLine } from "./log_queue.ts";
import type { ParsedProgress } from "./progress_parse.ts";
import { authHint } from "./client_args.ts";

/** Where and how a run's job is published. */
export interface PublisherOptions {
  server: string;
  token: string | undefined;
  jobId: string;
  /** Whether the id was chosen by the user (`--id`): an existing job is then reported to. */
  givenId: boolean;
  kind: string;
  metadata: Record<string, unknown>;
  /** Told once, about the first problem; later ones are silent. */
  warn: (message: string) => void;
  /** Why the server cannot be used at all (its URL is no URL): nothing is sent. */
  unusable?: string;
  queue?: LogQueue;
  /** Most lines per request (the server's `--max-batch` is 1000 by default). Default 500. */
  batchLines?: number;
  /** About the most characters per request (the body limit is 1 MiB by default). Default 200,000. */
  batchChars?: number;
  /** Least time between two progress events, in ms. Default 250. */
  progressIntervalMs?: number;
  /** How long a line may wait for others to share its request, in ms. Default 50. */
  lingerMs?: number;
}

/** Progress to publish: what the line showed, and the line itself as the message. */
export type ProgressReport = ParsedProgress & { message?: string };

type State = "opening" | "open" | "failing" | "off";

/**
 * While finishing, how long the drain may go without a successful publish before it is
 * given up (the server is gone or stuck), in ms; a server that answers "later" (429 with
 * `Retry-After`, 503) gets its wait on top.
 */
export const FINISH_STALL_MS = 2_500;

/** Time left to record the end after a stalled drain, in ms. */
const END_AFTER_STALL_MS = 1_000;

/** Why queued lines were dropped: they came faster than they could be published. */
const BEHIND = "the server was slow or out of reach, and more came than the queue holds";

/** Refusals after which publishing to this job can never work again. */
const FATAL_STATUSES = new Set([401, 403, 404, 409, 410]);

/** Publishes a run's job: created (or reused), started, fed lines and progress, ended. */
export class RunPublisher {
  readonly #options: PublisherOptions;
  readonly #queue: LogQueue;
  #state: State = "opening";
  #reporter: JobReporter | undefined;
  #progress: { report: ProgressReport; after: number } | undefined;
  #lastProgressAt = -Infinity;
  #ending = false;
  #wake: (() => void) | undefined;
  /** Aborts the requests of the run and the drain; the end has its own. */
  #drain = new AbortController();
  #end = new AbortController();
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the drain was given up because the server stopped answering. */
  #stalled = false;
  /**
   * Restarts the stall timer while finishing (a no-op before), with `extraMs` more for a
   * server that answered but asked for a wait (429 with `Retry-After`, or a 503).
   */
  #rearm: (extraMs?: number) => void = () => {};
  #lost = 0;
  #warned = false;
  /** Most lines, and about the most characters, of one request (lowered after a 413). */
  #batchLines: number;
  #batchChars: number;
  #loop: Promise<void>;
  #opened = Promise.withResolvers<boolean>();

  constructor(options: PublisherOptions) {
    this.#options = options;
    this.#queue = options.queue ?? new LogQueue();
    this.#batchLines = options.batchLines ?? 500;
    this.#batchChars = options.batchChars ?? 200_000;
    this.#loop = this.#run();
  }

  /** Resolves once the job is created and started (true), or could not be (false). */
  get opened(): Promise<boolean> {
    return this.#opened.promise;
  }

  /** Whether lines are still wanted (false once publishing is off for good). */
  get active(): boolean {
    return this.#state !== "off";
  }

  /** Queues a line. */
  log(line: string, level: QueuedLine["level"], source: string): void {
    if (this.#state === "off") return;
    this.#queue.push({ line, level, source });
    if (this.#queue.length === 1) this.#wake?.();
  }

  /** Replaces the progress waiting to be sent; it goes after every line queued so far. */
  progress(report: ProgressReport): void {
    if (this.#state === "off") return;
    this.#progress = { report, after: this.#queue.pushed };
    this.#wake?.();
  }

  /**
   * Publishes what is still queued (for at most `drainMs`, and only while the server
   * keeps accepting: {@link FINISH_STALL_MS} without a success ends the drain), a note of
   * the lines that were dropped, then `end` (for at most `endMs`). Lines still queued
   * when the drain ends are dropped.
   */
  async finish(
    end: (reporter: JobReporter) => Promise<unknown>,
    drainMs = 10_000,
    endMs = 5_000,
  ): Promise<void> {
    this.#ending = true;
    this.#stalled = this.#state === "failing";
    if (this.#stalled) this.#drain.abort();
    this.#wake?.();
    const cap = setTimeout(() => this.#drain.abort(), drainMs);
    this.#rearm = (extraMs = 0) => {
      clearTimeout(this.#stallTimer);
      this.#stallTimer = setTimeout(() => {
        this.#stalled = true;
        this.#drain.abort();
      }, FINISH_STALL_MS + extraMs);
    };
    this.#rearm();
    await this.#loop;
    clearTimeout(cap);
    // The drain is over: the end's retries must not start the stall timer again.
    this.#rearm = () => {};
    clearTimeout(this.#stallTimer);
    if (this.#reporter === undefined || this.#state === "off") return;
    const reporter = this.#newReporter(this.#end.signal);
    const waitMs = this.#stalled ? END_AFTER_STALL_MS : endMs;
    const stop = setTimeout(() => this.#end.abort(), waitMs);
    try {
      this.#queue.clear();
      const dropped = this.#lost + this.#queue.takeDropped();
      if (dropped > 0) {
        reporter.log(
          `jobwire: ${dropped} output line${dropped === 1 ? " was" : "s were"} not published ` +
            `(${
              this.#stalled
                ? "the server stopped answering before they went out"
                : "the server was slow, out of reach or refused them"
            })`,
          "warning",
          "jobwire",
        );
      }
      await end(reporter);
      await reporter.close();
    } catch (error) {
      // Said whatever was said before: the job is left as the server last had it. An abort
      // is told as what it was, not as the signal's own words.
      this.#warned = false;
      this.#problem(
        !this.#end.signal.aborted
          ? error
          : this.#interrupted
          ? "stopped waiting for it (interrupted)"
          : `no answer within ${Math.round(waitMs / 1000)} s`,
        "could not record the end of the job",
        `job ${this.#options.jobId} stays as the server last had it`,
      );
    } finally {
      clearTimeout(stop);
    }
  }

  /**
   * Stops every request now.
   *
   * @param interrupted by a signal (Ctrl-C while finishing), which the warning then names
   */
  abort(interrupted = false): void {
    if (interrupted) this.#interrupted = true;
    this.#state = "off";
    this.#drain.abort();
    this.#end.abort();
    this.#wake?.();
  }

  /**
   * A reporter for this job whose requests `signal` aborts. A request is tried again for
   * as long as it takes (a server restarting, a network down): lines that come meanwhile
   * wait in the bounded queue, so the command is never held up, and one key per request
   * keeps a retry from writing twice. Finishing bounds the wait (see {@link finish}).
   */
  #newReporter(signal: AbortSignal): JobReporter {
    const { server, token, jobId } = this.#options;
    return new JobReporter(server, jobId, {
      token,
      signal,
      logFlushMs: 60_000,
      logBatchSize: 100_000,
      retries: Number.MAX_SAFE_INTEGER,
      initialDelayMs: 200,
      maxDelayMs: 3_000,
      timeoutMs: 10_000,
      // A server that answers, if only to say "later" (a rate limit), has not stalled.
      onRetry: (error, delayMs) => {
        if (error.status === 429 || error.status === 503) this.#rearm(delayMs);
      },
    });
  }

  async #open(): Promise<JobReporter> {
    const { server, token, jobId, kind, metadata, unusable } = this.#options;
    if (unusable !== undefined) throw new Error(unusable);
    try {
      // Few retries: a server that is not there should be noticed within a second or two.
      await JobReporter.create(server, {
        token,
        signal: this.#drain.signal,
        id: jobId,
        kind,
        metadata,
        retries: 2,
        initialDelayMs: 200,
        maxDelayMs: 1_000,
        timeoutMs: 5_000,
      });
    } catch (error) {
      if (!(error instanceof JobwireError && error.code === "job_exists")) throw error;
      // Made beforehand for this run (pending or queued), or, under an id run made up, by
      // this very create sent twice by the runtime (a reused connection that closed before
      // the reply). One already running is another run's, whose lines this one's would
      // interleave with, and whose end it would not know.
      // A look that gets no answer does not keep the run from its job: `start` tries again.
      const job = await getJson<JobSnapshot>(
        { baseUrl: server, token, fetch: globalThis.fetch.bind(globalThis) },
        jobPath(jobId),
        {},
        this.#drain.signal,
      ).catch((caught: unknown) => {
        if (caught instanceof JobwireError && caught.retryable) return undefined;
        throw caught;
      });
      if (job?.status === "running") {
        throw new JobwireError(
          "job_running",
          `Job ${jobId} is already running (another run, or a worker, reports to it): ` +
            "give another --id",
          { status: 409 },
        );
      }
    }
    const reporter = this.#newReporter(this.#drain.signal);
    await reporter.started();
    return reporter;
  }

  async #run(): Promise<void> {
    try {
      this.#reporter = await this.#open();
      this.#state = "open";
      this.#opened.resolve(true);
    } catch (error) {
      this.#opened.resolve(false);
      this.#state = "off";
      this.#queue.clear();
      this.#problem(error, "could not start the job", "the command runs without publishing");
      return;
    }
    const interval = this.#options.progressIntervalMs ?? 250;
    const linger = this.#options.lingerMs ?? 50;
    const reporter = this.#reporter;
    // An abort while finishing ends the drain; the end is then reported by a new reporter.
    while (!this.#stopped()) {
      const pending = this.#progress;
      const due = this.#ending ? 0 : this.#lastProgressAt + interval - Date.now();
      if (pending !== undefined && pending.after <= this.#queue.removed && due <= 0) {
        this.#progress = undefined;
        this.#lastProgressAt = Date.now();
        const { progress, ...details } = pending.report;
        await reporter.progress(progress, details).then(
          () => this.#rearm(),
          (e) => this.#failed(e, 0),
        );
        continue;
      }
      if (this.#queue.length > 0) {
        if (!this.#ending && this.#queue.length < this.#batchLines && linger > 0) {
          await this.#sleep(linger);
        }
        const dropped = this.#queue.takeDropped();
        const batch = this.#queue.take(this.#batchLines, this.#batchChars);
        if (dropped > 0) {
          reporter.log(
            `jobwire: ${dropped} output line${dropped === 1 ? "" : "s"} dropped here ` +
              `(${BEHIND})`,
            "warning",
            "jobwire",
          );
          this.#lost += dropped;
        }
        await this.#send(reporter, batch).then(
          () => {
            if (this.#state === "failing") this.#state = "open";
            this.#rearm();
          },
          (e: { error: unknown; lost: number }) => this.#failed(e.error, e.lost),
        );
        continue;
      }
      if (pending !== undefined) {
        await this.#sleep(Math.max(1, due));
        continue;
      }
      if (this.#ending) return;
      await this.#sleep(Infinity);
    }
  }

  /**
   * Publishes `batch`. A request the server finds too large (its `--max-batch` or
   * `--max-body-bytes` is below this side's batches) is sent again in halves, and later
   * batches are made that small; one line too large for it is what is lost.
   *
   * @throws `{error, lost}`: why the lines were not published, and how many
   */
  async #send(reporter: JobReporter, batch: readonly QueuedLine[]): Promise<void> {
    for (const item of batch) reporter.log(item.line, item.level, item.source);
    const dropped = reporter.droppedLines;
    const split = reporter.splitBatches;
    try {
      await reporter.flush();
    } catch (error) {
      // Lost: lines the server refused, and, once the drain is given up, those never sent
      // (until then the reporter keeps them, and they go first next time).
      const unsent = this.#drain.signal.aborted ? reporter.unsentLines : 0;
      throw { error, lost: reporter.droppedLines - dropped + unsent };
    } finally {
      // A request the server found too large went again in halves: later ones are smaller,
      // so that they fit at once. (A line too large on its own says nothing of batches.)
      if (reporter.splitBatches !== split) {
        this.#batchLines = Math.max(1, Math.min(this.#batchLines, Math.ceil(batch.length / 2)));
        this.#batchChars = Math.max(1, Math.floor(this.#batchChars / 2));
      }
    }
  }

  #stopped(): boolean {
    return this.#state === "off" || this.#drain.signal.aborted;
  }

  /** A publish failed: `lost` lines went with it. */
  #failed(error: unknown, lost: number): void {
    this.#lost += lost;
    if (error instanceof JobwireError && error.status !== null) {
      if (FATAL_STATUSES.has(error.status)) {
        this.#state = "off";
        this.#queue.clear();
        this.#problem(error, "the server refused an event", "no more events are published");
        return;
      }
      if (error.status === 413 && !this.#drain.signal.aborted) {
        this.#problem(
          error,
          `the server refused ${lost} output line${lost === 1 ? "" : "s"} as too large`,
          lost === 1 ? "it was dropped" : "they were dropped",
        );
        return;
      }
      if (error.status < 500 && error.status !== 429) {
        this.#problem(error, "the server refused a batch of events", "it was dropped");
        return;
      }
    }
    if (this.#drain.signal.aborted) return;
    this.#state = "failing";
    if (this.#ending) {
      // Retries are used up: waiting longer for the rest of the drain would only delay the end.
      this.#stalled = true;
      this.#drain.abort();
    }
    this.#problem(error, "publishing failed", "output lines are dropped until it works again");
  }

  /** Stopped by {@link abort} while finishing (a signal), not by a time limit. */
  #interrupted = false;

  #problem(error: unknown, what: string, consequence?: string): void {
    if (this.#warned) return;
    this.#warned = true;
    const reason = error instanceof Error ? error.message : String(error);
    const hint = authHint(error, this.#options.token !== undefined);
    this.#options.warn(
      `jobwire: ${what} on ${this.#options.server}: ${reason}${hint}` +
        (consequence === undefined ? "" : `; ${consequence}`),
    );
  }

  /** Waits `ms` (Infinity: until woken), or less when woken by a line, progress or the end. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      if (Number.isFinite(ms)) timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }
}
