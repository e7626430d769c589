/**
 * The SSE transport over a streamed `fetch` (not `EventSource`), so it runs in Node and
 * can send `Authorization` and `Last-Event-ID` itself. One job: `GET /jobs/:id/events`;
 * several: `GET /events?jobs=…` (or `?all=1`).
 *
 * @module
 */
import { errorFromResponse, isAbort, JobwireError, networkReason, unreachable } from "./errors.ts";
import { fetchGreeting } from "./greeting.ts";
import { authHeaders, joinUrl } from "./http.ts";
import { SseParser } from "./sse_parser.ts";
import {
  type CloseInfo,
  type Connection,
  type ConnectionHandlers,
  type ConnectOptions,
  streamLocation,
} from "./transport.ts";
import type { Envelope } from "./types.ts";

/** Opens an SSE stream. */
export function openSse(options: ConnectOptions, handlers: ConnectionHandlers): Connection {
  const abort = new AbortController();
  let done = false;
  const finish = (info: CloseInfo) => {
    if (done) return;
    done = true;
    abort.abort();
    handlers.close(info);
  };
  run(options, handlers, abort.signal, () => done).then(finish, (error) => {
    if (!done && !isAbort(error)) {
      finish({ opened: false, code: null, reason: String(error), error: toError(error) });
    }
  });
  return {
    transport: "sse",
    send: () => false,
    close() {
      done = true;
      abort.abort();
    },
  };
}

async function run(
  options: ConnectOptions,
  handlers: ConnectionHandlers,
  signal: AbortSignal,
  closed: () => boolean,
): Promise<CloseInfo> {
  const { target, cursors } = options;
  const { path, query } = streamLocation(options, "sse");
  const extra: Record<string, string> = { accept: "text/event-stream" };
  if (target.kind === "job") extra["last-event-id"] = String(cursors.get(target.jobId) ?? 0);
  let response: Response;
  try {
    response = await options.http.fetch(joinUrl(options.http.baseUrl, path, query), {
      headers: await authHeaders(options.http.token, extra),
      signal,
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    return {
      opened: false,
      code: null,
      reason: "network error",
      error: unreachable(options.http.baseUrl, error),
    };
  }
  if (response.status === 204 && target.kind === "job") {
    // The job ended and we had everything: greet with its final snapshot.
    handlers.open();
    handlers.message(await fetchGreeting(options.http, target.jobId, true, signal));
    return { opened: true, code: 1000, reason: "job finished" };
  }
  if (!response.ok) {
    return {
      opened: false,
      code: null,
      reason: "refused",
      error: await errorFromResponse(response),
    };
  }
  const type = response.headers.get("content-type") ?? "";
  if (!type.includes("text/event-stream") || response.body === null) {
    await response.body?.cancel().catch(() => {});
    return {
      opened: false,
      code: null,
      reason: "not an event stream",
      unsupported: true,
      error: new JobwireError(
        "connect_failed",
        `Expected an event stream, got ${type || "no body"}`,
      ),
    };
  }
  handlers.open();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let end: { code: number; reason: string; errorCode?: string } | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const message of parser.feed(decoder.decode(value, { stream: true }))) {
        if (closed()) return { opened: true, code: null, reason: "closed" };
        let envelope: Envelope;
        try {
          envelope = JSON.parse(message.data);
        } catch {
          continue;
        }
        const closeCode = envelope.data?.close_code;
        if (message.event === "error" && typeof closeCode === "number") {
          // The last message of a stream the server ends: it carries the close code.
          const errorCode = envelope.data.code;
          end = {
            code: closeCode,
            reason: String(envelope.data.error ?? ""),
            ...(typeof errorCode === "string" ? { errorCode } : {}),
          };
          continue;
        }
        handlers.message(envelope);
      }
    }
  } catch (error) {
    if (isAbort(error)) throw error;
    return {
      opened: true,
      code: 1006,
      reason: "connection lost",
      // The server answered: the stream was cut while it was being read.
      error: error instanceof JobwireError ? error : new JobwireError(
        "network_error",
        `The stream was cut: ${networkReason(error)}`,
        { cause: error },
      ),
    };
  }
  return {
    opened: true,
    code: end?.code ?? 1000,
    reason: end?.reason ?? "stream ended",
    ...(end?.errorCode === undefined ? {} : { errorCode: end.errorCode }),
  };
}

function toError(error: unknown): JobwireError {
  return error instanceof JobwireError
    ? error
    : new JobwireError("network_error", `The stream failed: ${networkReason(error)}`, {
      cause: error,
    });
}
