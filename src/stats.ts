/**
 * Counters of one isolate and the rates derived from them, for `/stats` and `/metrics`.
 *
 * @module
 */

/** Seconds of history the per-second rates average over. */
const RATE_WINDOW_SECONDS = 10;

interface Sample {
  at: number;
  published: number;
  delivered: number;
}

/** Monotonic counters plus a sliding window of samples for rates. */
export class Stats {
  readonly startedAt = Date.now();
  /** The start on a monotonic clock: uptime does not move with the wall clock's steps. */
  readonly #startedMono = performance.now();
  eventsPublished = 0;
  jobsCreated = 0;
  longPolls = 0;
  /**
   * When the database last failed a request in a way that does not pass by itself
   * (damaged, unreadable, full or read-only), here or on another isolate, for `/healthz`.
   */
  storageFaultAt: number | undefined;
  /** Long-polls (`wait=` on an events page, `wait=terminal` on a job) waiting now. */
  longPollsWaiting = 0;
  serverErrors = 0;
  /** Requests refused (503) because the database could not read or write. */
  storageErrors = 0;
  /** Error answers, and WebSocket handshakes accepted only to be closed, by error code. */
  readonly refusals: Record<string, number> = {};
  /**
   * Streams that ended, by the close code the server gave them (an SSE or NDJSON stream the
   * code a WebSocket would have had), or `client` when the client left first.
   */
  readonly closes: Record<string, number> = {};
  #samples: Sample[] = [];
  #timer: ReturnType<typeof setInterval>;
  #delivered: () => number;

  /** @param delivered reads the hub's delivery counter */
  constructor(delivered: () => number) {
    this.#delivered = delivered;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 1000);
    Deno.unrefTimer(this.#timer);
  }

  #sample(): void {
    this.#samples.push({
      at: Date.now(),
      published: this.eventsPublished,
      delivered: this.#delivered(),
    });
    if (this.#samples.length > RATE_WINDOW_SECONDS + 1) this.#samples.shift();
  }

  /** Events published and messages delivered per second over the last few seconds. */
  rates(): { events_published_per_second: number; messages_delivered_per_second: number } {
    const first = this.#samples[0];
    const now = { at: Date.now(), published: this.eventsPublished, delivered: this.#delivered() };
    const seconds = first === undefined ? 0 : (now.at - first.at) / 1000;
    if (first === undefined || seconds <= 0) {
      return { events_published_per_second: 0, messages_delivered_per_second: 0 };
    }
    const round = (n: number) => Math.round(n * 10) / 10;
    return {
      events_published_per_second: round((now.published - first.published) / seconds),
      messages_delivered_per_second: round((now.delivered - first.delivered) / seconds),
    };
  }

  /** Counts a request answered with error `code`. */
  refused(code: string): void {
    this.refusals[code] = (this.refusals[code] ?? 0) + 1;
  }

  /** Counts a stream that ended with close `code` (`client`: the client left first). */
  closed(code: string): void {
    this.closes[code] = (this.closes[code] ?? 0) + 1;
  }

  /** Seconds since the server started. */
  uptimeSeconds(): number {
    return Math.round((performance.now() - this.#startedMono) / 1000);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
