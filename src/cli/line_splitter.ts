/**
 * Splitting a byte stream into lines the way a terminal shows them. A line ends at `\n`
 * (or `\r\n`). A lone `\r` returns the cursor to the start of the line, as progress bars
 * (tqdm, curl, wget) do to redraw themselves: the text before it is a *transient*
 * segment, shown and then overwritten. Transient segments are read for progress but not
 * logged; the line logged is the last text written over them, after the last `\r` (or, when
 * that is empty, as in `abc\r\r\n`, the segment before it), without what a shorter last text
 * leaves showing of an earlier one on a terminal (`xyz\rab` shows `abz` and logs `ab`).
 *
 * @module
 */

/**
 * Most of one line kept, in UTF-16 code units: of a program that writes megabytes without
 * a newline, the start of the line is kept and the rest only counted.
 */
export const MAX_PENDING_CHARS = 65_536;

/**
 * Receives the segments of a stream: `complete` for a line, `false` for a transient one;
 * `omitted` is the number of characters of the line left out after `text`'s first
 * {@link MAX_PENDING_CHARS}.
 */
export type SegmentSink = (text: string, complete: boolean, omitted: number) => void;

/**
 * Splits chunks of UTF-8 into lines and transient segments. Text after the last line
 * end waits for the next chunk (a partial line), and a `\r` at the end of a chunk waits
 * to see whether `\n` follows.
 *
 * @example
 * ```ts
 * const splitter = new LineSplitter();
 * const seen: string[] = [];
 * splitter.push(new TextEncoder().encode("10%\r50%\rdone\nnext"), (t, c) => seen.push(`${c}:${t}`));
 * splitter.end((t, c) => seen.push(`${c}:${t}`));
 * // seen: ["false:10%", "false:50%", "true:done", "true:next"]
 * ```
 */
export class LineSplitter {
  #decoder = new TextDecoder();
  #pending = "";
  /** Characters of the pending line left out beyond {@link MAX_PENDING_CHARS}. */
  #omitted = 0;
  /** The last transient segment of the line under way, if it had one. */
  #overwritten: string | undefined;

  /** Decodes `chunk` and hands every finished segment to `sink`. */
  push(chunk: Uint8Array, sink: SegmentSink): void {
    this.#split(this.#pending + this.#decoder.decode(chunk, { stream: true }), sink);
  }

  /** Hands the text left after the last line end to `sink` as a line, if there is any. */
  end(sink: SegmentSink): void {
    // Only a trailing `\r` can be left in the pending text: #split hands on every other.
    const text = (this.#pending + this.#decoder.decode()).replace(/\r$/, "");
    this.#pending = "";
    if (text !== "") this.#line(text, sink);
    else if (this.#overwritten !== undefined) this.#line("", sink);
  }

  /** Hands on a finished line: what stays on screen, with what was left out of it. */
  #line(text: string, sink: SegmentSink): void {
    const shown = text === "" && this.#overwritten !== undefined ? this.#overwritten : text;
    const omitted = this.#omitted;
    this.#omitted = 0;
    this.#overwritten = undefined;
    sink(shown, true, omitted);
  }

  #transient(text: string, sink: SegmentSink): void {
    this.#overwritten = text;
    sink(text, false, 0);
  }

  #split(text: string, sink: SegmentSink): void {
    const length = text.length;
    let start = 0;
    // The next CR is looked up once and reused until passed: looking it up afresh for
    // every line would rescan the rest of the chunk each time (quadratic in its lines).
    let cr = text.indexOf("\r");
    for (;;) {
      const nl = text.indexOf("\n", start);
      const end = nl === -1 ? length : nl;
      while (cr !== -1 && cr < end) {
        // `\r\n` ends a line; a `\r` last in the chunk may be the first half of one.
        if (cr === end - 1) break;
        this.#transient(text.slice(start, cr), sink);
        start = cr + 1;
        cr = text.indexOf("\r", start);
      }
      if (nl === -1) break;
      const lineEnd = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.#line(text.slice(start, lineEnd), sink);
      start = nl + 1;
      if (cr !== -1 && cr < start) cr = text.indexOf("\r", start);
    }
    let rest = text.slice(start);
    if (rest.length > MAX_PENDING_CHARS) {
      // Keep the start of the line (never half of a surrogate pair) and count the rest; a
      // `\r` at the end may still be half of a line end.
      const trailingCr = rest.endsWith("\r");
      let keep = MAX_PENDING_CHARS;
      if (/[\ud800-\udbff]/.test(rest[keep - 1]!)) keep--;
      this.#omitted += rest.length - keep - (trailingCr ? 1 : 0);
      rest = rest.slice(0, keep) + (trailingCr ? "\r" : "");
    }
    this.#pending = rest;
  }
}
