/**
 * The fanout between isolates of one `deno serve --parallel` process: commit messages
 * and job notices travel on a `BroadcastChannel`, which delivers to every other isolate
 * (never back to the poster, whose local subscribers the hub serves directly).
 *
 * Deno's channel holds 256 messages for the whole process and drops the oldest for an
 * isolate that falls further behind. Every message is numbered by its sender, so a
 * receiver notices a jump and catches up from the database instead of waiting for the
 * next commit of each job.
 *
 * @module
 */
import type { Fanout, FanoutMessage, FanoutNotice } from "./fanout.ts";
import { logError } from "../log.ts";

type Wire =
  | { kind: "wake" }
  | (
    & { from: string; n: number }
    & ({ kind: "events"; message: FanoutMessage } | { kind: "notice"; notice: FanoutNotice })
  );

/** A wake carries nothing and is not numbered: losing one costs only its purpose. */
const WAKE: Wire = { kind: "wake" };

/** {@link Fanout} over a `BroadcastChannel`. */
export class BroadcastFanout implements Fanout {
  #channel: BroadcastChannel;
  #closed = false;
  #id = crypto.randomUUID();
  #sent = 0;
  /** Number of the last message heard from each other isolate. */
  #heard = new Map<string, number>();

  /** @param name channel name; isolates of one server share it */
  constructor(name: string) {
    this.#channel = new BroadcastChannel(name);
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
    this.#channel.close();
  }
}
