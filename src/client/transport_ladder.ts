/**
 * Which transport to try next. A watcher starts with the first usable transport and
 * moves down the list (WebSocket → SSE → long-poll) only when the current one keeps
 * failing before the server greets it *and* the server answers plain HTTP: when the
 * server is down, every transport fails, and falling back would only lose the best one.
 * Once a transport has worked the watcher stays with it.
 *
 * @module
 */
import type { TransportName } from "./types.ts";

/** The decision after a failed attempt. */
export type LadderStep = "stay" | "probe" | "step";

/** The transports of a watcher and its position among them. */
export class TransportLadder {
  readonly transports: readonly TransportName[];
  #index = 0;
  #failures = 0;
  #fallbackAfter: number;

  /**
   * @param transports usable transports, in order of preference
   * @param fallbackAfter failed attempts in a row before trying the next transport
   */
  constructor(transports: readonly TransportName[], fallbackAfter: number) {
    this.transports = transports;
    this.#fallbackAfter = fallbackAfter;
  }

  /** The transport to use now, or `undefined` when none is usable. */
  get current(): TransportName | undefined {
    return this.transports[this.#index];
  }

  /** The server greeted a connection: this transport works. */
  succeeded(): void {
    this.#failures = 0;
  }

  /**
   * An attempt failed before the server greeted it.
   *
   * @param unsupported the transport cannot work here at all (no need to probe)
   * @returns `step` to move on now, `probe` to move on only if the server is reachable,
   *   `stay` to retry the same transport
   */
  failed(unsupported: boolean): LadderStep {
    this.#failures++;
    if (this.#index >= this.transports.length - 1) return "stay";
    if (unsupported) return "step";
    return this.#failures >= this.#fallbackAfter ? "probe" : "stay";
  }

  /** Moves to the next transport. */
  step(): void {
    if (this.#index < this.transports.length - 1) this.#index++;
    this.#failures = 0;
  }

  /** Forgets failures (a manual reconnect). */
  reset(): void {
    this.#failures = 0;
  }
}
