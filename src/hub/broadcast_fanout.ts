/**
 * The fanout between isolates of one `deno serve --parallel` process: commit messages
 * and job notices travel on a `BroadcastChannel`, which delivers to every other isolate
 * (never back to the poster, whose local subscribers the hub serves directly).
 *
 * Deno's channel holds 256 messages for the whole process and drops the oldest for an
 * isolate that falls further behind, and under load it has also been seen to lose a single
 * message outright (the last of a burst, found by a load test: the job's final event then
 * waited on the other isolate for whatever was published next). Every message is numbered
 * by its sender, so a receiver notices a jump and catches up from the database instead of
 * waiting for the next commit of each job; and a sender that has gone quiet says how many
 * it sent (a `tail`, soon after its last message and then every second), so the loss of
 * the last one is noticed too.
 *
 * @module
 */
import type { Fanout, FanoutMessage, FanoutNotice } from "./fanout.ts";
import { logError } from "../log.ts";

type Wire =
  | { kind: "wake" }
  | { kind: "tail"; from: string; n: number }
  | (
    & { from: string; n: number }
    & ({ kind: "events"; message: FanoutMessage } | { kind: "notice"; notice: FanoutNotice })
  );

/** A wake carries nothing and is not numbered: losing one costs only its purpose. */
const WAKE: Wire = { kind: "wake" };

/** Quiet time after a message before the sender tells how many it sent, in ms. */
const TAIL_AFTER_MS = 20;

/** How often the sender tells it again, in case that word was lost too, in ms. */
const TAIL_EVERY_MS = 1000;

/** {@link Fanout} over a `BroadcastChannel`. */
export class BroadcastFanout implements Fanout {
  #channel: BroadcastChannel;
  #closed = false;
  #id = crypto.randomUUID();
  #sent = 0;
  /** Number of the last message heard from each other isolate. */
  #heard = new Map<string, number>();
  /** When the last numbered message was posted (`performance.now()`). */
  #postedAt = 0;
  #tailTimer: ReturnType<typeof setTimeout> | undefined;
  #tailInterval: ReturnType<typeof setInterval>;

  /**
   * @param name channel name; isolates of one server share it
   * @param channel the channel to use (tests pass one that loses messages)
   */
  constructor(name: string, channel: BroadcastChannel = new BroadcastChannel(name)) {
    this.#channel = channel;
    this.#tailInterval = setInterval(() => {
      if (this.#sent > 0) this.#tail();
    }, TAIL_EVERY_MS);
    Deno.unrefTimer(this.#tailInterval);
  }

  publish(message: FanoutMessage): void {
    if (this.#closed) return;
    this.#post({ kind: "events", from: this.#id, n: ++this.#sent, message });
  }

  notify(notice: FanoutNotice): void {
    if (this.#closed) return;
    this.#post({ kind: "notice", from: this.#id, n: ++this.#sent, notice });
  }

  /**
   * Posts a numbered message. One the channel cannot take (a value it cannot clone) is
   * logged and followed by an empty one, whose number jumps: the other isolates then catch
   * up from the database at once, so what the lost message told is not lost with it.
   */
  #post(wire: Wire): void {
    try {
      this.#channel.postMessage(wire);
    } catch (error) {
      logError("a message to the other isolates could not be sent", error);
      this.#channel.postMessage({
        kind: "events",
        from: this.#id,
        n: ++this.#sent,
        message: { jobs: [] },
      });
    }
    this.#postedAt = performance.now();
    this.#tailTimer ??= setTimeout(() => this.#tailWhenQuiet(), TAIL_AFTER_MS);
  }

  /** Tells the count once no message has gone for {@link TAIL_AFTER_MS}. */
  #tailWhenQuiet(): void {
    const quiet = performance.now() - this.#postedAt;
    if (quiet < TAIL_AFTER_MS && !this.#closed) {
      this.#tailTimer = setTimeout(() => this.#tailWhenQuiet(), TAIL_AFTER_MS - quiet);
      return;
    }
    this.#tailTimer = undefined;
    this.#tail();
  }

  #tail(): void {
    if (this.#closed) return;
    try {
      this.#channel.postMessage({ kind: "tail", from: this.#id, n: this.#sent });
    } catch (error) {
      logError("a message to the other isolates could not be sent", error);
    }
  }

  wake(): void {
    if (this.#closed) return;
    this.#channel.postMessage(WAKE);
  }

  listen(
    onEvents: (message: FanoutMessage) => void,
    onNotice: (notice: FanoutNotice) => void,
    onLost: () => void,
  ): void {
    this.#channel.onmessage = (e: MessageEvent<Wire>) => {
      try {
        const wire = e.data;
        // Receiving it was the point: this isolate is awake for the commit that follows.
        if (wire.kind === "wake") return;
        const previous = this.#heard.get(wire.from);
        if (wire.kind === "tail") {
          if (previous !== undefined && wire.n <= previous) return;
          this.#heard.set(wire.from, wire.n);
          // Behind what the sender says it sent: the last of its messages were lost.
          if (previous !== undefined) onLost();
          return;
        }
        this.#heard.set(wire.from, wire.n);
        // Caught up first: what this message says then applies on top of a current state.
        if (previous !== undefined && wire.n > previous + 1) onLost();
        if (wire.kind === "events") onEvents(wire.message);
        else onNotice(wire.notice);
      } catch (error) {
        // A handler must not throw out of an event listener: that would end the isolate.
        logError("delivering events from another isolate failed", error);
      }
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#tailTimer);
    clearInterval(this.#tailInterval);
    this.#channel.close();
  }
}
