/**
 * Which transport to try next. A watcher starts with the first usable transport and
 * moves down the list (WebSocket → SSE → long-poll) only when the current one fails
 * before the server greets it `fallbackAfter` times in a row *while the server answers
 * plain HTTP*: when the server is down every transport fails, and falling back would only
 * lose the best one. A failure while the server is down starts the count again, so a
 * server that comes back between a failed attempt and the check of it (a restart) costs
 * the transport one count, not its place.
 *
 * @module
 */
import type { TransportName } from "./types.ts";

/** The decision after a failed attempt. */
export type LadderStep = "stay" | "step";

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

  /** Whether there is a transport to fall back to. */
  get canFallBack(): boolean {
    return this.#index < this.transports.length - 1;
  }

  /**
   * An attempt failed before the server greeted it, and the server answered plain HTTP
   * right after (or the transport cannot work here at all: `unsupported`).
   *
   * @returns `step` to move on to the next transport, `stay` to retry this one
   */
  failed(unsupported: boolean): LadderStep {
    this.#failures++;
    if (!this.canFallBack) return "stay";
    if (unsupported) return "step";
    return this.#failures >= this.#fallbackAfter ? "step" : "stay";
  }

  /** An attempt failed while the server did not answer either: the count starts again. */
  serverDown(): void {
    this.#failures = 0;
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
