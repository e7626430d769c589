/**
 * An incremental Server-Sent Events parser (WHATWG HTML §9.2.6) for streamed `fetch`
 * bodies: feed it decoded text in any chunking, get whole messages back.
 *
 * @module
 */

/** One dispatched SSE message. */
export interface SseMessage {
  /** The `event:` field; `"message"` when absent. */
  event: string;
  data: string;
  /** The last `id:` seen on the stream, if any. */
  id: string | undefined;
  /** The `retry:` value of this message, in milliseconds, if any. */
  retry: number | undefined;
}

/** Parses an SSE stream chunk by chunk. */
export class SseParser {
  #buffer = "";
  #event = "";
  #data: string[] = [];
  #id: string | undefined;
  #retry: number | undefined;
  #sawCr = false;

  /**
   * Parses `chunk` (text, already decoded).
   *
   * @returns the messages completed by this chunk
   */
  feed(chunk: string): SseMessage[] {
    const out: SseMessage[] = [];
    let text = chunk;
    // A CRLF split across chunks: the LF belongs to the CR already handled.
    if (this.#sawCr && text.startsWith("\n")) text = text.slice(1);
    this.#sawCr = false;
    this.#buffer += text;
    const breaks = /\r\n|\r|\n/g;
    let start = 0;
    let match: RegExpExecArray | null;
    while ((match = breaks.exec(this.#buffer)) !== null) {
      const line = this.#buffer.slice(start, match.index);
      start = breaks.lastIndex;
      if (match[0] === "\r" && start === this.#buffer.length) this.#sawCr = true;
      const message = this.#line(line);
      if (message !== undefined) out.push(message);
    }
    this.#buffer = this.#buffer.slice(start);
    return out;
  }

  #line(line: string): SseMessage | undefined {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.#id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.#retry = Number(value);
        break;
    }
    return undefined;
  }

  #dispatch(): SseMessage | undefined {
    const retry = this.#retry;
    this.#retry = undefined;
    if (this.#data.length === 0) {
      this.#event = "";
      return undefined;
    }
    const message: SseMessage = {
      event: this.#event === "" ? "message" : this.#event,
      data: this.#data.join("\n"),
      id: this.#id,
      retry,
    };
    this.#event = "";
    this.#data = [];
    return message;
  }
}
