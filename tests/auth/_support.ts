/**
 * Shared pieces of the security tests: a WebSocket client that can send request headers
 * (Origin, Authorization, Cookie), stream openers that report the refusal status, and
 * authenticated shortcuts for creating jobs and publishing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { http, type Msg, type Reply, StreamClient, waitFor } from "../_helpers/clients.ts";
import { bearer } from "../_helpers/tokens.ts";

/** A WebSocket connection with request headers; records messages and the close. */
export class Ws {
  readonly socket: WebSocket;
  readonly messages: Msg[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  opened = false;
  #cursor = 0;
  #ended = false;

  private constructor(url: string, headers: Record<string, string>) {
    // Deno's WebSocket takes handshake headers (a non-standard option the DOM types lack).
    const options = { headers } as unknown as string[];
    this.socket = new WebSocket(url, options);
    this.socket.onmessage = (e) => this.messages.push(JSON.parse(String(e.data)));
    this.closed = new Promise((resolve) => {
      this.socket.onclose = (e) => {
        this.#ended = true;
        resolve({ code: e.code, reason: e.reason });
      };
    });
  }

  /** Connects; resolves once open, or once closed when the server refuses before opening. */
  static async connect(url: string, headers: Record<string, string> = {}): Promise<Ws> {
    const ws = new Ws(url.replace(/^http/, "ws"), headers);
    await new Promise<void>((resolve) => {
      ws.socket.onopen = () => {
        ws.opened = true;
        resolve();
      };
      ws.closed.then(() => resolve());
    });
    return ws;
  }

  /** The next message (after those already taken) that matches. */
  async next(match: (m: Msg) => boolean = () => true, timeoutMs = 5000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#cursor < this.messages.length) {
        const message = this.messages[this.#cursor++];
        if (match(message)) return message;
      }
      if (this.#ended) {
        throw new Error(
          `Socket closed before the expected message; got ${JSON.stringify(this.messages)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out waiting for a message; got ${JSON.stringify(this.messages).slice(-500)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Any message so far or to come (without consuming) that matches. */
  async find(match: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found !== undefined) return found;
      if (this.#ended) {
        throw new Error(
          `Socket closed before the expected message; got ${JSON.stringify(this.messages)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out waiting for a message; got ${JSON.stringify(this.messages).slice(-500)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  send(message: unknown): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Closes (when still open) and waits for the close. */
  async close(): Promise<void> {
    if (
      this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING
    ) {
      this.socket.close();
    }
    await this.closed;
  }
}

/** Waits for the close of `ws`, failing after `timeoutMs`. */
export async function closeOf(ws: Ws, timeoutMs = 5000): Promise<{ code: number; reason: string }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      ws.closed,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("The socket was not closed in time")), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects and expects the server to close the socket at once with `code` (and `reason`). */
export async function expectWsRefused(
  url: string,
  code: number,
  reason?: string | RegExp,
  headers: Record<string, string> = {},
): Promise<void> {
  const ws = await Ws.connect(url, headers);
  try {
    const closed = await closeOf(ws);
    assert.equal(closed.code, code, `close of ${redact(url)}: ${JSON.stringify(closed)}`);
    if (typeof reason === "string") assert.equal(closed.reason, reason);
    else if (reason !== undefined) assert.match(closed.reason, reason);
    // Nothing of a job reaches a refused socket: at most, for an unknown job, an error
    // naming the id the client asked for.
    const told = code === 4004
      ? ws.messages.filter((m) =>
        !(m.type === "error" && ["job_not_found", "job_gone"].includes(m.data?.code))
      )
      : ws.messages;
    assert.deepEqual(told, [], `messages on a refused socket: ${JSON.stringify(ws.messages)}`);
    for (const message of ws.messages) {
      assert.deepEqual(Object.keys(message.data).sort(), [
        "close_code",
        "code",
        "error",
        "error_type",
        "last_sequence",
      ]);
      // The job's mark as far as this socket goes: nothing sent.
      assert.equal(message.data.last_sequence, 0);
    }
  } finally {
    await ws.close();
  }
}

/** Connects and expects the socket to stay open and send a first message; returns it open. */
export async function expectWsOpen(url: string, headers: Record<string, string> = {}): Promise<Ws> {
  const ws = await Ws.connect(url, headers);
  try {
    assert.ok(ws.opened, `socket to ${redact(url)} did not open`);
    const first = await ws.next();
    assert.equal(first.type, "connection", JSON.stringify(first));
    return ws;
  } catch (error) {
    const closed = ws.socket.readyState === WebSocket.CLOSED ? await ws.closed : undefined;
    await ws.close();
    throw new Error(`${(error as Error).message}; close: ${JSON.stringify(closed)}`);
  }
}

/** The outcome of opening an SSE/NDJSON stream: the stream, or the refusal. */
export interface StreamOutcome {
  status: number;
  /** The open stream when the status is 200. */
  stream?: StreamClient;
  text: string;
  json: Msg;
}

/** Opens an SSE or NDJSON stream; a refusal is returned rather than thrown. */
export async function openStream(
  url: string,
  kind: "sse" | "ndjson" = "sse",
  headers: Record<string, string> = {},
): Promise<StreamOutcome> {
  try {
    return {
      status: 200,
      stream: await StreamClient.open(url, kind, headers),
      text: "",
      json: undefined,
    };
  } catch (error) {
    const e = error as { status?: number; text?: string };
    if (e.status === undefined) throw error;
    let json: Msg = undefined;
    try {
      json = JSON.parse(e.text ?? "");
    } catch {
      json = undefined;
    }
    return { status: e.status, text: e.text ?? "", json };
  }
}

/** Expects a stream to be refused with `status` (and error `code`) before streaming. */
export async function expectStreamRefused(
  url: string,
  status: number,
  code?: string,
  kind: "sse" | "ndjson" = "sse",
  headers: Record<string, string> = {},
): Promise<StreamOutcome> {
  const outcome = await openStream(url, kind, headers);
  if (outcome.stream !== undefined) await outcome.stream.close();
  assert.equal(outcome.status, status, `${kind} ${redact(url)} answered ${outcome.status}`);
  if (code !== undefined) assert.equal(outcome.json?.error?.code, code, outcome.text);
  return outcome;
}

/** Removes `token=`/`ticket=` values from a URL for assertion messages. */
export function redact(url: string): string {
  return url.replace(/([?&](?:token|ticket)=)[^&]*/g, "$1…");
}

/** Sends a request with a bearer token (or none when `token` is undefined). */
export function call(
  base: string,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return http(
    base,
    method,
    path,
    body,
    token === undefined ? headers : {
      ...bearer(token),
      ...headers,
    },
  );
}

/** Creates a job as `token`'s principal; returns its id. */
export async function createJobAs(
  base: string,
  token: string,
  body: Record<string, unknown> = {},
): Promise<string> {
  const reply = await call(base, token, "POST", "/jobs", body);
  assert.equal(reply.status, 201, `create job: ${reply.status} ${reply.text}`);
  return reply.json.job.id;
}

/** Publishes one log event as `token`'s principal; returns the reply. */
export function publishAs(base: string, token: string, jobId: string, line = "x"): Promise<Reply> {
  return call(base, token, "POST", `/jobs/${encodeURIComponent(jobId)}/events`, {
    type: "log",
    data: { line },
  });
}

/** The job's `last_sequence`, read with `token`. */
export async function lastSequence(base: string, token: string, jobId: string): Promise<number> {
  const reply = await call(base, token, "GET", `/jobs/${encodeURIComponent(jobId)}`);
  assert.equal(reply.status, 200, reply.text);
  return reply.json.last_sequence;
}

/** Asserts a 401 with a `WWW-Authenticate: Bearer` challenge and the error `code`. */
export function assertUnauthorized(reply: Reply, code?: string): void {
  assert.equal(reply.status, 401, `expected 401, got ${reply.status} ${reply.text}`);
  const challenge = reply.headers.get("www-authenticate");
  assert.ok(challenge !== null, "a 401 must carry WWW-Authenticate");
  assert.match(challenge, /^Bearer\b/i);
  assert.equal(typeof reply.json?.error?.message, "string");
  if (code !== undefined) assert.equal(reply.json.error.code, code, reply.text);
}

/** Asserts a 403 `forbidden` (or another code) in the JSON error shape. */
export function assertForbidden(reply: Reply, code = "forbidden"): void {
  assert.equal(reply.status, 403, `expected 403, got ${reply.status} ${reply.text}`);
  assert.equal(reply.json?.error?.code, code, reply.text);
}

export { waitFor };
