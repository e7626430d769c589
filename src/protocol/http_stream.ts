/**
 * The HTTP streaming transports (SSE and NDJSON): a session whose sink is a byte stream
 * with backpressure. The stream's queue is measured in bytes, so `backlog()` is what the
 * client has not read yet; the client going away cancels the stream and ends the session.
 *
 * @module
 */
import type { Codec } from "./codec.ts";
import type { Sink } from "./outbox.ts";
import { encodeEnvelope } from "../jobs/envelope.ts";
import { CLOSE, Session, type SessionContext } from "./session.ts";
import { formatSse, formatSseComment } from "./sse.ts";

/** Milliseconds an EventSource waits before reconnecting (sent as `retry:`). */
export const SSE_RETRY_MS = 2000;

const utf8 = new TextEncoder();

/** Error codes sent as a last message when a stream ends for a reason other than "done". */
const END_CODES: Record<number, string> = {
  [CLOSE.goingAway]: "shutting_down",
  [CLOSE.policy]: "policy_violation",
  [CLOSE.jobNotFound]: "job_not_found",
  [CLOSE.slowConsumer]: "slow_consumer",
  [CLOSE.overloaded]: "overloaded",
  [CLOSE.serverError]: "server_error",
};

/** Options of one HTTP stream. */
export interface HttpStreamOptions {
  closeOnFinish: boolean;
  single: boolean;
  cursorIds?: string[];
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
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  // Frames wait here until the response asks for bytes; it then takes everything that
  // gathered as one chunk, so a reader that falls behind costs one write per catch-up
  // instead of one per event.
  const pending: Uint8Array[] = [];
  let pendingBytes = 0;
  /** The response asked for bytes and got none yet. */
  let wanted = false;
  let corked = false;
  const flush = () => {
    if (pendingBytes === 0 || !open) return;
    const chunk = join(pending, pendingBytes);
    // Emptied in place: a new array for every flush of every stream is garbage per event.
    pending.length = 0;
    pendingBytes = 0;
    wanted = false;
    try {
      controller.enqueue(chunk);
    } catch {
      // The runtime ended the response (its client left) and has not called cancel yet.
      open = false;
      session.dispose();
    }
  };
  const sink: Sink = {
    write(frame) {
      if (!open) return;
      const bytes = typeof frame === "string" ? utf8.encode(frame) : frame;
      pending.push(bytes);
      pendingBytes += bytes.byteLength;
      if (wanted && !corked) flush();
    },
    cork() {
      corked = true;
    },
    uncork() {
      corked = false;
      if (wanted) flush();
    },
    backlog: () => (open ? pendingBytes - (controller.desiredSize ?? 0) : 0),
    close(code, reason) {
      if (!open) return;
      const error = END_CODES[code];
      if (error !== undefined && codec.format === "envelope") {
        const json = encodeEnvelope("error", null, null, new Date().toISOString(), {
          error: reason,
          error_type: "system_error",
          code: error,
          close_code: code,
        });
        sink.write(
          codec.transport === "sse" ? formatSse({ event: "error", data: json }) : json + "\n",
        );
      }
      // What gathered goes out before the end.
      flush();
      if (!open) return; // the flush found the response gone
      open = false;
      try {
        controller.close();
      } catch {
        // Already ended by the runtime: a client that left just now, as this closes.
      }
      session.dispose();
    },
  };
  const session = new Session(codec, sink, context, options);
  const body = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
      },
      pull() {
        // Frames waiting in the outbox join this chunk too.
        session.outbox.drain();
        wanted = true;
        if (!corked) flush();
      },
      cancel() {
        open = false;
        session.dispose();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
  );
  if (codec.transport === "sse") {
    // `retry:` first, then a comment so proxies pass the headers and first bytes at once.
    sink.write(`retry: ${SSE_RETRY_MS}\n` + formatSseComment("jobwire"));
  }
  setup(session);
  const headers: Record<string, string> = {
    "content-type": codec.transport === "sse"
      ? "text/event-stream; charset=utf-8"
      : "application/x-ndjson; charset=utf-8",
    "cache-control": "no-cache, no-store",
    "x-accel-buffering": "no",
  };
  return new Response(body, { headers });
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
