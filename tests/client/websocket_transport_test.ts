import assert from "node:assert/strict";
import { openWebSocket } from "../../src/client/websocket_transport.ts";
import type { CloseInfo } from "../../src/client/transport.ts";
import type { CloseLike, Envelope, MessageLike, WebSocketLike } from "../../src/client/types.ts";

/** A socket driven by hand: the test opens it and hands it messages. */
class HandSocket implements WebSocketLike {
  static last: HandSocket | undefined;
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: MessageLike) => void) | null = null;
  onclose: ((event: CloseLike) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closes = 0;
  constructor(readonly url: string) {
    HandSocket.last = this;
  }
  send(): void {}
  close(): void {
    this.closes++;
    this.readyState = 3;
  }
}

const envelope = (sequence: number) =>
  JSON.stringify({
    type: "log",
    job_id: "j1",
    sequence,
    timestamp: "2026-01-01T00:00:00.000Z",
    data: { line: String(sequence), level: "info" },
  });

function open(onMessage: (message: Envelope, close: () => void) => void) {
  const closes: CloseInfo[] = [];
  const connection = openWebSocket({
    http: { baseUrl: "http://127.0.0.1:9", token: undefined, fetch },
    target: { kind: "job", jobId: "j1", closeOnFinish: false },
    cursors: new Map([["j1", 0]]),
    token: undefined,
    ticket: undefined,
    WebSocket: HandSocket,
    pollWaitSeconds: 30,
  }, {
    open() {},
    message: (message) => onMessage(message, () => connection.close()),
    close: (info) => closes.push(info),
  });
  const socket = HandSocket.last!;
  socket.readyState = 1;
  socket.onopen?.({});
  return { socket, closes };
}

Deno.test("the WebSocket transport asks for batch=1 and hands on each line of a message in order", () => {
  const got: number[] = [];
  const { socket } = open((m) => got.push(m.sequence!));
  assert.equal(new URL(socket.url).searchParams.get("batch"), "1");
  socket.onmessage?.({ data: [1, 2, 3].map(envelope).join("\n") });
  socket.onmessage?.({ data: envelope(4) });
  // A line that is not JSON is skipped; the others still count.
  socket.onmessage?.({ data: [envelope(5), "{oops", envelope(6)].join("\n") });
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
});

Deno.test("the WebSocket transport hands on no line after its connection is closed by a handler", () => {
  const got: number[] = [];
  const { socket } = open((m, close) => {
    got.push(m.sequence!);
    if (m.sequence === 2) close();
  });
  socket.onmessage?.({ data: [1, 2, 3, 4].map(envelope).join("\n") });
  assert.deepEqual(got, [1, 2]);
  assert.equal(socket.closes, 1);
});

Deno.test("the WebSocket transport takes the error line that announces a close, within a batch", () => {
  const got: number[] = [];
  const { socket, closes } = open((m) => got.push(m.sequence!));
  const ending = JSON.stringify({
    type: "error",
    job_id: "j1",
    sequence: null,
    timestamp: "2026-01-01T00:00:00.000Z",
    data: { code: "slow_consumer", error: "replay continues with since=2", close_code: 4008 },
  });
  socket.onmessage?.({ data: [envelope(1), envelope(2), ending].join("\n") });
  socket.onclose?.({ code: 4008, reason: "replay continues with since=2" } as CloseLike);
  assert.deepEqual(got, [1, 2]);
  assert.equal(closes.length, 1);
  assert.equal(closes[0]!.code, 4008);
  assert.equal(closes[0]!.errorCode, "slow_consumer");
});
