import assert from "node:assert/strict";
import { JobReporter, type TransportName, watchJob, watchJobs } from "../../src/client/mod.ts";
import { createJob, http, logEvent, publish, waitFor } from "../_helpers/clients.ts";
import { startTestServer, type TestServer, withServer } from "../_helpers/server.ts";
import {
  failingWebSocket,
  filteredWebSocket,
  gatedWebSocket,
  range,
  Recorder,
} from "../_helpers/watch.ts";

const FAST = { initialDelayMs: 20, maxDelayMs: 200 };

for (const transport of ["websocket", "sse", "poll"] as TransportName[]) {
  Deno.test(`watchJob over ${transport} resumes across a server restart with no gap and no duplicate while a producer publishes`, async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-client-" });
    let server: TestServer = await startTestServer({}, { dataDir });
    const port = server.port;
    const reporter = await JobReporter.create(server.url, { ...FAST, retries: 100 });
    const watcher = watchJob(server.url, reporter.jobId, {
      ...FAST,
      transports: [transport],
      pollWaitSeconds: 1,
    });
    const rec = new Recorder(watcher);
    const cursorsAtDrop: number[] = [];
    watcher.on("disconnected", () => cursorsAtDrop.push(watcher.lastSequence()));
    let producing = true;
    let published = 0;
    const producer = (async () => {
      await reporter.started();
      while (producing) {
        await reporter.event("tick", { n: published });
        published++;
      }
    })();
    try {
      await rec.until(10);
      await server.shutdown();
      const before = published;
      server = await startTestServer({ port }, { dataDir });
      await waitFor(() => published >= before + 10, 10_000, "publishing after the restart");
      producing = false;
      await producer;
      await reporter.complete({ ticks: published });
      await rec.next("finished");
      const job = await http(server.url, "GET", `/jobs/${reporter.jobId}`);
      assert.equal(job.json.status, "completed");
      // started + ticks + result + completed: every tick written once, every event seen once.
      assert.equal(job.json.last_sequence, published + 3);
      assert.deepEqual(rec.sequences(), range(job.json.last_sequence));
      if (transport !== "poll") {
        // Streams are cut by the shutdown; long-poll requests simply go to the new server.
        assert.ok(rec.all("disconnected").length >= 1);
        assert.ok(rec.all("reconnecting").length >= 1);
        // The server was asked for what came after the last delivered event, not everything.
        const resumed = rec.all("connection")[1]!.data.replay as { since: number };
        assert.ok(cursorsAtDrop[0]! >= 10);
        assert.equal(resumed.since, cursorsAtDrop[0]);
      }
      assert.equal(watcher.transport, transport);
      assert.equal(watcher.job?.status, "completed");
    } finally {
      producing = false;
      watcher.close();
      await producer.catch(() => {});
      await server.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    }
  });
}

Deno.test("watchJob emits max_reconnect_attempts when the server stays down, and reconnect() retries", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-client-" });
  let server: TestServer = await startTestServer({}, { dataDir });
  const port = server.port;
  const id = await createJob(server.url);
  await publish(server.url, id, logEvent(1));
  const watcher = watchJob(server.url, id, { initialDelayMs: 10, maxDelayMs: 40, maxAttempts: 3 });
  const rec = new Recorder(watcher);
  try {
    await rec.until(1);
    await server.shutdown();
    assert.deepEqual(await rec.next("max_reconnect_attempts"), { attempts: 3 });
    assert.deepEqual(rec.all("reconnecting").map((r) => r.attempt), [1, 2, 3]);
    assert.equal(watcher.state, "closed");
    assert.equal(rec.all("disconnected").length, 1);
    // The server is down, not the WebSocket: no fallback happened.
    assert.deepEqual(rec.all("transport").map((t) => t.to), ["websocket"]);

    server = await startTestServer({ port }, { dataDir });
    await publish(server.url, id, logEvent(2));
    watcher.reconnect();
    assert.deepEqual(await rec.until(2), [1, 2]);
    assert.equal(watcher.state, "connected");
  } finally {
    watcher.close();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a watcher says why the server cannot be reached: refused, or no answer in time", async () => {
  // Refused: a port nobody listens on (taken, then let go).
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedUrl = `http://127.0.0.1:${closed.addr.port}`;
  closed.close();
  const refused = watchJob(closedUrl, "j", { ...FAST, maxAttempts: 1 });
  const refusedRec = new Recorder(refused);
  // Hung: a listener that takes connections and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const hungUrl = `http://127.0.0.1:${listener.addr.port}`;
  const hung = watchJob(hungUrl, "j", { ...FAST, maxAttempts: 1, connectTimeoutMs: 300 });
  const hungRec = new Recorder(hung);
  try {
    await refusedRec.next("max_reconnect_attempts");
    const refusedWhy = refusedRec.all("error").map((e) => e.message);
    assert.ok(
      refusedWhy.some((m) => m.startsWith(`Cannot reach ${closedUrl}: `) && /refused/i.test(m)),
      refusedWhy.join(" | "),
    );
    assert.equal(refusedRec.all("error").at(-1)?.code, "network_error");

    await hungRec.next("max_reconnect_attempts");
    const hungWhy = hungRec.all("error").map((e) => e.message);
    assert.deepEqual(hungWhy.slice(0, 2), [
      "No greeting within 300 ms",
      `No answer from ${hungUrl} within 300 ms`,
    ]);
  } finally {
    refused.close();
    hung.close();
    listener.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});

Deno.test("reconnect attempts restart at 1 after a successful connection", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-client-" });
  let server: TestServer = await startTestServer({}, { dataDir });
  const port = server.port;
  const id = await createJob(server.url);
  const watcher = watchJob(server.url, id, { initialDelayMs: 10, maxDelayMs: 40 });
  const rec = new Recorder(watcher);
  try {
    for (let round = 1; round <= 2; round++) {
      await rec.next("connected", round);
      await server.shutdown();
      await rec.next("reconnecting", rec.all("reconnecting").length + 2);
      server = await startTestServer({ port }, { dataDir });
    }
    await rec.next("connected", 3);
    const attempts = rec.all("reconnecting").map((r) => r.attempt);
    assert.equal(attempts.filter((a) => a === 1).length, 2, `attempts ${attempts}`);
  } finally {
    watcher.close();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a watcher whose WebSocket never connects falls back and still resumes after a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-client-" });
  let server: TestServer = await startTestServer({}, { dataDir });
  const port = server.port;
  const id = await createJob(server.url);
  await publish(server.url, id, logEvent(1));
  const watcher = watchJob(server.url, id, { ...FAST, WebSocket: failingWebSocket() });
  const rec = new Recorder(watcher);
  try {
    await rec.until(1);
    assert.equal(watcher.transport, "sse");
    await server.shutdown();
    server = await startTestServer({ port }, { dataDir });
    await publish(server.url, id, logEvent(2));
    assert.deepEqual(await rec.until(2), [1, 2]);
    assert.equal(watcher.transport, "sse");
  } finally {
    watcher.close();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a connection that goes silent is replaced after idleTimeoutMs", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    // The first socket passes on its first two messages and then nothing (a half-open
    // TCP connection); later sockets work.
    let passed = 0;
    const HalfOpen = filteredWebSocket((_data, _deliver, socket) => socket > 0 || passed++ < 2);
    const watcher = watchJob(server.url, id, {
      WebSocket: HalfOpen,
      idleTimeoutMs: 300,
      pingIntervalMs: 0,
      initialDelayMs: 5,
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(1);
      await publish(server.url, id, logEvent(2));
      assert.deepEqual(await rec.until(2), [1, 2]);
      assert.equal(rec.all("disconnected")[0]?.reason, "idle");
      assert.equal(HalfOpen.sockets.length, 2);
    } finally {
      watcher.close();
    }
  });
});

for (const remade of [50, 4]) {
  Deno.test(`a job made again under its id while the watcher was away is followed from its first event (${remade} events)`, async () => {
    await withServer({}, async (server) => {
      const id = await createJob(server.url, { id: `remade-${remade}` });
      await publish(server.url, id, ...range(10).map(logEvent));
      const gated = gatedWebSocket();
      const watcher = watchJob(server.url, id, { ...FAST, WebSocket: gated, closeOnFinish: false });
      const rec = new Recorder(watcher);
      try {
        await rec.until(10);
        // Away: the job is deleted and made again, with events of its own.
        gated.hold();
        gated.drop();
        await rec.next("reconnecting");
        assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
        assert.equal((await http(server.url, "POST", "/jobs", { id })).status, 201);
        await publish(server.url, id, ...range(remade).map((i) => logEvent(`new ${i}`)));
        gated.release();
        await waitFor(
          () => rec.sequences().length === 10 + remade || undefined,
          10_000,
          "the new job's events",
        );
        await publish(server.url, id, logEvent("live"));
        await rec.until(remade + 1);
        const lines = rec.all("event").map((e) => String(e.data.line));
        assert.deepEqual(lines, [
          ...range(10).map(String),
          ...range(remade).map((i) => `new ${i}`),
          "live",
        ]);
        assert.equal(watcher.job?.last_sequence, remade + 1);
      } finally {
        watcher.close();
      }
    });
  });
}

Deno.test("a watcher of every job follows a job made again under a followed id from its first event", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "remade-all" });
    const gated = gatedWebSocket();
    const watcher = watchJobs(server.url, { all: true, ...FAST, WebSocket: gated });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      await publish(server.url, id, ...range(10).map(logEvent));
      await rec.until(10, id);
      gated.hold();
      gated.drop();
      await rec.next("reconnecting");
      assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
      assert.equal((await http(server.url, "POST", "/jobs", { id })).status, 201);
      await publish(server.url, id, ...range(4).map((i) => logEvent(`new ${i}`)));
      gated.release();
      await waitFor(
        () => rec.sequences(id).length === 14 || undefined,
        10_000,
        "the new job's events",
      );
      await publish(server.url, id, logEvent("live"));
      await waitFor(() => rec.sequences(id).length === 15 || undefined, 10_000, "the live event");
      assert.deepEqual(rec.sequences(id), [...range(10), ...range(5)]);
    } finally {
      watcher.close();
    }
  });
});
