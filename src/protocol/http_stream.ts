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
  /** Bytes the stream may hold unread before frames wait in the session's outbox. */
  highWater: number;
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
  let corked: Uint8Array[] | undefined;
  let corkedBytes = 0;
  const sink: Sink = {
    write(frame) {
      if (!open) return;
      const bytes = typeof frame === "string" ? utf8.encode(frame) : frame;
      if (corked === undefined) controller.enqueue(bytes);
      else {
        corked.push(bytes);
        corkedBytes += bytes.byteLength;
      }
    },
    cork() {
      corked ??= [];
    },
    uncork() {
      const chunks = corked;
      const size = corkedBytes;
      corked = undefined;
      corkedBytes = 0;
      if (chunks === undefined || chunks.length === 0 || !open) return;
      if (chunks.length === 1) return controller.enqueue(chunks[0]!);
      const joined = new Uint8Array(size);
      let offset = 0;
      for (const chunk of chunks) {
        joined.set(chunk, offset);
        offset += chunk.byteLength;
      }
      controller.enqueue(joined);
    },
    backlog: () => (open ? options.highWater - (controller.desiredSize ?? 0) : 0),
    close(code, reason) {
      if (!open) return;
      // What was gathered goes out before the end.
      sink.uncork!();
      const error = END_CODES[code];
      if (error !== undefined && codec.format === "envelope") {
        const json = encodeEnvelope("error", null, null, new Date().toISOString(), {
          error: reason,
          error_type: "system_error",
          code: error,
          close_code: code,
        });
        controller.enqueue(
          utf8.encode(
            codec.transport === "sse" ? formatSse({ event: "error", data: json }) : json + "\n",
          ),
        );
      }
      open = false;
      controller.close();
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
        session.outbox.drain();
      },
      cancel() {
        open = false;
        session.dispose();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: options.highWater }),
  );
  if (codec.transport === "sse") {
    // `retry:` first, then a comment so proxies pass the headers and first bytes at once.
    controller.enqueue(utf8.encode(`retry: ${SSE_RETRY_MS}\n` + formatSseComment("jobwire")));
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
