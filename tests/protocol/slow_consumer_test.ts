/**
 * Slow consumers, with a raw TCP WebSocket client that stops reading: the server keeps
 * a bounded buffer, coalesces waiting progress updates to the newest, and past the bound
 * closes with 4008.
 */
import assert from "node:assert/strict";
import {
  createJob,
  http,
  type Msg,
  publish,
  publishLarge,
  StreamClient,
  waitFor,
  WsClient,
} from "../_helpers/clients.ts";
import { withChildServer, withServer } from "../_helpers/server.ts";
import { concat } from "../_helpers/bytes.ts";
import {
  MIN_REPLAY_ROOM,
  REPLAY_BURST_BYTES,
  REPLAY_BYTES_PER_SECOND,
  ReplayAllowance,
} from "../../src/protocol/replay_allowance.ts";

/** A WebSocket client on a bare TCP connection, which reads only when told to. */
class StalledSocket {
  #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(base: string, path: string): Promise<StalledSocket> {
    const url = new URL(base);
    const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const socket = new StalledSocket(conn);
    const head = await socket.#readUntil((b) => indexOf(b, "\r\n\r\n") !== -1);
    const end = indexOf(head, "\r\n\r\n") + 4;
    assert.match(new TextDecoder().decode(head.slice(0, end)), /^HTTP\/1\.1 101/);
    socket.#buffer = head.slice(end);
    return socket;
  }

  async #readUntil(done: (buffer: Uint8Array) => boolean): Promise<Uint8Array> {
    const chunk = new Uint8Array(64 * 1024);
    while (!done(this.#buffer)) {
      const n = await this.#conn.read(chunk);
      if (n === null) break;
      const next = new Uint8Array(this.#buffer.length + n);
      next.set(this.#buffer);
      next.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = next;
    }
    return this.#buffer;
  }

  /**
   * Reads frames until `stop` holds for what was parsed so far (or the connection ends);
   * returns the text frames and the close code, if a close frame came.
   */
  async read(stop: (frames: Frames) => boolean): Promise<Frames> {
    const chunk = new Uint8Array(256 * 1024);
    const parts: Uint8Array[] = [this.#buffer];
    let frames = parseFrames(concat(parts));
    while (!stop(frames)) {
      const n = await this.#conn.read(chunk);
      if (n === null) break;
      parts.push(chunk.slice(0, n));
      frames = parseFrames(concat(parts));
    }
    return frames;
  }

  /** Sends a text message (masked, as a client must). */
  async send(text: string): Promise<void> {
    const payload = new TextEncoder().encode(text);
    assert.ok(payload.length < 126, "short messages only");
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const frame = new Uint8Array(6 + payload.length);
    frame[0] = 0x81;
    frame[1] = 0x80 | payload.length;
    frame.set(mask, 2);
    payload.forEach((byte, i) => (frame[6 + i] = byte ^ mask[i % 4]!));
    await this.#conn.write(frame);
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed by the server.
    }
  }
}

function indexOf(bytes: Uint8Array, text: string): number {
  return new TextDecoder().decode(bytes).indexOf(text);
}

/** Text frames, and the close frame's code and reason if one came. */
interface Frames {
  texts: string[];
  closeCode: number | undefined;
  closeReason?: string;
}

/** Parses unmasked server frames (text and close) from the start of `bytes`. */
function parseFrames(bytes: Uint8Array): Frames {
  const texts: string[] = [];
  const decoder = new TextDecoder();
  let i = 0;
  while (i + 2 <= bytes.length) {
    const opcode = bytes[i]! & 0x0f;
    let length = bytes[i + 1]! & 0x7f;
    let header = 2;
    if (length === 126) {
      if (i + 4 > bytes.length) break;
      length = (bytes[i + 2]! << 8) | bytes[i + 3]!;
      header = 4;
    } else if (length === 127) {
      if (i + 10 > bytes.length) break;
      length = Number(new DataView(bytes.buffer, bytes.byteOffset + i + 2, 8).getBigUint64(0));
      header = 10;
    }
    if (i + header + length > bytes.length) break;
    const payload = bytes.subarray(i + header, i + header + length);
    if (opcode === 0x1) texts.push(decoder.decode(payload));
    if (opcode === 0x8) {
      return {
        texts,
        closeCode: (payload[0]! << 8) | payload[1]!,
        closeReason: decoder.decode(payload.subarray(2)),
      };
    }
    i += header + length;
  }
  return { texts, closeCode: undefined };
}

Deno.test("a client that stops reading is closed with 4008 past its send buffer", async () => {
  await withServer({ "send-buffer": 20 }, async (server) => {
    const id = await createJob(server.url);
    const socket = await StalledSocket.open(server.url, `/ws/jobs/${id}`);
    try {
      await publishLarge(server.url, id, 400);
      const { texts, closeCode } = await socket.read((f) => f.closeCode !== undefined);
      assert.equal(closeCode, 4008);
      const sequences = texts.map((t) => JSON.parse(t)).filter((m) => m.sequence !== null).map((
        m,
      ) => m.sequence);
      // What did arrive is a contiguous prefix: the client resumes from its last sequence.
      assert.deepEqual(sequences, Array.from({ length: sequences.length }, (_, i) => i + 1));
      assert.ok(sequences.length < 400);
    } finally {
      socket.close();
    }
    // The server is unharmed and every event is stored for the resume.
    const page = await http(server.url, "GET", `/jobs/${id}/events?since=390`);
    assert.equal(page.json.last_sequence, 400);
    // And counts the consumer too slow to keep up.
    const { streams_closed } = (await http(server.url, "GET", "/stats")).json;
    assert.equal(streams_closed["4008"], 1, JSON.stringify(streams_closed));
  });
});

Deno.test("progress updates waiting for a slow client are coalesced to the newest", async () => {
  await withServer({ "send-buffer": 100_000 }, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    const socket = await StalledSocket.open(server.url, `/ws/jobs/${id}`);
    try {
      const pad = "y".repeat(30_000);
      const logs: number[] = [];
      let lastProgress = 0;
      for (let i = 0; i < 60; i++) {
        const events: unknown[] = [{ type: "log", data: { line: pad } }];
        for (let p = 0; p < 5; p++) {
          events.push({ type: "progress", data: { progress: (i * 5 + p) / 3, stage: pad } });
        }
        const reply = await http(server.url, "POST", `/jobs/${id}/events`, { events });
        logs.push(reply.json.sequences[0]);
        lastProgress = reply.json.last_sequence;
      }
      const done = await http(server.url, "POST", `/jobs/${id}/complete`);
      const terminal = done.json.last_sequence;
      const isTerminal = (t: string) => t.includes('"status":"completed"');
      const { texts } = await socket.read((f) => f.texts.some(isTerminal));
      const messages = texts.map((t) => JSON.parse(t)).filter((m) => m.sequence !== null);
      const sequences = messages.map((m) => m.sequence);
      // In order, no duplicates; every non-progress event is there; only progress is skipped.
      assert.deepEqual(sequences, [...sequences].sort((a, b) => a - b));
      assert.equal(new Set(sequences).size, sequences.length);
      for (const log of logs) assert.ok(sequences.includes(log), `log ${log} missing`);
      assert.ok(sequences.includes(1), "the start status");
      assert.ok(sequences.includes(lastProgress), "the newest progress");
      assert.equal(sequences.at(-1), terminal);
      const skipped = terminal - sequences.length;
      assert.ok(skipped > 0, "some progress was coalesced under backpressure");
      const missing = new Set(
        Array.from({ length: terminal }, (_, i) => i + 1).filter((s) => !sequences.includes(s)),
      );
      const page = await http(server.url, "GET", `/jobs/${id}/events?since=0&limit=1000`);
      for (const event of page.json.events) {
        if (missing.has(event.sequence)) assert.equal(event.type, "progress");
      }
    } finally {
      socket.close();
    }
  });
});

Deno.test("a client that never reads cannot pile up replays: subscribing past the unread bound closes 4008", async () => {
  // At most 20 events of 4 KiB unread (80 KiB) when a replay starts.
  await withServer({ "send-buffer": 20, "max-event-bytes": 4096 }, async (server) => {
    const id = await createJob(server.url);
    const pad = "z".repeat(3500);
    for (let i = 0; i < 4; i++) {
      const events = Array.from({ length: 250 }, () => ({ type: "log", data: { line: pad } }));
      assert.equal((await http(server.url, "POST", `/jobs/${id}/events`, { events })).status, 201);
    }
    const socket = await StalledSocket.open(server.url, "/ws");
    try {
      // Each replay is about 3.6 MB; the socket's kernel buffers take the first ones. (Nothing
      // is sent after the subscribe that is refused: a frame from the client while the close
      // waits behind megabytes makes the runtime drop the connection without it.)
      let cycles = 0;
      let stats: Msg | undefined;
      for (; cycles < 20; cycles++) {
        if (cycles > 0) await socket.send(JSON.stringify({ type: "unsubscribe", job_id: id }));
        await socket.send(JSON.stringify({ type: "subscribe", job_id: id, since: 0 }));
        await new Promise((r) => setTimeout(r, 50));
        stats = (await http(server.url, "GET", "/stats")).json;
        if (stats!.connections.websocket === 0) break;
      }
      assert.ok(
        cycles < 20,
        `closed after ${cycles} cycles: ${JSON.stringify(stats?.connections)}`,
      );
      // The session ended at once, though the client has not read, let alone answered, the
      // close; the connection is still closing and holds its slot.
      assert.equal(stats!.connections.total, 0);
      assert.equal(stats!.connections.closing, 1);
      const { texts, closeCode } = await socket.read((f) => f.closeCode !== undefined);
      assert.equal(closeCode, 4008);
      assert.ok(texts.length > 1000, "the replays before it arrive whole");
    } finally {
      socket.close();
    }
    await waitFor(
      async () => (await http(server.url, "GET", "/stats")).json.connections.closing === 0,
      5000,
      "the connection to be over once its client left",
    );
  });
});

for (const isolates of [1, 2]) {
  Deno.test(`a connection cut for not reading keeps its slot until its client takes the close or leaves (WebSocket and SSE${isolates === 2 ? ", two isolates" : ""})`, async () => {
    const run = (test: (server: { url: string }) => Promise<void>) =>
      isolates === 1
        ? withServer({ "max-connections": 2 }, test)
        : withChildServer(2, ["--max-connections", "2"], test);
    await run(async (server) => {
      const id = await createJob(server.url);
      // 18 MB, more than one replay's 16 MiB.
      await publishLarge(server.url, id, 300);
      const stats = async () => (await http(server.url, "GET", "/stats")).json.connections;
      const ws = await StalledSocket.open(server.url, `/ws/jobs/${id}?since=0`);
      const sse = await Deno.connect({
        hostname: "127.0.0.1",
        port: Number(new URL(server.url).port),
      });
      try {
        await sse.write(new TextEncoder().encode(
          `GET /jobs/${id}/events?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`,
        ));
        // Neither reads: both replays are cut at their budget and their sessions end, while
        // megabytes and the close wait in each connection.
        let now: Msg;
        await waitFor(
          async () => (now = await stats()).total === 0 && now.closing === 2,
          10_000,
          "both sessions to end, closing",
        );
        assert.match(
          (await http(server.url, "GET", "/metrics")).text,
          /^jobwire_connections_closing 2$/m,
        );
        // They are connections still: the server holds what it wrote to them, so they count.
        const third = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
        assert.equal((await third.closed).code, 1013);
        const refused = await fetch(`${server.url}/jobs/${id}/events`, {
          headers: { accept: "text/event-stream" },
        });
        assert.equal(refused.status, 503);
        await refused.body?.cancel();
        // A client that goes away gives its slot back.
        ws.close();
        await waitFor(async () => (await stats()).closing === 1, 5000, "the WebSocket to be over");
        const fourth = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=300`);
        assert.equal((await fourth.next()).type, "connection");
        await fourth.close();
        sse.close();
        await waitFor(async () => (await stats()).closing === 0, 5000, "the SSE stream to be over");
      } finally {
        ws.close();
        try {
          sse.close();
        } catch {
          // Closed above.
        }
      }
    });
  });
}

Deno.test("a replay larger than one go ends with 4008 after whole events, and resuming with since gets the rest", async () => {
  // A server for each transport: three clients catching up 36 MB each within a second or two
  // would also meet the isolate's allowance of replay bytes (see the burst tests below).
  for (const transport of ["websocket", "websocket batch=1", "sse"] as const) {
    await withServer({}, async (server) => {
      const id = await createJob(server.url);
      // 36 MB, more than two replays' worth.
      await publishLarge(server.url, id, 600);
      const all = Array.from({ length: 600 }, (_, i) => i + 1);
      /** Events replays have handed out so far, from memory or the store. */
      const replayedSoFar = async () => {
        const { events } = await (await fetch(`${server.url}/stats`)).json();
        return events.replayed_from_memory_total + events.replayed_from_store_total;
      };
      const received: number[] = [];
      const ends: string[] = [];
      const replayedBefore = await replayedSoFar();
      while (received.length < 600 && ends.length < 6) {
        const since = received.at(-1) ?? 0;
        let got: number[];
        let end: Msg | undefined;
        if (transport !== "sse") {
          const batch = transport === "websocket" ? "" : "&batch=1";
          const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=${since}${batch}`);
          let closed: { code: number; reason: string } | undefined;
          ws.closed.then((c) => closed = c);
          const events = () => ws.messages.filter((m: Msg) => m.sequence !== null);
          await waitFor(
            () => closed !== undefined || received.length + events().length >= 600,
            10_000,
            "the replay",
          );
          got = events().map((m: Msg) => m.sequence);
          end = closed === undefined ? undefined : { code: closed.code, error: closed.reason };
          await ws.close();
        } else {
          const sse = await StreamClient.open(
            `${server.url}/jobs/${id}/events?since=${since}`,
            "sse",
          );
          const messages: Msg[] = [];
          for (;;) {
            const m = await sse.inbox.next(() => true, 10_000);
            messages.push(m);
            if (m.event === "error") break;
            if (received.length + messages.filter((e) => e.event === "log").length >= 600) break;
          }
          await sse.close();
          got = messages.filter((m) => m.event === "log").map((m) => m.json.sequence);
          const error = messages.find((m) => m.event === "error");
          end = error === undefined
            ? undefined
            : { code: error.json.data.close_code, error: error.json.data.error };
        }
        received.push(...got);
        if (end !== undefined) {
          assert.equal(end.code, 4008, transport);
          assert.equal(end.error, `replay continues with since=${received.at(-1)}`, transport);
          // About 16 MiB a go: at most one event past it.
          assert.ok(got.length * 60_000 < 16 * 1024 * 1024 + 70_000, `${got.length} events`);
        }
        ends.push(end === undefined ? "open" : String(end.code));
      }
      assert.deepEqual(received, all, transport);
      assert.deepEqual(ends, ["4008", "4008", "open"], transport);
      // A replay cut short reads no further than what it sent: not the job's whole history
      // for each of the three connections.
      assert.equal(await replayedSoFar() - replayedBefore, 600, transport);
      // Counted as replays that go on, not as consumers too slow to keep up.
      const { streams_closed } = await (await fetch(`${server.url}/stats`)).json();
      assert.equal(streams_closed.replay, 2, JSON.stringify(streams_closed));
      assert.equal(streams_closed["4008"], undefined, JSON.stringify(streams_closed));
    });
  }
});

for (const batch of [false, true]) {
  Deno.test(`a replay cut at its budget behind a backlog still sends every event up to the one it names${batch ? " (batch=1)" : ""}`, async () => {
    await withServer({ heartbeat: "0" }, async (server) => {
      const a = await createJob(server.url);
      const b = await createJob(server.url);
      // B's history is more than one replay's budget (about 16 MiB).
      await publishLarge(server.url, b, 320);
      const socket = await StalledSocket.open(
        server.url,
        `/ws?jobs=${a}&since=${a}:0${batch ? "&batch=1" : ""}`,
      );
      try {
        // A's events pile up behind the client that does not read, then B is asked for.
        await publishLarge(server.url, a, 100);
        await waitFor(
          async () => (await http(server.url, "GET", "/stats")).json.buffered_events > 0,
          5000,
          "frames waiting for the client",
        );
        await socket.send(JSON.stringify({ type: "subscribe", job_id: b, since: 0 }));
        const { texts, closeCode, closeReason } = await socket.read((f) =>
          f.closeCode !== undefined
        );
        const messages = texts.flatMap((t) => (batch ? t.split("\n") : [t])).map((t) =>
          JSON.parse(t)
        );
        const of = (id: string) =>
          messages.filter((m) => m.job_id === id && m.sequence !== null).map((m) => m.sequence);
        assert.equal(closeCode, 4008);
        const match = /^replay continues with since=(.+):(\d+)$/.exec(closeReason ?? "");
        assert.ok(match, closeReason);
        assert.equal(match[1], b);
        const upTo = Number(match[2]);
        assert.ok(upTo > 100 && upTo < 320, `cut at ${upTo}`);
        assert.deepEqual(of(b), Array.from({ length: upTo }, (_, i) => i + 1));
        assert.deepEqual(of(a), Array.from({ length: 100 }, (_, i) => i + 1));
        // The close reason holds one job's place; the message before it has every job's.
        const last = messages.at(-1);
        assert.equal(last.type, "error");
        assert.equal(last.data.code, "slow_consumer");
        assert.equal(last.data.close_code, 4008);
        assert.equal(last.data.error, `replay continues with since=${a}:100,${b}:${upTo}`);
        assert.ok(messages.some((m) => m.type === "subscribed" && m.job_id === b));
      } finally {
        socket.close();
      }
    });
  });
}

for (
  const { several, long } of [
    { several: false, long: false },
    { several: false, long: true },
    { several: true, long: false },
  ]
) {
  Deno.test(`a ${several ? "WebSocket of several jobs" : "one-job WebSocket that subscribed to another job"} names each job it follows, and no job it left, when a replay is cut${long ? " (a long job id)" : ""}`, async () => {
    await withServer({ heartbeat: "0" }, async (server) => {
      const a = await createJob(server.url);
      await publish(
        server.url,
        a,
        ...Array.from({ length: 3 }, (_, i) => ({ type: "log", data: { line: `a${i}` } })),
      );
      // Followed and left again: no longer the stream's, so not named.
      const left = await createJob(server.url);
      // An id too long for the close reason's 123 bytes next to its place.
      const b = await createJob(server.url, long ? { id: `b-${"x".repeat(98)}` } : {});
      await publishLarge(server.url, b, 320);
      const ws = await WsClient.connect(
        several
          ? `${server.url}/ws?jobs=${a},${left}&since=${a}:0,${left}:0`
          : `${server.url}/ws/jobs/${a}?since=0`,
      );
      try {
        await ws.until((m) => m.job_id === a && m.sequence === 3, 5000);
        if (!several) ws.send({ type: "subscribe", job_id: left, since: 0 });
        await ws.next((m) => m.type === "subscribed" && m.job_id === left, 5000);
        ws.send({ type: "unsubscribe", job_id: left });
        await ws.next((m) => m.type === "unsubscribed" && m.job_id === left, 5000);
        ws.send({ type: "subscribe", job_id: b, since: 0 });
        const closed = await ws.closed;
        assert.equal(closed.code, 4008);
        const of = (id: string) =>
          ws.messages.filter((m) => m.job_id === id && m.sequence !== null).map((m) => m.sequence);
        const upTo = of(b).length;
        assert.ok(upTo > 100 && upTo < 320, `cut at ${upTo}`);
        assert.deepEqual(of(b), Array.from({ length: upTo }, (_, i) => i + 1));
        // The reason is never a bare sequence (which a client would apply to the URL's job),
        // nor a place cut short.
        assert.equal(
          closed.reason,
          long
            ? "replay continues: resume with since from the error message before this close"
            : `replay continues with since=${b}:${upTo}`,
        );
        const last = ws.messages.at(-1)!;
        assert.equal(last.type, "error");
        assert.equal(last.data.code, "slow_consumer");
        assert.equal(last.data.error, `replay continues with since=${a}:3,${b}:${upTo}`);
      } finally {
        await ws.close();
      }
    });
  });
}

Deno.test("an SSE stream of several jobs cut at its replay budget names every job's place, and resuming there gets the rest", async () => {
  await withServer({ heartbeat: "0" }, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    const c = await createJob(server.url);
    await publish(
      server.url,
      c,
      ...Array.from({ length: 3 }, (_, i) => ({ type: "log", data: { line: `c${i}` } })),
    );
    await publish(
      server.url,
      a,
      ...Array.from({ length: 5 }, (_, i) => ({ type: "log", data: { line: `a${i}` } })),
    );
    await publishLarge(server.url, b, 320);
    const seen = new Map<string, number[]>([[a, []], [b, []], [c, []]]);
    let since = `${a}:0,${b}:0,${c}:0`;
    const done = () =>
      seen.get(a)!.length === 5 && seen.get(b)!.length === 320 && seen.get(c)!.length === 3;
    const reasons: string[] = [];
    for (
      let round = 0;
      round < 4 && !done();
      round++
    ) {
      const sse = await StreamClient.open(
        `${server.url}/events?jobs=${a},${b},${c}&since=${since}`,
        "sse",
      );
      let reason: string | undefined;
      try {
        for (;;) {
          const m = await sse.inbox.next(() => true, 10_000);
          if (m.event === "error") {
            reason = m.json.data.error;
            reasons.push(reason!);
            break;
          }
          if (m.event === "log") seen.get(m.json.job_id)!.push(m.json.sequence);
          if (done()) break;
        }
      } finally {
        await sse.close();
      }
      const match = /^replay continues with since=(.+)$/.exec(reason ?? "");
      if (match === null) break;
      since = match[1]!;
      // C comes after B: not joined yet when B's replay was cut, so where it was asked from.
      assert.equal(since, `${a}:5,${b}:${seen.get(b)!.at(-1)},${c}:0`);
    }
    assert.equal(reasons.length, 1, reasons.join(" | "));
    assert.deepEqual(seen.get(a), [1, 2, 3, 4, 5]);
    assert.deepEqual(seen.get(b), Array.from({ length: 320 }, (_, i) => i + 1));
    assert.deepEqual(seen.get(c), [1, 2, 3]);
  });
});

/**
 * Opens `count` SSE streams of `id` from `since=0` over raw connections that never read,
 * `pauseMs` apart (slowly enough that the isolate's allowance of replay bytes per second
 * does not cut them), into `into` for the caller to close.
 */
async function openUnread(
  base: string,
  id: string,
  count: number,
  pauseMs: number,
  into: Deno.TcpConn[],
): Promise<void> {
  const { hostname, port } = new URL(base);
  const request = new TextEncoder().encode(
    `GET /jobs/${id}/events?since=0 HTTP/1.1\r\nHost: ${hostname}\r\n` +
      "Accept: text/event-stream\r\n\r\n",
  );
  for (let i = 0; i < count; i++) {
    await new Promise((r) => setTimeout(r, pauseMs));
    const connection = await Deno.connect({ hostname, port: Number(port) });
    into.push(connection);
    await connection.write(request);
  }
}

/** Reads an SSE replay of `id` to its end: the sequences, and the error that ended it, if any. */
async function sseReplay(
  base: string,
  id: string,
): Promise<{ sequences: number[]; error?: { code: number; reason: string } }> {
  const sse = await StreamClient.open(`${base}/jobs/${id}/events?since=0`, "sse");
  const sequences: number[] = [];
  try {
    for (;;) {
      const m = await sse.inbox.next(() => true, 20_000);
      if (m.event === "log") sequences.push(m.json.sequence);
      if (m.event === "error") {
        // The error names the job and its high-water mark (nobody publishes meanwhile).
        assert.equal(m.json.job_id, id);
        const job = await http(base, "GET", `/jobs/${id}`);
        assert.equal(m.json.data.last_sequence, job.json.last_sequence);
        return { sequences, error: { code: m.json.data.close_code, reason: m.json.data.error } };
      }
      if (sequences.length === 300) return { sequences };
    }
  } finally {
    await sse.close();
  }
}

Deno.test("replays are bounded by what the isolate's HTTP streams hold: with 64 MiB unread, another gets 256 KiB until those clients leave", async () => {
  await withServer({}, async (server) => {
    assert.equal((await http(server.url, "POST", "/jobs", { id: "long" })).status, 201);
    await publishLarge(server.url, "long", 300);
    // One replay alone: as far as one may go (16 MiB, some 280 events).
    const alone = await sseReplay(server.url, "long");
    const most = alone.sequences.length;
    assert.ok(most > 250 && most < 300, `${most} events`);
    assert.deepEqual(alone.error, { code: 4008, reason: `replay continues with since=${most}` });
    // Four raw clients that never read each hold a full replay (16 MiB, cut there: the streams
    // are closing, their bytes still unread): the isolate's 64 MiB.
    const idle: Deno.TcpConn[] = [];
    try {
      await openUnread(server.url, "long", 4, 700, idle);
      await waitFor(
        async () => (await http(server.url, "GET", "/stats")).json.connections.closing === 4,
        10_000,
        "four replays cut, unread",
      );
      // The allowance back to full, a fifth client gets what the streams leave: the least a
      // replay may write (256 KiB: five events of 60,000 characters, the last one past it).
      await new Promise((r) => setTimeout(r, 2100));
      const short = await sseReplay(server.url, "long");
      assert.deepEqual(short.sequences, [1, 2, 3, 4, 5]);
      assert.deepEqual(short.error, { code: 4008, reason: "replay continues with since=5" });
    } finally {
      for (const connection of idle) connection.close();
    }
    // Their clients gone, a replay goes as far as one alone did.
    const full = await waitFor(
      async () => {
        const replay = await sseReplay(server.url, "long");
        return replay.sequences.length === most && replay;
      },
      10_000,
      "a full replay",
    );
    assert.deepEqual(full.error, alone.error);
  });
});

Deno.test("a replay that fits counts as held while its client does not read it", async () => {
  await withServer({}, async (server) => {
    for (const id of ["mid", "long"]) {
      assert.equal((await http(server.url, "POST", "/jobs", { id })).status, 201);
    }
    // 12 MB: one replay, not cut. Clients that do not read hold them.
    await publishLarge(server.url, "mid", 200);
    await publishLarge(server.url, "long", 300);
    const idle: Deno.TcpConn[] = [];
    try {
      await openUnread(server.url, "mid", 6, 450, idle);
      // Five whole replays (60 MB), and a sixth cut at what they leave of 64 MiB.
      await waitFor(
        async () => {
          const { sse, closing } = (await http(server.url, "GET", "/stats")).json.connections;
          return sse === 5 && closing === 1;
        },
        10_000,
        "five streams open, their replays whole, and a sixth cut",
      );
      await new Promise((r) => setTimeout(r, 2100));
      const short = await sseReplay(server.url, "long");
      assert.deepEqual(short.sequences, [1, 2, 3, 4, 5]);
    } finally {
      for (const connection of idle) connection.close();
    }
  });
});

Deno.test("a burst of replays from clients that read and leave is bounded by the isolate's allowance of replay bytes", async () => {
  await withServer({}, async (server) => {
    assert.equal((await http(server.url, "POST", "/jobs", { id: "long" })).status, 201);
    await publishLarge(server.url, "long", 300);
    const started = performance.now();
    const replays = await Promise.all(
      Array.from({ length: 12 }, () => sseReplay(server.url, "long")),
    );
    const seconds = (performance.now() - started) / 1000;
    const counts = replays.map((r) => r.sequences.length);
    // Each got a whole run from the start and where to go on from.
    for (const { sequences, error } of replays) {
      assert.deepEqual(sequences, Array.from({ length: sequences.length }, (_, i) => i + 1));
      assert.deepEqual(error, {
        code: 4008,
        reason: `replay continues with since=${sequences.length}`,
      });
    }
    // In all, no more than the burst and the rate for the time it took, and each replay's
    // least and one event past it: 12 whole replays (192 MiB) would be far over that.
    const frame = 60_200;
    const bound = REPLAY_BURST_BYTES + REPLAY_BYTES_PER_SECOND * seconds +
      12 * (MIN_REPLAY_ROOM + frame);
    const total = counts.reduce((a, b) => a + b, 0) * frame;
    assert.ok(total <= bound, `${counts.join(", ")} events in ${seconds.toFixed(2)} s`);
  });
});

Deno.test("the allowance of replay bytes starts full, refills at its rate up to its burst, and always leaves the least", () => {
  let now = 0;
  const allowance = new ReplayAllowance(() => now);
  assert.equal(allowance.available(), REPLAY_BURST_BYTES);
  allowance.spend(REPLAY_BURST_BYTES + 1_000_000);
  assert.equal(allowance.available(), MIN_REPLAY_ROOM, "overspent: the least");
  now += 500;
  assert.equal(allowance.available(), REPLAY_BYTES_PER_SECOND / 2 - 1_000_000);
  now += 60_000;
  assert.equal(allowance.available(), REPLAY_BURST_BYTES, "never past the burst");
  // What streams hold leaves room beside a stream's own share.
  allowance.hold(50 * 1024 * 1024);
  assert.equal(allowance.roomBeside(0), 14 * 1024 * 1024);
  assert.equal(allowance.roomBeside(10 * 1024 * 1024), 24 * 1024 * 1024);
  allowance.hold(20 * 1024 * 1024);
  assert.equal(allowance.roomBeside(0), MIN_REPLAY_ROOM);
  allowance.hold(-70 * 1024 * 1024);
  assert.equal(allowance.held, 0);
});
