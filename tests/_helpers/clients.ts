/**
 * Real clients for tests: HTTP through `fetch`, WebSocket through the runtime's
 * `WebSocket`, SSE and NDJSON through streamed `fetch` bodies.
 *
 * @module
 */

/** A decoded JSON message from any stream. */
// deno-lint-ignore no-explicit-any
export type Msg = any;

/** An HTTP reply with its body read. */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** Sends a request; `body` objects are sent as JSON, strings as they are. */
export async function http(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" || body instanceof Uint8Array
      ? body as BodyInit
      : JSON.stringify(body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
      (init.headers as Record<string, string>)["content-type"] = "application/json";
    }
  }
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  let json: unknown = undefined;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Creates a job and returns its id. */
export async function createJob(base: string, body: Record<string, unknown> = {}): Promise<string> {
  const reply = await http(base, "POST", "/jobs", body);
  if (reply.status !== 201) throw new Error(`create failed: ${reply.status} ${reply.text}`);
  return reply.json.job.id;
}

/** Publishes events and returns their sequences. */
export async function publish(
  base: string,
  jobId: string,
  ...events: unknown[]
): Promise<number[]> {
  const body = events.length === 1 ? events[0] : { events };
  const reply = await http(base, "POST", `/jobs/${jobId}/events`, body);
  if (reply.status !== 201) throw new Error(`publish failed: ${reply.status} ${reply.text}`);
  return reply.json.sequences;
}

/** A log event with `line`. */
/**
 * Publishes `count` log events of 60,000 characters to a job, ten a request: a history
 * larger than one replay's budget (16 MiB) from 280 events on.
 */
export async function publishLarge(base: string, id: string, count: number): Promise<void> {
  const line = "x".repeat(60_000);
  for (let n = 0; n < count; n += 10) {
    const events = Array.from(
      { length: Math.min(10, count - n) },
      () => ({ type: "log", data: { line } }),
    );
    const reply = await http(base, "POST", `/jobs/${id}/events`, { events });
    if (reply.status !== 201) throw new Error(`publish failed: ${reply.status} ${reply.text}`);
  }
}

export function logEvent(line: string | number): { type: string; data: Record<string, unknown> } {
  return { type: "log", data: { line: String(line), level: "info" } };
}

/** Polls `check` until it returns a value other than `undefined`/`false`, or throws at the deadline. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Shared buffering of received messages with a consuming cursor. */
class Inbox {
  messages: Msg[] = [];
  #cursor = 0;
  #waiters: (() => void)[] = [];
  ended = false;

  push(message: Msg): void {
    this.messages.push(message);
    this.#wake();
  }

  end(): void {
    this.ended = true;
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** The next message (after those already taken) that matches, consuming up to it. */
  async next(match: (m: Msg) => boolean = () => true, timeoutMs = 5000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#cursor < this.messages.length) {
        const message = this.messages[this.#cursor++];
        if (match(message)) return message;
      }
      if (this.ended) throw new Error("Stream ended before the expected message");
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `Timed out waiting for a message; got ${JSON.stringify(this.messages).slice(-500)}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Takes messages until one matches `stop` (inclusive). */
  async until(stop: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg[]> {
    const taken: Msg[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.next(() => true, Math.max(1, deadline - Date.now()));
      taken.push(message);
      if (stop(message)) return taken;
    }
  }
}

/** A WebSocket client that records every message and the close. */
export class WsClient {
  readonly socket: WebSocket;
  readonly inbox = new Inbox();
  readonly closed: Promise<{ code: number; reason: string }>;
  opened = false;
  /** The raw text of every message, in order. */
  readonly frames: string[] = [];

  private constructor(url: string) {
    this.socket = new WebSocket(url);
    // With batch=1 a message holds one envelope per line; otherwise it must be one whole.
    const batch = new URL(url).searchParams.get("batch") === "1";
    this.socket.onmessage = (e) => {
      const text = String(e.data);
      this.frames.push(text);
      for (const line of batch ? text.split("\n") : [text]) this.inbox.push(JSON.parse(line));
    };
    this.closed = new Promise((resolve) => {
      this.socket.onclose = (e) => {
        this.inbox.end();
        resolve({ code: e.code, reason: e.reason });
      };
    });
  }

  /** Connects; resolves once open (or closed, for connections the server refuses). */
  static async connect(url: string): Promise<WsClient> {
    const client = new WsClient(url.replace(/^http/, "ws"));
    await new Promise<void>((resolve) => {
      client.socket.onopen = () => {
        client.opened = true;
        resolve();
      };
      client.closed.then(() => resolve());
    });
    return client;
  }

  get messages(): Msg[] {
    return this.inbox.messages;
  }

  next(match?: (m: Msg) => boolean, timeoutMs?: number): Promise<Msg> {
    return this.inbox.next(match, timeoutMs);
  }

  until(stop: (m: Msg) => boolean, timeoutMs?: number): Promise<Msg[]> {
    return this.inbox.until(stop, timeoutMs);
  }

  send(message: unknown): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Closes and waits for the close to complete. */
  async close(): Promise<void> {
    if (
      this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING
    ) {
      this.socket.close();
    }
    await this.closed;
  }
}

/** One parsed SSE message. */
export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** An SSE or NDJSON client over a streamed `fetch`. */
export class StreamClient {
  readonly inbox = new Inbox();
  readonly response: Response;
  /** Raw text received, for framing assertions. */
  raw = "";
  /** `retry:` values seen. */
  retries: number[] = [];
  comments = 0;
  readonly done: Promise<void>;
  #abort: AbortController;

  private constructor(response: Response, abort: AbortController, kind: "sse" | "ndjson") {
    this.response = response;
    this.#abort = abort;
    this.done = this.#read(kind);
  }

  /** Opens a stream; rejects when the status is not 200 (the reply is in the error). */
  static async open(
    url: string,
    kind: "sse" | "ndjson",
    headers: Record<string, string> = {},
  ): Promise<StreamClient> {
    const abort = new AbortController();
    const response = await fetch(url, {
      headers: {
        accept: kind === "sse" ? "text/event-stream" : "application/x-ndjson",
        ...headers,
      },
      signal: abort.signal,
    });
    if (response.status !== 200) {
      const text = await response.text();
      throw Object.assign(new Error(`Stream refused: ${response.status} ${text}`), {
        status: response.status,
        text,
      });
    }
    return new StreamClient(response, abort, kind);
  }

  async #read(kind: "sse" | "ndjson"): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    let current: { id?: string; event?: string; data: string[] } = { data: [] };
    try {
      for await (const chunk of this.response.body!) {
        const text = decoder.decode(chunk, { stream: true });
        this.raw += text;
        buffer += text;
        let newline: number;
        while ((newline = buffer.indexOf("\n")) !== -1) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (kind === "ndjson") {
            if (line.trim() !== "") this.inbox.push(JSON.parse(line));
            continue;
          }
          if (line === "") {
            if (current.data.length > 0) {
              const data = current.data.join("\n");
              this.inbox.push({
                id: current.id,
                event: current.event,
                data,
                json: JSON.parse(data),
              });
            }
            current = { data: [] };
          } else if (line.startsWith(":")) {
            this.comments++;
          } else {
            const colon = line.indexOf(":");
            const field = colon === -1 ? line : line.slice(0, colon);
            const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "data") current.data.push(value);
            else if (field === "id") current.id = value;
            else if (field === "event") current.event = value;
            else if (field === "retry") this.retries.push(Number(value));
          }
        }
      }
    } catch {
      // Aborted by close(): the stream simply ends.
    } finally {
      this.inbox.end();
    }
  }

  get messages(): Msg[] {
    return this.inbox.messages;
  }

  next(match?: (m: Msg) => boolean, timeoutMs?: number): Promise<Msg> {
    return this.inbox.next(match, timeoutMs);
  }

  until(stop: (m: Msg) => boolean, timeoutMs?: number): Promise<Msg[]> {
    return this.inbox.until(stop, timeoutMs);
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.done;
  }
}

/** The samples of a Prometheus text body, by name with labels. */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}
