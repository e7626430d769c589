/**
 * How much replay one isolate may write in a burst, and per second after it. A replay is the
 * costliest thing a client can ask for with one request: up to 16 MiB built before the
 * isolate does anything else. A burst of requests for a long history from clients that leave
 * at once (and so never hold a connection slot for long) would have the isolate build that
 * for each, gigabytes in all, while every other stream on it waits. Past the allowance a
 * replay is cut short (4008, and the client resumes with `since`); it may always write
 * {@link MIN_REPLAY_ROOM}, so every replay makes progress.
 *
 * @module
 */

/** Replay bytes an isolate may write at once. */
export const REPLAY_BURST_BYTES = 64 * 1024 * 1024;

/** Replay bytes an isolate may write per second, past the burst. */
export const REPLAY_BYTES_PER_SECOND = 32 * 1024 * 1024;

/** What a replay may write however little is left: it always makes some progress. */
export const MIN_REPLAY_ROOM = 256 * 1024;

/**
 * Bytes the HTTP streams of one isolate may hold for their clients (written, and not yet
 * taken by the runtime) before a new replay is cut short: clients that never read would
 * otherwise have the isolate hold up to 16 MiB each, gigabytes in all.
 */
export const ISOLATE_STREAM_BYTES = 64 * 1024 * 1024;

/** One server isolate's allowance, and what its HTTP streams hold. */
export class ReplayAllowance {
  #now: () => number;
  #tokens = REPLAY_BURST_BYTES;
  #refilledAt: number;
  #held = 0;

  /** @param now the clock, in milliseconds (tests pass their own) */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#refilledAt = now();
  }

  /** Bytes the isolate's HTTP streams hold for their clients. */
  get held(): number {
    return this.#held;
  }

  /** A stream holds `bytes` more (or, negative, fewer). */
  hold(bytes: number): void {
    this.#held += bytes;
  }

  /**
   * Bytes a replay on a stream that itself holds `own` may write, as far as what the other
   * streams hold leaves room under {@link ISOLATE_STREAM_BYTES}.
   */
  roomBeside(own: number): number {
    return Math.max(MIN_REPLAY_ROOM, ISOLATE_STREAM_BYTES - (this.#held - own));
  }

  /** Bytes a replay starting now may write, as far as the allowance goes. */
  available(): number {
    this.#refill();
    return Math.max(MIN_REPLAY_ROOM, this.#tokens);
  }

  /** Counts a replay's bytes (the allowance may go below zero: later replays repay it). */
  spend(bytes: number): void {
    this.#refill();
    this.#tokens -= bytes;
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(
      REPLAY_BURST_BYTES,
      this.#tokens + (now - this.#refilledAt) / 1000 * REPLAY_BYTES_PER_SECOND,
    );
    this.#refilledAt = now;
  }
}
