/**
 * The bounded queue between a command's output and the server: lines wait here until
 * they are published. When it is full the oldest lines are dropped, so a command that
 * prints faster than the server accepts is never held up and memory stays bounded.
 *
 * @module
 */

/** A line waiting to be published. */
export interface QueuedLine {
  line: string;
  level: "info" | "warning";
  source: string;
}

/** Default bound on waiting lines. */
export const MAX_QUEUED_LINES = 10_000;
/** Default bound on the characters of waiting lines (about 4 MB of text). */
export const MAX_QUEUED_CHARS = 4_000_000;

/**
 * A first-in first-out queue of lines with bounds on count and characters. Every line
 * has a serial number (1, 2, …); {@link removed} tells how many left the queue, taken or
 * dropped, so a caller can tell whether a given line is gone.
 */
export class LogQueue {
  #items: QueuedLine[] = [];
  #head = 0;
  #chars = 0;
  #pushed = 0;
  #removed = 0;
  #dropped = 0;
  readonly #maxLines: number;
  readonly #maxChars: number;

  constructor(maxLines: number = MAX_QUEUED_LINES, maxChars: number = MAX_QUEUED_CHARS) {
    if (!(maxLines >= 1) || !(maxChars >= 1)) throw new RangeError("Queue bounds must be >= 1");
    this.#maxLines = maxLines;
    this.#maxChars = maxChars;
  }

  /** Lines waiting. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Serial number of the last line pushed (0 before any). */
  get pushed(): number {
    return this.#pushed;
  }

  /** Lines that left the queue, taken or dropped: every line up to this serial is gone. */
  get removed(): number {
    return this.#removed;
  }

  /** Lines dropped since the last {@link takeDropped}. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Adds a line, dropping the oldest ones while a bound is exceeded; returns its serial. */
  push(item: QueuedLine): number {
    this.#items.push(item);
    this.#chars += item.line.length;
    this.#pushed++;
    while (this.length > this.#maxLines || (this.#chars > this.#maxChars && this.length > 1)) {
      this.#shift();
      this.#dropped++;
    }
    return this.#pushed;
  }

  /** Takes up to `maxLines` lines and about `maxChars` characters (always at least one line). */
  take(maxLines: number, maxChars: number): QueuedLine[] {
    const out: QueuedLine[] = [];
    let chars = 0;
    while (this.length > 0 && out.length < maxLines) {
      const next = this.#items[this.#head]!;
      if (out.length > 0 && chars + next.line.length > maxChars) break;
      chars += next.line.length;
      out.push(this.#shift());
    }
    return out;
  }

  /** Drops every waiting line (counted as dropped). */
  clear(): void {
    while (this.length > 0) {
      this.#shift();
      this.#dropped++;
    }
  }

  /** The number of lines dropped since the last call, and resets it. */
  takeDropped(): number {
    const dropped = this.#dropped;
    this.#dropped = 0;
    return dropped;
  }

  #shift(): QueuedLine {
    const item = this.#items[this.#head]!;
    this.#head++;
    this.#chars -= item.line.length;
    this.#removed++;
    // Compact now and then instead of shifting the array on every removal.
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}
