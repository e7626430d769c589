/**
 * A bounded send buffer per connection. Frames go straight to the socket while it keeps
 * up; once the socket holds more than `highWater` bytes they wait here, progress frames
 * of the same job replace each other (only the newest matters), and past `maxQueued`
 * waiting frames the connection is closed with 4008 so the client can resume with
 * `since` instead of the server buffering without bound.
 *
 * @module
 */
import { type Frame, frameLength } from "./codec.ts";
import { logError } from "../log.ts";

/** The write side of one connection. */
export interface Sink {
  write(frame: Frame): void;
  /** Bytes written but not yet taken by the network. */
  backlog(): number;
  close(code: number, reason: string): void;
  /**
   * Optional: until `uncork`, writes may be gathered and sent as one (a replay of many
   * events then costs one chunk on a byte stream, or a few messages on a WebSocket with
   * `batch=1`, instead of one per event).
   */
  cork?(): void;
  uncork?(): void;
  /** Optional: bytes a replay starting now may write, when the sink bounds it further. */
  replayRoom?(): number;
}

/** Bounds of an outbox. */
export interface OutboxLimits {
  /** Socket backlog (bytes) above which frames wait in the outbox. */
  highWater: number;
  /** Waiting frames (not counting replay) above which the connection is closed. */
  maxQueued: number;
  /**
   * Bytes the client may leave unread when a replay starts; past it the connection is
   * closed instead. A replay goes out whole and is bounded by the job's cap, but a client
   * that never reads and subscribes again and again would pile up replays without end.
   */
  maxUnread?: number;
  /**
   * Bytes one replay may write: a longer one stops there and closes the connection with
   * 4008, and the client resumes with `since` from what it got. Without it a replay goes
   * out whole, up to the job's cap of events (640 MiB of the largest), however slowly the
   * client reads.
   */
  maxReplay?: number;
}

/** Replaced entries a queue may hold before they are dropped from it (see `push`). */
const COMPACT_AFTER = 64;

/** Outboxes corked during the current delivery round, if one is running. */
let round: Outbox[] | undefined;

/**
 * Runs `deliver` as one round: every connection it writes to that can gather (SSE, NDJSON,
 * a WebSocket with `batch=1`) gathers its frames and sends them at the end, as one chunk
 * or one message (several events of one commit then cost a client one write, not one
 * each). Plain WebSocket frames are unaffected.
 */
export function deliveryRound(deliver: () => void): void {
  if (round !== undefined) return deliver();
  const corked: Outbox[] = [];
  round = corked;
  try {
    deliver();
  } finally {
    round = undefined;
    for (const outbox of corked) {
      // One connection failing to send must not leave the others corked.
      try {
        outbox.uncork();
      } catch (error) {
        logError("sending a delivery round's frames failed", error);
      }
    }
  }
}

/** WebSocket close code (and SSE error code) for a consumer that cannot keep up. */
export const SLOW_CONSUMER_CODE = 4008;

/**
 * The close reason of a consumer too slow for its send buffer: it resumes from the last event
 * it received, which only it knows (what was waiting for it is dropped with the close).
 */
export const SLOW_CONSUMER_REASON =
  "slow consumer: reconnect with since= the last sequence received";

interface Entry {
  frame: Frame | null;
  key: string | undefined;
  counted: boolean;
}

/** One connection's send buffer. */
export class Outbox {
  #sink: Sink;
  #limits: OutboxLimits;
  #queue: Entry[] = [];
  #head = 0;
  #counted = 0;
  /** Waiting frames by coalescing key; made when a first frame waits (idle connections have none). */
  #keyed: Map<string, Entry> | undefined;
  #onBacklog: (outbox: Outbox) => void;
  #onClose: () => void;
  #closed = false;
  #closedWith: { code: number; reason: string } | undefined;
  #coalesced = 0;
  /** Bytes that may still be written before the socket's backlog must be read again. */
  #credit = 0;
  /** Corked for the current delivery round. */
  #inRound = false;
  /** Bytes (UTF-16 units for text) of the frames waiting here, replays included. */
  #queuedBytes = 0;
  /** Entries of the queue whose frame a newer one replaced (skipped when draining). */
  #replaced = 0;

  /**
   * @param onBacklog called when frames start waiting, so the owner can call
   *   {@link drain} once the socket has room again
   * @param onClose called once when the outbox closes the connection, for whatever reason
   */
  constructor(
    sink: Sink,
    limits: OutboxLimits,
    onBacklog: (outbox: Outbox) => void,
    onClose: () => void = () => {},
  ) {
    this.#sink = sink;
    this.#limits = limits;
    this.#onBacklog = onBacklog;
    this.#onClose = onClose;
  }

  /**
   * Sends or queues a frame.
   *
   * @param key frames with the same key replace each other while waiting
   * @param bounded false for replay, whose size the per-job cap already bounds
   */
  push(frame: Frame, key?: string, bounded = true): void {
    if (this.#closed) return;
    if (this.#head === this.#queue.length) {
      // Replay goes straight out: its size is bounded by the per-job cap, and holding it
      // back would only delay the client.
      if (!bounded) {
        this.#sink.write(frame);
        return;
      }
      // Asking the socket for its backlog costs a call into the runtime on every frame; after
      // one answer, the room it reported is spent first and the socket asked again after.
      if (this.#credit <= 0) this.#credit = this.#limits.highWater - this.#sink.backlog();
      if (this.#credit > 0) {
        this.#credit -= frameLength(frame);
        if (round !== undefined && !this.#inRound && this.#sink.cork !== undefined) {
          this.#inRound = true;
          this.#sink.cork();
          round.push(this);
        }
        this.#sink.write(frame);
        return;
      }
    }
    if (key !== undefined) {
      const older = this.#keyed?.get(key);
      if (older !== undefined && older.frame !== null) {
        // The older frame leaves its place and the newer one joins the tail, so frames
        // still leave in sequence order; the client sees a skipped progress sequence.
        this.#queuedBytes -= frameLength(older.frame);
        older.frame = null;
        if (older.counted) this.#counted--;
        this.#coalesced++;
        // Replaced entries leave the queue once they outnumber the live ones: a client that
        // never reads, sent progress after progress, would otherwise hold an entry for each.
        if (
          ++this.#replaced > COMPACT_AFTER && this.#replaced * 2 > this.#queue.length - this.#head
        ) {
          this.#compact();
        }
      }
    }
    const entry: Entry = { frame, key, counted: bounded };
    this.#queue.push(entry);
    this.#queuedBytes += frameLength(frame);
    if (key !== undefined) (this.#keyed ??= new Map()).set(key, entry);
    if (bounded) this.#counted++;
    if (this.#counted > this.#limits.maxQueued) {
      this.close(SLOW_CONSUMER_CODE, SLOW_CONSUMER_REASON);
      return;
    }
    if (this.#queue.length - this.#head === 1) this.#onBacklog(this);
  }

  /**
   * Moves waiting frames to the socket while it has room.
   *
   * @returns true when nothing is left waiting
   */
  drain(): boolean {
    if (this.#closed) return true;
    // Waiting frames leave together where the sink can gather them (unless a delivery
    // round already corked it and will uncork it at its end).
    const cork = !this.#inRound && this.#head < this.#queue.length;
    if (cork) this.#sink.cork?.();
    try {
      while (this.#head < this.#queue.length) {
        if (this.#sink.backlog() >= this.#limits.highWater) return false;
        const entry = this.#queue[this.#head++]!;
        if (entry.counted && entry.frame !== null) this.#counted--;
        if (entry.key !== undefined && this.#keyed?.get(entry.key) === entry) {
          this.#keyed.delete(entry.key);
        }
        if (entry.frame !== null) {
          this.#queuedBytes -= frameLength(entry.frame);
          this.#sink.write(entry.frame);
        } else {
          this.#replaced--;
        }
      }
    } finally {
      if (cork && !this.#closed) this.#sink.uncork?.();
    }
    this.#queue = [];
    this.#head = 0;
    this.#credit = 0;
    this.#queuedBytes = 0;
    this.#replaced = 0;
    return true;
  }

  /** Drops replaced entries from the queue, keeping the order of the others. */
  #compact(): void {
    const live: Entry[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i]!;
      if (entry.frame !== null) live.push(entry);
    }
    this.#queue = live;
    this.#head = 0;
    this.#replaced = 0;
  }

  /** Bytes one replay may write (`maxReplay`, or less when the sink has less room), or `Infinity`. */
  get replayBudget(): number {
    return Math.min(this.#limits.maxReplay ?? Infinity, this.#sink.replayRoom?.() ?? Infinity);
  }

  /**
   * Whether the client has left more unread than a replay may start on (`maxUnread`): in
   * the socket, and waiting here (where replays join the queue behind waiting frames).
   */
  overfull(): boolean {
    const max = this.#limits.maxUnread;
    return max !== undefined && !this.#closed && this.#sink.backlog() + this.#queuedBytes > max;
  }

  /** Gathers writes until {@link uncork} (see {@link Sink.cork}). */
  cork(): void {
    this.#sink.cork?.();
  }

  uncork(): void {
    this.#inRound = false;
    if (!this.#closed) this.#sink.uncork?.();
  }

  /** Frames waiting (not counting replaced ones). */
  get waiting(): number {
    return this.#queue.length - this.#head - this.#replaced;
  }

  /** Progress frames replaced by newer ones since the connection opened. */
  get coalesced(): number {
    return this.#coalesced;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Ends the connection gracefully: every waiting frame is written (whatever the backlog)
   * before the close, so a client told "finished" has everything before it.
   */
  finish(code: number, reason: string): void {
    if (this.#closed) return;
    // Gathered where the sink can; its close sends what it gathered first.
    if (this.#head < this.#queue.length) this.#sink.cork?.();
    try {
      while (this.#head < this.#queue.length) {
        const frame = this.#queue[this.#head++]!.frame;
        if (frame !== null) this.#sink.write(frame);
      }
    } finally {
      this.close(code, reason);
    }
  }

  /** The close code and reason the connection was given, once the server closed it. */
  get closedWith(): { code: number; reason: string } | undefined {
    return this.#closedWith;
  }

  /** Drops waiting frames and closes the sink. Idempotent. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closedWith = { code, reason };
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    this.#replaced = 0;
    this.#keyed = undefined;
    this.#sink.close(code, reason);
    this.#onClose();
  }
}
