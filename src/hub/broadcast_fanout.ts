/**
 * The fanout between isolates of one `deno serve --parallel` process: committed events
 * and job notices travel on a `BroadcastChannel`, which delivers to every other isolate
 * (never back to the poster, whose local subscribers the hub serves directly).
 *
 * @module
 */
import type { Fanout, FanoutMessage, FanoutNotice } from "./fanout.ts";
import { logError } from "../log.ts";

type Wire =
  | { kind: "events"; message: FanoutMessage }
  | { kind: "notice"; notice: FanoutNotice };

/** {@link Fanout} over a `BroadcastChannel`. */
export class BroadcastFanout implements Fanout {
  #channel: BroadcastChannel;
  #closed = false;

  /** @param name channel name; isolates of one server share it */
  constructor(name: string) {
    this.#channel = new BroadcastChannel(name);
  }

  publish(message: FanoutMessage): void {
    if (!this.#closed) this.#channel.postMessage({ kind: "events", message } satisfies Wire);
  }

  notify(notice: FanoutNotice): void {
    if (!this.#closed) this.#channel.postMessage({ kind: "notice", notice } satisfies Wire);
  }

  listen(
    onEvents: (message: FanoutMessage) => void,
    onNotice: (notice: FanoutNotice) => void,
  ): void {
    this.#channel.onmessage = (e: MessageEvent<Wire>) => {
      try {
        if (e.data.kind === "events") onEvents(e.data.message);
        else onNotice(e.data.notice);
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
