/**
 * Helpers for client tests: a recorder of everything a watcher emits, and WebSocket
 * wrappers that simulate network trouble around real connections.
 *
 * @module
 */
import type { JobWatcher, WatcherEvents } from "../../src/client/mod.ts";
import { WATCHER_EVENT_NAMES } from "../../src/client/watch_events.ts";
import type {
  CloseLike,
  MessageLike,
  WebSocketConstructor,
  WebSocketLike,
} from "../../src/client/types.ts";
import { waitFor } from "./clients.ts";

/** Every emission of a watcher, in order. */
export class Recorder {
  readonly log: { name: keyof WatcherEvents; payload: unknown }[] = [];
  constructor(readonly watcher: JobWatcher) {
    const names = [...WATCHER_EVENT_NAMES] as (keyof WatcherEvents)[];
    for (const name of names) watcher.on(name, (payload) => this.log.push({ name, payload }));
  }

  /** Payloads of `name`, in order. */
  all<K extends keyof WatcherEvents>(name: K): WatcherEvents[K][] {
    return this.log.filter((e) => e.name === name).map((e) => e.payload as WatcherEvents[K]);
  }

  /** Sequences of delivered events (of `jobId` when given). */
  sequences(jobId?: string): number[] {
    return this.all("event").filter((e) => jobId === undefined || e.job_id === jobId).map((e) =>
      e.sequence
    );
  }

  /** Waits until `name` has been emitted `count` times; returns the last payload. */
  async next<K extends keyof WatcherEvents>(
    name: K,
    count = 1,
    timeoutMs = 10_000,
  ): Promise<WatcherEvents[K]> {
    try {
      const payloads = await waitFor(
        () => (this.all(name).length >= count ? this.all(name) : undefined),
        timeoutMs,
        `${count} × ${name}`,
      );
      return payloads[count - 1]!;
    } catch (error) {
      throw new Error(`${(error as Error).message}; got ${this.#summary()}`);
    }
  }

  /** Waits until event sequences (of `jobId`) reach `last`. */
  async until(last: number, jobId?: string, timeoutMs = 10_000): Promise<number[]> {
    try {
      await waitFor(
        () => (this.sequences(jobId).at(-1) ?? 0) >= last,
        timeoutMs,
        `sequence ${last}`,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; got ${this.#summary()}`);
    }
    return this.sequences(jobId);
  }

  /** The emissions so far, runs of the same name collapsed (`event ×40`). */
  #summary(): string {
    const runs: string[] = [];
    let previous = "";
    let count = 0;
    for (const { name } of [...this.log, { name: "" }]) {
      if (name === previous) {
        count++;
        continue;
      }
      if (previous !== "") runs.push(count > 1 ? `${previous} ×${count}` : previous);
      previous = name;
      count = 1;
    }
    const errors = this.all("error").map((e) => `${e.code}: ${e.message}`).slice(-3);
    return `${runs.join(", ").slice(-600)}; sequences ${
      this.sequences().join(",").slice(-200)
    }; errors ${errors.join(" | ")}`;
  }
}

/** 1, 2, …, n. */
export function range(n: number, from = 1): number[] {
  return Array.from({ length: n - from + 1 }, (_, i) => i + from);
}

/** A WebSocket constructor whose sockets never connect (a blocked network or proxy). */
export function failingWebSocket(): WebSocketConstructor & { attempts: number } {
  const ctor = class implements WebSocketLike {
    static attempts = 0;
    readyState = 0;
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: MessageLike) => void) | null = null;
    onclose: ((event: CloseLike) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    constructor(_url: string) {
      ctor.attempts++;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.({ type: "error" });
        this.onclose?.({ code: 1006, reason: "" });
      }, 0);
    }
    send(): void {
      throw new Error("not open");
    }
    close(): void {
      this.readyState = 3;
    }
  };
  return ctor;
}

/**
 * A real WebSocket whose incoming envelopes pass through `filter` first (each line of a
 * `batch=1` message on its own): return true to let the envelope through, or false to drop
 * it (or deliver it later through `deliver`). `socket` counts the sockets made, from 0.
 */
export function filteredWebSocket(
  filter: (data: string, deliver: () => void, socket: number) => boolean,
): WebSocketConstructor & { sockets: WebSocket[] } {
  const ctor = class implements WebSocketLike {
    static sockets: WebSocket[] = [];
    #socket: WebSocket;
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: MessageLike) => void) | null = null;
    onclose: ((event: CloseLike) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    constructor(url: string) {
      this.#socket = new WebSocket(url);
      const index = ctor.sockets.push(this.#socket) - 1;
      this.#socket.onopen = (e) => this.onopen?.(e);
      this.#socket.onclose = (e) => this.onclose?.(e);
      this.#socket.onerror = (e) => this.onerror?.(e);
      this.#socket.onmessage = (e) => {
        // Envelope by envelope: the lines of a batch=1 message are filtered, and delivered,
        // as messages of their own.
        for (const data of String(e.data).split("\n")) {
          const deliver = () => this.onmessage?.({ data });
          if (filter(data, deliver, index)) deliver();
        }
      };
    }
    get readyState(): number {
      return this.#socket.readyState;
    }
    send(data: string): void {
      this.#socket.send(data);
    }
    close(code?: number, reason?: string): void {
      this.#socket.close(code, reason);
    }
  };
  return ctor;
}

/** A WebSocket constructor whose sockets hang in CONNECTING forever (a black-holed SYN). */
export function hangingWebSocket(): WebSocketConstructor & { attempts: number; closed: number } {
  const ctor = class implements WebSocketLike {
    static attempts = 0;
    static closed = 0;
    readyState = 0;
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: MessageLike) => void) | null = null;
    onclose: ((event: CloseLike) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    constructor(_url: string) {
      ctor.attempts++;
    }
    send(): void {
      throw new Error("not open");
    }
    close(): void {
      ctor.closed++;
      this.readyState = 3;
    }
  };
  return ctor;
}

/**
 * Real WebSockets that wait for a gate before connecting: `hold()` makes the next ones
 * wait (the network is down) until `release()`; `drop()` closes the current one.
 */
export function gatedWebSocket(): WebSocketConstructor & {
  hold(): void;
  release(): void;
  drop(): void;
} {
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  let current: WebSocket | undefined;
  const ctor = class implements WebSocketLike {
    #socket: WebSocket | undefined;
    #closed = false;
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: MessageLike) => void) | null = null;
    onclose: ((event: CloseLike) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    constructor(url: string) {
      gate.then(() => {
        if (this.#closed) return;
        const socket = new WebSocket(url);
        this.#socket = socket;
        current = socket;
        socket.onopen = (e) => this.onopen?.(e);
        socket.onclose = (e) => this.onclose?.(e);
        socket.onerror = (e) => this.onerror?.(e);
        socket.onmessage = (e) => this.onmessage?.({ data: String(e.data) });
      });
    }
    static hold(): void {
      gate = new Promise((resolve) => (open = resolve));
    }
    static release(): void {
      open();
    }
    static drop(): void {
      current?.close();
    }
    get readyState(): number {
      return this.#socket?.readyState ?? 0;
    }
    send(data: string): void {
      this.#socket?.send(data);
    }
    close(code?: number, reason?: string): void {
      this.#closed = true;
      this.#socket?.close(code, reason);
    }
  };
  return ctor;
}
