import assert from "node:assert/strict";
import { createJob, http, logEvent, publish, WsClient } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { MAX_BATCH_CHARS } from "../../src/protocol/websocket.ts";

const isEvent = (m: { sequence: number | null }) => m.sequence !== null;

/** Publishes `count` log events to `id` in requests of up to 1,000. */
async function fill(base: string, id: string, count: number, line = (i: number) => String(i)) {
  for (let n = 0; n < count; n += 1000) {
    const events = Array.from(
      { length: Math.min(1000, count - n) },
      (_, k) => logEvent(line(n + k)),
    );
    await publish(base, id, ...events);
  }
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Messages a batched stream of `frames` needs at least, plus `slack`. */
const fewest = (frames: string[], slack = 2) =>
  Math.ceil(frames.reduce((n, f) => n + f.length + 1, 0) / MAX_BATCH_CHARS) + slack;

// No heartbeats: a keep-alive between two messages would be a message of its own.
const QUIET = { heartbeat: "0" };

Deno.test("batch=1: a replay of 3,000 events comes in a few messages, one envelope a line, in order", async () => {
  await withServer(QUIET, async (server) => {
    const id = await createJob(server.url);
    await fill(server.url, id, 3000);
    const batched = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=0&batch=1`);
    const plain = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=0`);
    try {
      for (const ws of [batched, plain]) {
        const got = await ws.until((m) => m.sequence === 3000);
        assert.equal(got[0].type, "connection");
        assert.equal(got[0].data.replay.count, 3000);
        assert.deepEqual(got.filter(isEvent).map((m) => m.sequence), range(1, 3000));
      }
      // Without batch, one envelope per message; with it, messages of up to the batch size.
      assert.equal(plain.frames.length, 3001);
      assert.ok(
        batched.frames.length <= fewest(batched.frames),
        `${batched.frames.length} messages`,
      );
      for (const frame of batched.frames) assert.ok(frame.length <= MAX_BATCH_CHARS);
      assert.ok(batched.frames.every((frame) => !frame.endsWith("\n") && !frame.startsWith("\n")));

      // Live: the ten events of one commit are one message on the batched socket.
      const before = batched.frames.length;
      await publish(server.url, id, ...range(1, 10).map((i) => logEvent(`live ${i}`)));
      const live = await batched.until((m) => m.sequence === 3010);
      assert.deepEqual(live.map((m) => m.sequence), range(3001, 3010));
      assert.equal(batched.frames.length, before + 1);
      assert.equal(batched.frames.at(-1)!.split("\n").length, 10);
      const plainLive = await plain.until((m) => m.sequence === 3010);
      assert.deepEqual(plainLive.map((m) => m.sequence), range(3001, 3010));
      assert.equal(plain.frames.length, 3011);
    } finally {
      await batched.close();
      await plain.close();
    }
  });
});

Deno.test("batch=1: an event longer than a batch goes alone and whole, between full batches", async () => {
  await withServer({ "max-event-bytes": 200_000 }, async (server) => {
    const id = await createJob(server.url);
    const big = "x".repeat(MAX_BATCH_CHARS + 1000);
    await fill(server.url, id, 2000, (i) => (i === 1000 ? big : `line ${i}`));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=0&batch=1`);
    try {
      const got = await ws.until((m) => m.sequence === 2000);
      assert.deepEqual(got.filter(isEvent).map((m) => m.sequence), range(1, 2000));
      assert.equal(got.find((m) => m.sequence === 1001).data.line, big);
      const alone = ws.frames.filter((frame) => frame.length > MAX_BATCH_CHARS);
      assert.equal(alone.length, 1);
      assert.equal(JSON.parse(alone[0]!).sequence, 1001);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("batch=1 with close_on_finish: the gathered replay goes out before the close", async () => {
  await withServer(QUIET, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    await fill(server.url, id, 500);
    const done = await http(server.url, "POST", `/jobs/${id}/complete`, { result: { ok: true } });
    assert.equal(done.status, 201);
    const ws = await WsClient.connect(
      `${server.url}/ws/jobs/${id}?since=0&batch=1&close_on_finish=1`,
    );
    const closed = await Promise.race([
      ws.closed,
      new Promise<never>((_, reject) => {
        const timer = setTimeout(() => reject(new Error("no close within 10 s")), 10_000);
        ws.closed.then(() => clearTimeout(timer));
      }),
    ]);
    assert.equal(closed.code, 1000);
    const events = ws.messages.filter(isEvent);
    assert.deepEqual(events.map((m) => m.sequence), range(1, events.length));
    assert.equal(events.at(-1).type, "status");
    assert.equal(events.at(-1).data.status, "completed");
    assert.ok(ws.frames.length < events.length / 10, `${ws.frames.length} messages`);
  });
});

Deno.test("batch=1 on /ws: a subscribe message's replay is batched too", async () => {
  await withServer(QUIET, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await fill(server.url, a, 1500);
    await fill(server.url, b, 1500);
    const ws = await WsClient.connect(`${server.url}/ws?jobs=${a}&since=${a}:0&batch=1`);
    try {
      await ws.until((m) => m.job_id === a && m.sequence === 1500);
      ws.send({ type: "subscribe", job_id: b, since: 0 });
      const got = await ws.until((m) => m.job_id === b && m.sequence === 1500);
      assert.equal(got[0].type, "subscribed");
      assert.deepEqual(got.filter(isEvent).map((m) => m.sequence), range(1, 1500));
      // Each job's replay is gathered on its own: slack of one message for each.
      assert.ok(ws.frames.length <= fewest(ws.frames, 3), `${ws.frames.length} messages`);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("batch takes 1 or 0 like the other flags; anything else is 422 invalid_query", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const bad = await http(server.url, "GET", `/ws/jobs/${id}?batch=2`);
    assert.equal(bad.status, 422);
    assert.equal(bad.json.error.code, "invalid_query");
    assert.match(JSON.stringify(bad.json.error.details), /batch/);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=0&batch=0`);
    try {
      await ws.until((m) => m.sequence === 2);
      assert.equal(ws.frames.length, 3);
    } finally {
      await ws.close();
    }
  });
});
