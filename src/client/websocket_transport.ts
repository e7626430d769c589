/**
 * The WebSocket transport: one socket per watcher (`/ws/jobs/:id`, or `/ws?jobs=…` /
 * `?all=1` for several jobs). Browsers cannot set headers on a WebSocket, so the token
 * travels as `?token=` (or a short-lived `?ticket=`). It asks for `batch=1`: what the
 * server writes together (a replay, one publish's events) comes as one message, one
 * envelope per line.
 *
 * @module
 */
import { JobwireError } from "./errors.ts";
import { joinUrl, toWebSocketUrl } from "./http.ts";
import {
  type CloseInfo,
  type Connection,
  type ConnectionHandlers,
  type ConnectOptions,
  streamLocation,
} from "./transport.ts";
import type { Envelope, WebSocketLike } from "./types.ts";

/** `WebSocket.OPEN`. */
const OPEN = 1;

/** Opens a WebSocket connection. `options.WebSocket` must be set. */
export function openWebSocket(options: ConnectOptions, handlers: ConnectionHandlers): Connection {
  const { path, query } = streamLocation(options, "websocket");
  const url = toWebSocketUrl(joinUrl(options.http.baseUrl, path, query));
  let done = false;
  let opened = false;
  let socket: WebSocketLike | undefined;
  const finish = (info: CloseInfo) => {
    if (done) return;
    done = true;
    handlers.close(info);
  };
  const failed = (cause?: unknown) =>
    new JobwireError("connect_failed", "The WebSocket connection failed", { cause });

  try {
    const Ctor = options.WebSocket;
    if (Ctor === undefined) throw new TypeError("No WebSocket implementation");
    const ws = new Ctor(url);
    socket = ws;
    /** The server's error code of the message that announced the close, if one did. */
    let ending: string | undefined;
    ws.onopen = () => {
      if (done) return;
      opened = true;
      handlers.open();
    };
    ws.onmessage = (event) => {
      if (done || typeof event.data !== "string") return;
      // The stream asks for batch=1: a message holds one envelope per line.
      for (const line of event.data.split("\n")) {
        // A handler may close the watcher: the lines after it are not for anyone.
        if (done) return;
        let message: Envelope;
        try {
          message = JSON.parse(line);
        } catch {
          continue;
        }
        if (message.type === "error" && typeof message.data?.close_code === "number") {
          // The last message of a socket the server ends: why, for the close that follows.
          ending = typeof message.data.code === "string" ? message.data.code : undefined;
          continue;
        }
        handlers.message(message);
      }
    };
    ws.onclose = (event) => {
      finish({
        opened,
        code: event.code,
        reason: event.reason,
        ...(ending === undefined ? {} : { errorCode: ending }),
        ...(opened ? {} : { error: failed() }),
      });
    };
    ws.onerror = (event) => {
      // Some implementations report a failed handshake only as an error.
      if (!opened) {
        finish({ opened, code: null, reason: "connection failed", error: failed(event) });
      }
    };
  } catch (error) {
    // Report asynchronously, like a socket that fails to connect.
    setTimeout(
      () =>
        finish({ opened: false, code: null, reason: "connection failed", error: failed(error) }),
      0,
    );
  }

  return {
    transport: "websocket",
    send(message) {
      if (done || socket === undefined || socket.readyState !== OPEN) return false;
      try {
        socket.send(JSON.stringify(message));
        return true;
      } catch {
        return false;
      }
    },
    close() {
      if (done) return;
      done = true;
      try {
        socket?.close(1000, "client closed");
      } catch {
        // Already closing.
      }
    },
  };
}
