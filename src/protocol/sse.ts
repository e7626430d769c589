/**
 * Server-Sent Events framing (WHATWG HTML §9.2), as pure functions.
 *
 * @module
 */

/** One SSE message. `data` may hold newlines; `id` and `event` may not. */
export interface SseMessage {
  id?: string | number;
  event?: string;
  data: string;
  /** Reconnection delay the browser should use, in milliseconds. */
  retry?: number;
}

const LINE_BREAK = /[\r\n]/;

/**
 * Frames one message.
 *
 * @throws {SyntaxError} when `id` or `event` holds a line break (it would forge fields)
 */
export function formatSse(message: SseMessage): string {
  let out = "";
  if (message.retry !== undefined) {
    if (!Number.isInteger(message.retry) || message.retry < 0) {
      throw new RangeError(`SSE retry must be a non-negative integer: ${message.retry}`);
    }
    out += `retry: ${message.retry}\n`;
  }
  if (message.id !== undefined) {
    const id = String(message.id);
    if (LINE_BREAK.test(id) || id.includes("\0")) {
      throw new SyntaxError("SSE id cannot contain a line break or NUL");
    }
    out += `id: ${id}\n`;
  }
  if (message.event !== undefined) {
    if (LINE_BREAK.test(message.event)) {
      throw new SyntaxError("SSE event cannot contain a line break");
    }
    out += `event: ${message.event}\n`;
  }
  const data = message.data;
  // JSON text (every envelope) has no raw line break: the common case needs no split.
  if (!data.includes("\n") && !data.includes("\r")) return `${out}data: ${data}\n\n`;
  for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + "\n";
}

/** Frames a comment line, which clients ignore (used to keep proxies from timing out). */
export function formatSseComment(text: string): string {
  return text.split(/\r\n|\r|\n/).map((line) => `: ${line}\n`).join("") + "\n";
}
