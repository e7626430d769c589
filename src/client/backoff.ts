/**
 * Exponential backoff with full jitter: the delay before attempt `n` is drawn uniformly
 * from `[0, min(max, initial × 2^(n−1))]`, which spreads reconnecting clients out after a
 * server restart instead of bringing them all back at once.
 *
 * @module
 */

/** Bounds of a backoff, in milliseconds. */
export interface BackoffOptions {
  /** Ceiling of the first delay. */
  initialDelayMs: number;
  /** Ceiling of every delay. */
  maxDelayMs: number;
}

/**
 * The delay before attempt `attempt` (1 for the first retry), in milliseconds.
 *
 * @param random a number in `[0, 1)`; `Math.random()` unless given (for tests)
 * @throws {RangeError} when `attempt` is below 1
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: number = Math.random(),
): number {
  if (!(attempt >= 1)) throw new RangeError(`Backoff attempt must be 1 or more: ${attempt}`);
  // 2^(attempt-1) overflows to Infinity for large attempts; min() caps it.
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (attempt - 1));
  return Math.floor(random * Math.max(0, ceiling));
}

/** Resolves after `ms` milliseconds, or rejects with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
