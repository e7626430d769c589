/**
 * The HTTP streaming transports (SSE and NDJSON): a session whose sink is a byte stream
 * with backpressure. The stream's queue is measured in bytes, so `backlog()` is what the
 * client has not read yet; the client going away cancels the stream and ends the session.
 *
 * @module
 */
import type { Codec, Frame } from "./codec.ts";
import type { Sink } from "./outbox.ts";
import { encodeEnvelope } from "../jobs/envelope.ts";
import { CLOSE, Session, type SessionContext } from "./session.ts";
import { formatSse, formatSseComment } from "./sse.ts";
import { logError } from "../log.ts";
import type { ReplayAllowance } from "./replay_allowance.ts";

/** Largest chunk handed to the runtime at once (see `HttpStream.#flush`). */
const SLICE_BYTES = 64 * 1024;

/** Milliseconds an EventSource waits before reconnecting (sent as `retry:`). */
export const SSE_RETRY_MS = 2000;

const utf8 = new TextEncoder();

/**
 * Error codes sent as a last message when a stream ends for a reason other than "done"
 * (a job that went away has its own, naming the job: see `Session.jobGone`).
 */
const END_CODES: Record<number, string> = {
  [CLOSE.goingAway]: "shutting_down",
  [CLOSE.policy]: "policy_violation",
  [CLOSE.slowConsumer]: "slow_consumer",
  [CLOSE.overloaded]: "overloaded",
  [CLOSE.serverError]: "server_error",
};

/** Options of one HTTP stream. */
export interface HttpStreamOptions {
  closeOnFinish: boolean;
  single: boolean;
  cursorIds?: string[];
  /**
   * Settles once the response has been sent whole or its client has gone (`Deno.serve`'s
   * `info.completed`): the connection is over only then, which for a client that stopped
   * reading is long after the stream ended. Without it the connection counts as over when
   * the stream ends.
   */
  completed?: Promise<void> | undefined;
}

/**
 * Opens a streaming response and runs `setup` on its session before the first byte.
 */
export function serveHttpStream(
  codec: Codec,
  context: SessionContext,
  options: HttpStreamOptions,
  setup: (session: Session) => void,
): Response {
  const stream = new HttpStream(codec, context, options);
  const body = new ReadableStream<Uint8Array>(
    stream,
    new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
  );
  if (codec.transport === "sse") {
    // `retry:` first, then a comment so proxies pass the headers and first bytes at once.
    stream.write(`retry: ${SSE_RETRY_MS}\n` + formatSseComment("jobwire"));
  }
  setup(stream.session);
  return new Response(body, { headers: streamHeaders(codec) });
}

/**
 * The answer to `HEAD` on a stream: its headers and no session. The runtime never reads
 * nor cancels the body of a response to `HEAD`, so a session opened for one would hold
 * its connection slot for good.
 */
export function streamHead(codec: Codec): Response {
  return new Response(null, { headers: streamHeaders(codec) });
}

function streamHeaders(codec: Codec): Record<string, string> {
  return {
    "content-type": codec.transport === "sse"
      ? "text/event-stream; charset=utf-8"
      : "application/x-ndjson; charset=utf-8",
    "cache-control": "no-cache, no-store",
    "x-accel-buffering": "no",
  };
}

/**
 * One stream: the session's sink and the source of the response's bytes. A server holds
 * thousands of idle streams, so this is one object with shared methods rather than a
 * closure per callback (about 1 KB each less heap).
 *
 * Frames wait here until the response asks for bytes; it then takes everything that
 * gathered as one chunk, so a reader that falls behind costs one write per catch-up
 * instead of one per event.
 */
class HttpStream implements Sink, UnderlyingDefaultSource<Uint8Array> {
  readonly session: Session;
  readonly #codec: Codec;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #open = true;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** The response asked for bytes and got none yet. */
  #wanted = false;
  #corked = false;
  /** The runtime tells when the response is over (see {@link HttpStreamOptions.completed}). */
  #completed = false;
  /** The isolate's count of what its streams hold, when the context keeps one. */
  readonly #budget: ReplayAllowance | undefined;
  /** Bytes this stream holds: pending, and the chunk the runtime is writing. */
  #held = 0;
  /** Bytes of the chunk last handed to the runtime, held until it asks for more. */
  #inFlight = 0;

  constructor(codec: Codec, context: SessionContext, options: HttpStreamOptions) {
    this.#codec = codec;
    this.#budget = context.replays;
    this.session = new Session(codec, this, context, options);
    const completed = options.completed;
    if (completed !== undefined) {
      this.#completed = true;
      const ended = () => {
        // A throw here would be an unhandled rejection, which ends the process.
        try {
          this.#ended();
        } catch (error) {
          logError("ending a stream failed", error);
        }
      };
      completed.then(ended, ended);
    }
  }

  // The response's side (the stream calls these with this object as `this`).

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
  }

  pull(): void {
    // The runtime asks again once it has taken every slice queued here into its own buffer
    // (at most about 64 KiB of them still unsent): what was handed over is no longer held.
    this.#release(this.#inFlight);
    this.#inFlight = 0;
    // Frames waiting in the outbox join this chunk too.
    this.session.outbox.drain();
    this.#wanted = true;
    if (!this.#corked) this.#flush();
  }

  cancel(): void {
    this.#ended();
  }

  // The session's side.

  write(frame: Frame): void {
    if (!this.#open) return;
    const bytes = typeof frame === "string" ? utf8.encode(frame) : frame;
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.byteLength;
    this.#held += bytes.byteLength;
    this.#budget?.hold(bytes.byteLength);
    if (this.#wanted && !this.#corked) this.#flush();
  }

  cork(): void {
    this.#corked = true;
  }

  uncork(): void {
    this.#corked = false;
    if (this.#wanted) this.#flush();
  }

  /** Bytes a replay starting now may write: what the isolate's other streams leave room for. */
  replayRoom(): number {
    return this.#budget?.roomBeside(this.#held) ?? Infinity;
  }

  backlog(): number {
    return this.#open ? this.#pendingBytes - (this.#controller.desiredSize ?? 0) : 0;
  }

  close(code: number, reason: string): void {
    if (!this.#open) return;
    const codec = this.#codec;
    const error = END_CODES[code];
    if (error !== undefined && codec.format === "envelope") {
      const { jobId, marks } = this.session.endMarks();
      const json = encodeEnvelope("error", jobId, null, new Date().toISOString(), {
        error: reason,
        error_type: "system_error",
        code: error,
        close_code: code,
        ...marks,
      });
      this.write(
        codec.transport === "sse" ? formatSse({ event: "error", data: json }) : json + "\n",
      );
    }
    // What gathered goes out before the end.
    this.#flush();
    if (!this.#open) return; // the flush found the response gone
    this.#open = false;
    try {
      this.#controller.close();
    } catch {
      // Already ended by the runtime: a client that left just now, as this closes.
    }
    this.#closed();
  }

  #flush(): void {
    if (this.#pendingBytes === 0 || !this.#open) return;
    const chunk = join(this.#pending, this.#pendingBytes);
    // Emptied in place: a new array for every flush of every stream is garbage per event.
    this.#pending.length = 0;
    this.#pendingBytes = 0;
    this.#wanted = false;
    this.#inFlight += chunk.byteLength;
    try {
      if (chunk.byteLength <= SLICE_BYTES) {
        this.#controller.enqueue(chunk);
      } else {
        // The runtime takes any chunk whole into a buffer of its own while that holds less
        // than 64 KiB, and asks for more at once: a large chunk in slices (views, no copy)
        // stays in this stream's queue until the client reads, where `backlog()` and the
        // isolate's count of what streams hold can see it.
        for (let at = 0; at < chunk.byteLength; at += SLICE_BYTES) {
          this.#controller.enqueue(chunk.subarray(at, at + SLICE_BYTES));
        }
      }
    } catch {
      // The runtime ended the response (its client left) and has not called cancel yet.
      this.#open = false;
      this.#closed();
    }
  }

  /** The stream has ended; the connection is over too unless the runtime will tell when. */
  #closed(): void {
    if (this.#completed) {
      this.session.dispose();
    } else {
      this.#release(this.#held);
      this.session.ended();
    }
  }

  /** The connection is over: the response was sent whole, or its client left. */
  #ended(): void {
    this.#open = false;
    this.#release(this.#held);
    this.session.ended();
  }

  #release(bytes: number): void {
    const n = Math.min(bytes, this.#held);
    this.#held -= n;
    this.#budget?.hold(-n);
  }
}

/** The chunks as one. */
function join(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const joined = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return joined;
}
