/**
 * The WebSocket transport: connects `Deno.upgradeWebSocket` to a {@link Session} and
 * handles client messages (`ping`, `subscribe`, `unsubscribe`). A malformed message gets
 * an `error` message and the connection stays open.
 *
 * @module
 */
import { z } from "zod";
import { logError } from "../log.ts";
import { jsonProblem, sizeOver } from "../jobs/input.ts";
import type { Codec, Frame } from "./codec.ts";
import type { Sink } from "./outbox.ts";
import { CLOSE, MAX_REASON_BYTES, Session, type SessionContext } from "./session.ts";

/** Options of one WebSocket connection. */
export interface WebSocketOptions {
  /** Largest client message in bytes; larger ones close the connection with 1009. */
  maxMessageBytes: number;
  closeOnFinish: boolean;
  /**
   * `batch=1`: frames written together (a replay, the events of one commit, what waited
   * under backlog) go out as one message, one JSON text per line.
   */
  batch?: boolean;
  /** True for `/ws/jobs/:id` (first message `connection`, closes 4004 on a deleted job). */
  single: boolean;
  /** Runs once the socket is open: subscribe, or close with a code. */
  onOpen(session: Session): void;
  /** Resolves a `subscribe` message: parses `since`, checks the job and access. */
  onSubscribe(session: Session, jobId: string, since: number | null): void;
}

const clientMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ping"), client_time: z.unknown().optional() }).loose(),
  z.object({
    type: z.literal("subscribe"),
    job_id: z.string().min(1).max(128),
    // As in the URL's `since`, a number written as text ("5") is taken too.
    since: z.union([
      z.number().int().min(0),
      z.string().regex(/^\d{1,15}$/, "expected a sequence").transform(Number),
    ]).nullish(),
  }).loose(),
  z.object({ type: z.literal("unsubscribe"), job_id: z.string().min(1).max(128) }).loose(),
  // A client acknowledging the server's keep-alives, as some hand-written channels asked.
  z.object({ type: z.literal("pong") }).loose(),
]);

function fitReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  return bytes.byteLength <= MAX_REASON_BYTES
    ? reason
    : new TextDecoder().decode(bytes.slice(0, MAX_REASON_BYTES - 3)).replace(/\uFFFD$/, "") + "...";
}

/**
 * Upgrades `request` and runs a session over the socket.
 *
 * @returns the 101 response to hand back to the server
 */
export function serveWebSocket(
  request: Request,
  codec: Codec,
  context: SessionContext,
  options: WebSocketOptions,
): Response {
  const { socket, response } = Deno.upgradeWebSocket(request);
  if (options.batch === true) new BatchingWebSocketConnection(socket, codec, context, options);
  else new WebSocketConnection(socket, codec, context, options);
  return response;
}

/**
 * Longest message a batch grows to, in UTF-16 code units, before it is sent and another
 * begins (a single longer event still goes alone, whole). Small enough for clients that
 * cap a message at 1 MiB; big enough that a 10,000-event replay is a few dozen messages.
 */
export const MAX_BATCH_CHARS = 64 * 1024;

/**
 * Longest wait for a socket to open after its upgrade, in milliseconds. The runtime opens it
 * as soon as its 101 is written; one that a client reset just before that is never opened,
 * and gets no event at all, not even a close.
 */
const UPGRADE_TIMEOUT_MS = 10_000;

/** Connections whose socket has not opened yet, with when they were made (oldest first). */
const opening = new Map<WebSocketConnection, number>();
let openingSweep: ReturnType<typeof setInterval> | undefined;

/** Gives up on sockets that have not opened within {@link UPGRADE_TIMEOUT_MS}. */
function sweepOpening(): void {
  const before = performance.now() - UPGRADE_TIMEOUT_MS;
  for (const [connection, at] of opening) {
    // Kept in the order they were made: the rest are younger.
    if (at > before) break;
    opening.delete(connection);
    connection.abandon();
  }
  if (opening.size === 0 && openingSweep !== undefined) {
    clearInterval(openingSweep);
    openingSweep = undefined;
  }
}

/**
 * One connection: the session's sink, and the one listener of its socket's events. An
 * idle connection is what a server holds most of, so it is one object with shared
 * methods rather than a closure per handler (about 1.5 KiB less heap per socket).
 */
class WebSocketConnection implements Sink, EventListenerObject {
  readonly #socket: WebSocket;
  readonly #options: WebSocketOptions;
  readonly #session: Session;

  constructor(socket: WebSocket, codec: Codec, context: SessionContext, options: WebSocketOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#session = new Session(codec, this, context, options);
    socket.addEventListener("open", this);
    socket.addEventListener("message", this);
    socket.addEventListener("close", this);
    // An error is followed by a close; ending twice is harmless.
    socket.addEventListener("error", this);
    opening.set(this, performance.now());
    if (openingSweep === undefined) {
      openingSweep = setInterval(sweepOpening, 1000);
      Deno.unrefTimer(openingSweep);
    }
  }

  /** The socket never opened: the connection is over, and its slot goes back. */
  abandon(): void {
    this.#session.ended();
  }

  write(frame: Frame): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(frame);
  }

  backlog(): number {
    return this.#socket.bufferedAmount;
  }

  close(code: number, reason: string): void {
    const state = this.#socket.readyState;
    if (state === WebSocket.OPEN || state === WebSocket.CONNECTING) {
      try {
        this.#socket.close(code, fitReason(reason));
      } catch {
        // Already closing: nothing left to tell the client.
      }
    }
  }

  handleEvent(event: Event): void {
    const session = this.#session;
    switch (event.type) {
      case "open":
        opening.delete(this);
        if (session.closed) {
          // Given up on as never opened (an event loop held up for longer than the wait):
          // its slot went back, so the client is asked to come again.
          this.close(CLOSE.overloaded, "the connection took too long to open: try again");
          break;
        }
        try {
          this.#options.onOpen(session);
        } catch (error) {
          // An event handler must not throw: that would take the whole server down.
          logError("websocket open failed", error);
          session.close(CLOSE.serverError, "server error");
        }
        break;
      case "message":
        try {
          this.#message((event as MessageEvent).data);
        } catch (error) {
          logError("websocket message failed", error);
          session.close(CLOSE.serverError, "server error");
        }
        break;
      default:
        opening.delete(this);
        // The connection is over: the client answered the close or went away. Until then a
        // socket the server closed still holds what was written to it, and its slot.
        session.ended();
    }
  }

  #message(data: unknown): void {
    const session = this.#session;
    const options = this.#options;
    if (session.closed) return;
    const tooBig = typeof data === "string"
      ? sizeOver(data, options.maxMessageBytes) !== undefined
      : ((data as ArrayBuffer).byteLength ?? 0) > options.maxMessageBytes;
    if (tooBig) {
      session.close(CLOSE.tooBig, `message too big: the limit is ${options.maxMessageBytes} bytes`);
      return;
    }
    if (typeof data !== "string") {
      session.error("invalid_message", "Send JSON text messages, not binary");
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      session.error("invalid_message", "The message is not valid JSON");
      return;
    }
    const problem = jsonProblem(parsed);
    if (problem !== undefined) {
      session.error("invalid_message", `Invalid message: ${problem.path}: ${problem.message}`);
      return;
    }
    const checked = clientMessage.safeParse(parsed);
    if (!checked.success) {
      const { type, job_id: named } = (parsed ?? {}) as { type?: unknown; job_id?: unknown };
      const known = type === "ping" || type === "subscribe" || type === "unsubscribe" ||
        type === "pong";
      // A subscribe or unsubscribe refused for another field names its job, so that a client
      // of several jobs can tell which one it was.
      const jobId = typeof named === "string" && named.length >= 1 && named.length <= 128
        ? named
        : null;
      session.error(
        "invalid_message",
        known
          ? `Invalid ${String(type)} message: ${checked.error.issues[0]?.message ?? "bad fields"}`
          : "Unknown message type; expected ping, pong, subscribe or unsubscribe",
        jobId,
        checked.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      );
      return;
    }
    const msg = checked.data;
    switch (msg.type) {
      case "ping":
        session.pong(msg.client_time);
        break;
      case "subscribe":
        options.onSubscribe(session, msg.job_id, msg.since ?? null);
        break;
      case "unsubscribe":
        if (!session.unsubscribe(msg.job_id)) {
          session.error("not_subscribed", `Not subscribed to job ${msg.job_id}`, msg.job_id);
        }
        break;
      case "pong":
        break;
    }
  }
}

/**
 * A connection opened with `batch=1`. Deno sends each WebSocket message with a system call
 * of its own and cannot gather several into one write: a 10,000-event replay then costs
 * 10,000 calls. While corked (a replay, a delivery round, a drain of waiting frames) this
 * gathers frames and sends them as messages of up to {@link MAX_BATCH_CHARS}, the frames
 * joined by newlines. A frame is compact JSON, which never holds a raw newline, so a client
 * splits a message on "\n" and parses each line.
 */
class BatchingWebSocketConnection extends WebSocketConnection {
  #corked = false;
  #pending: string[] = [];
  #pendingChars = 0;

  override write(frame: Frame): void {
    if (!this.#corked) return super.write(frame);
    const text = frame as string;
    // Joined, the gathered frames and this one take their lengths plus one newline each.
    if (this.#pendingChars > 0 && this.#pendingChars + text.length > MAX_BATCH_CHARS) {
      this.#flush();
    }
    this.#pending.push(text);
    this.#pendingChars += text.length + 1;
  }

  /** Gathered frames count too, so an outbox draining into a corked batch stops in time. */
  override backlog(): number {
    return super.backlog() + this.#pendingChars;
  }

  cork(): void {
    this.#corked = true;
  }

  uncork(): void {
    this.#corked = false;
    this.#flush();
  }

  override close(code: number, reason: string): void {
    // What gathered goes out before the close.
    this.#corked = false;
    this.#flush();
    super.close(code, reason);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const message = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join("\n");
    // Emptied in place: a new array per flush would be garbage per delivery.
    this.#pending.length = 0;
    this.#pendingChars = 0;
    super.write(message);
  }
}
