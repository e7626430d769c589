/**
 * Connection quality from a ping/pong round trip (seed 004): excellent under 50 ms, good
 * under 150 ms, fair under 300 ms, else poor.
 *
 * @module
 */
import type { ConnectionQuality } from "./types.ts";

/** Upper bounds (exclusive) of each quality, in milliseconds of round trip. */
export const QUALITY_THRESHOLDS_MS = { excellent: 50, good: 150, fair: 300 } as const;

/**
 * The quality of a round trip of `rttMs` milliseconds.
 *
 * @example
 * ```ts
 * qualityOf(12); // "excellent"
 * qualityOf(320); // "poor"
 * ```
 */
export function qualityOf(rttMs: number): ConnectionQuality {
  if (!Number.isFinite(rttMs) || rttMs < 0) return "unknown";
  if (rttMs < QUALITY_THRESHOLDS_MS.excellent) return "excellent";
  if (rttMs < QUALITY_THRESHOLDS_MS.good) return "good";
  if (rttMs < QUALITY_THRESHOLDS_MS.fair) return "fair";
  return "poor";
}

/** Tracks the round trip of pings answered by `pong` messages and the quality it gives. */
export class QualityMeter {
  #quality: ConnectionQuality = "unknown";
  #rttMs: number | null = null;
  #onChange: (quality: ConnectionQuality, rttMs: number | null) => void;

  /** @param onChange told when the quality changes */
  constructor(onChange: (quality: ConnectionQuality, rttMs: number | null) => void) {
    this.#onChange = onChange;
  }

  get quality(): ConnectionQuality {
    return this.#quality;
  }

  /** Last measured round trip, in ms, or `null`. */
  get rttMs(): number | null {
    return this.#rttMs;
  }

  /**
   * Measures a pong whose `data.client_time` echoes our ping's `Date.now()`.
   *
   * @param now the current time in ms (`Date.now()` unless given)
   */
  pong(data: Record<string, unknown> | undefined, now: number = Date.now()): void {
    const sent = data?.client_time;
    if (typeof sent !== "number") return;
    this.#rttMs = Math.max(0, now - sent);
    this.#set(qualityOf(this.#rttMs));
  }

  /** Forgets the measurement (the connection is gone). */
  reset(): void {
    this.#rttMs = null;
    this.#set("unknown");
  }

  #set(quality: ConnectionQuality): void {
    if (quality === this.#quality) return;
    this.#quality = quality;
    this.#onChange(quality, this.#rttMs);
  }
}
