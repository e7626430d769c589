import assert from "node:assert/strict";
import {
  createJob,
  http,
  logEvent,
  publish,
  StreamClient,
  waitFor,
  WsClient,
} from "../_helpers/clients.ts";
import { startTestServer, withServer } from "../_helpers/server.ts";

const isEvent = (m: { sequence: number | null }) => m.sequence !== null;

Deno.test("websocket sends connection with snapshot, replays history, then live events", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { kind: "calibration" });
    await publish(server.url, id, { type: "status", data: { status: "running" } }, logEvent("a"));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    try {
      const connection = await ws.next();
      assert.equal(connection.type, "connection");
      assert.equal(connection.job_id, id);
      assert.equal(connection.sequence, null);
      assert.equal(connection.data.status, "connected");
      assert.equal(connection.data.last_sequence, 2);
      assert.equal(connection.data.job.status, "running");
      assert.equal(connection.data.job.kind, "calibration");
      assert.deepEqual(connection.data.replay, {
        since: null,
        count: 2,
        from: 1,
        to: 2,
        truncated: false,
        first_available: 1,
      });
      const replayed = [await ws.next(), await ws.next()];
      assert.deepEqual(replayed.map((m) => m.sequence), [1, 2]);
      assert.deepEqual(replayed.map((m) => m.type), ["status", "log"]);
      await publish(server.url, id, { type: "progress", data: { progress: 45.5, stage: "MCMC" } });
      const live = await ws.next();
      assert.deepEqual(Object.keys(live), ["type", "job_id", "sequence", "timestamp", "data"]);
      assert.equal(live.type, "progress");
      assert.equal(live.sequence, 3);
      assert.equal(live.data.percentage, "45.5%");
      assert.equal(live.data.stage, "MCMC");
      assert.match(live.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("websocket with since replays only later events", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2), logEvent(3), logEvent(4));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=2`);
    try {
      const connection = await ws.next();
      assert.equal(connection.data.replay.count, 2);
      assert.deepEqual([(await ws.next()).sequence, (await ws.next()).sequence], [3, 4]);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("websocket without since replays the default window of the last events", async () => {
  await withServer({ "replay-window": 3 }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, ...Array.from({ length: 10 }, (_, i) => logEvent(i)));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    try {
      const connection = await ws.next();
      assert.equal(connection.data.replay.from, 8);
      assert.equal(connection.data.replay.truncated, false);
      const seqs = [
        (await ws.next()).sequence,
        (await ws.next()).sequence,
        (await ws.next()).sequence,
      ];
      assert.deepEqual(seqs, [8, 9, 10]);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("websocket signals truncation when since is beyond the job or before the retained events", async () => {
  await withServer({ "max-events-per-job": 5 }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, ...Array.from({ length: 8 }, (_, i) => logEvent(i)));
    const behind = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=1`);
    const ahead = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=50`);
    try {
      const a = await behind.next();
      assert.equal(a.data.replay.truncated, true);
      assert.equal(a.data.replay.first_available, 4);
      assert.deepEqual((await behind.until((m) => m.sequence === 8)).map((m) => m.sequence), [
        4,
        5,
        6,
        7,
        8,
      ]);
      const b = await ahead.next();
      assert.equal(b.data.replay.truncated, true);
      assert.equal(b.data.replay.count, 0);
      assert.equal(b.data.job.last_sequence, 8);
      await publish(server.url, id, logEvent("next"));
      assert.equal((await ahead.next(isEvent)).sequence, 9);
    } finally {
      await behind.close();
      await ahead.close();
    }
  });
});

Deno.test("websocket to an unknown job says so in an error message, then closes with 4004", async () => {
  await withServer({}, async (server) => {
    const ws = await WsClient.connect(`${server.url}/ws/jobs/no-such-job`);
    const closed = await ws.closed;
    assert.equal(closed.code, 4004);
    assert.match(closed.reason, /not found/);
    assert.equal(ws.messages.length, 1, JSON.stringify(ws.messages));
    const [error] = ws.messages;
    assert.equal(error.type, "error");
    assert.equal(error.job_id, "no-such-job");
    assert.equal(error.sequence, null);
    assert.equal(error.data.code, "job_not_found");
    assert.equal(error.data.error_type, "not_found", "as for a subscribe to an unknown job");
    assert.equal(error.data.error, "job not found");
    assert.equal(error.data.close_code, 4004);
    assert.equal(error.data.last_sequence, 0);
    // Flat messages for format=snapshot: {type: "error", error}.
    const flat = await WsClient.connect(`${server.url}/ws/jobs/no-such-job?format=snapshot`);
    assert.equal((await flat.closed).code, 4004);
    assert.deepEqual(flat.messages, [
      { type: "error", error: "job not found", code: "job_not_found" },
    ]);
  });
});

Deno.test("websocket answers ping with pong and keeps the connection open after malformed messages", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    try {
      await ws.next((m) => m.type === "connection");
      ws.send({ type: "ping", client_time: 12345 });
      const pong = await ws.next();
      assert.equal(pong.type, "pong");
      assert.equal(pong.sequence, null);
      assert.equal(pong.data.client_time, 12345);
      assert.ok(!Number.isNaN(Date.parse(pong.data.server_time)));
      assert.equal(pong.data.last_sequence, 0);

      ws.send("{not json");
      const bad = await ws.next();
      assert.equal(bad.type, "error");
      assert.equal(bad.data.error_type, "validation_error");
      assert.equal(bad.data.code, "invalid_message");

      ws.send({ type: "dance" });
      const unknown = await ws.next();
      assert.equal(unknown.type, "error");
      assert.match(unknown.data.error, /Unknown message type/);

      ws.send({ type: "subscribe" });
      const missing = await ws.next();
      assert.equal(missing.type, "error");

      ws.send([1, 2, 3]);
      assert.equal((await ws.next()).type, "error");

      // A client acknowledging the server's keep-alives is answered with nothing.
      ws.send({ type: "pong" });
      ws.send({ type: "pong", timestamp: 1 });
      ws.send({ type: "ping" });
      assert.equal((await ws.next()).type, "pong");
      assert.equal(ws.socket.readyState, WebSocket.OPEN);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("a subscribe refused for its since names its job, and a since written as text is taken", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, b, logEvent("b1"), logEvent("b2"));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${a}`);
    try {
      await ws.next((m) => m.type === "connection");
      for (const since of [-1, 1.5, "x", "-1"]) {
        ws.send({ type: "subscribe", job_id: b, since });
        const refused = await ws.next();
        assert.deepEqual([refused.type, refused.job_id, refused.data.code], [
          "error",
          b,
          "invalid_message",
        ], JSON.stringify(since));
      }
      ws.send({ type: "subscribe", job_id: b, since: "1" });
      const subscribed = await ws.next();
      assert.deepEqual([subscribed.type, subscribed.job_id], ["subscribed", b]);
      assert.deepEqual(subscribed.data.replay.from, 2);
      const replayed = await ws.next();
      assert.deepEqual([replayed.job_id, replayed.sequence], [b, 2]);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("every session message reports the high-water mark of what the socket follows", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, a, logEvent("a1"), logEvent("a2"));
    await publish(server.url, b, logEvent("b1"));
    // One job: an error about no job in particular names the job and its mark.
    const one = await WsClient.connect(`${server.url}/ws/jobs/${a}?since=2`);
    try {
      await one.next((m) => m.type === "connection");
      one.send("{not json");
      const bad = await one.next();
      assert.equal(bad.type, "error");
      assert.equal(bad.job_id, a);
      assert.equal(bad.sequence, null);
      assert.equal(bad.data.last_sequence, 2);
      // An error about another job reports every followed job's mark instead.
      one.send({ type: "subscribe", job_id: "no-such-job" });
      const unknown = await one.next((m) => m.type === "error");
      assert.equal(unknown.job_id, "no-such-job");
      assert.deepEqual(unknown.data.last_sequences, { [a]: 2 });
      assert.equal(unknown.data.last_sequence, undefined);
    } finally {
      await one.close();
    }
    // Several jobs: `last_sequences`, on every kind of session message.
    const many = await WsClient.connect(`${server.url}/ws?jobs=${a},${b}`);
    try {
      const connection = await many.next();
      assert.equal(connection.type, "connection");
      assert.equal(connection.job_id, null);
      assert.deepEqual(connection.data.jobs, [a, b]);
      assert.deepEqual(connection.data.last_sequences, { [a]: 2, [b]: 1 }, "as the jobs stand");
      const subscribed = await many.next((m) => m.type === "subscribed" && m.job_id === b);
      assert.equal(subscribed.data.last_sequence, 1);
      many.send({ type: "ping", client_time: 7 });
      const pong = await many.next((m) => m.type === "pong");
      assert.equal(pong.job_id, null);
      assert.deepEqual(pong.data.last_sequences, { [a]: 2, [b]: 1 });
      many.send("{not json");
      const bad = await many.next((m) => m.type === "error");
      assert.equal(bad.job_id, null);
      assert.deepEqual(bad.data.last_sequences, { [a]: 2, [b]: 1 });
    } finally {
      await many.close();
    }
    // A bare socket keeps one shape whatever it follows: `last_sequences`.
    const bare = await WsClient.connect(`${server.url}/ws`);
    try {
      await bare.next((m) => m.type === "connection");
      bare.send({ type: "ping" });
      assert.deepEqual((await bare.next((m) => m.type === "pong")).data.last_sequences, {});
      bare.send({ type: "subscribe", job_id: b, since: 1 });
      await bare.next((m) => m.type === "subscribed");
      bare.send({ type: "ping" });
      const pong = await bare.next((m) => m.type === "pong");
      assert.equal(pong.job_id, null);
      assert.deepEqual(pong.data.last_sequences, { [b]: 1 });
      assert.equal(pong.data.last_sequence, undefined);
    } finally {
      await bare.close();
    }
    // Every visible job: the connection reports the unfinished jobs it listed.
    const all = await WsClient.connect(`${server.url}/ws?all=1`);
    try {
      const connection = await all.next();
      assert.equal(connection.type, "connection");
      assert.deepEqual(connection.data.last_sequences, { [a]: 2, [b]: 1 });
      all.send({ type: "ping" });
      const pong = await all.next((m) => m.type === "pong");
      assert.deepEqual(pong.data.last_sequences, { [a]: 2, [b]: 1 });
    } finally {
      await all.close();
    }
  });
});

Deno.test("websocket subscribe and unsubscribe add and remove jobs on one socket", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, b, logEvent("b1"));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${a}`);
    try {
      await ws.next((m) => m.type === "connection");
      ws.send({ type: "subscribe", job_id: b, since: 0 });
      const subscribed = await ws.next();
      assert.equal(subscribed.type, "subscribed");
      assert.equal(subscribed.job_id, b);
      assert.equal(subscribed.data.job.id, b);
      const replayed = await ws.next();
      assert.equal(replayed.job_id, b);
      assert.equal(replayed.sequence, 1);

      await publish(server.url, a, logEvent("a1"));
      await publish(server.url, b, logEvent("b2"));
      const live = [await ws.next(isEvent), await ws.next(isEvent)];
      assert.deepEqual(live.map((m) => [m.job_id, m.sequence]), [[a, 1], [b, 2]]);

      ws.send({ type: "subscribe", job_id: "missing-job" });
      const error = await ws.next();
      assert.equal(error.type, "error");
      assert.equal(error.data.code, "job_not_found");
      // Not a fault of the message: the job is not there.
      assert.equal(error.data.error_type, "not_found");

      ws.send({ type: "unsubscribe", job_id: b });
      const unsubscribed = await ws.next();
      assert.equal(unsubscribed.type, "unsubscribed");
      assert.equal(unsubscribed.job_id, b);
      await publish(server.url, b, logEvent("b3"));
      await publish(server.url, a, logEvent("a2"));
      const next = await ws.next(isEvent);
      assert.deepEqual([next.job_id, next.sequence], [a, 2]);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("multi-job websocket follows the jobs named in the query", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, a, logEvent("a1"), logEvent("a2"));
    const ws = await WsClient.connect(`${server.url}/ws?jobs=${a},${b},ghost&since=${a}:1`);
    try {
      const hello = await ws.next();
      assert.equal(hello.type, "connection");
      assert.equal(hello.job_id, null);
      const subA = await ws.next();
      assert.deepEqual([subA.type, subA.job_id, subA.data.replay.count], ["subscribed", a, 1]);
      assert.equal((await ws.next()).sequence, 2);
      const subB = await ws.next();
      assert.deepEqual([subB.type, subB.job_id], ["subscribed", b]);
      const ghost = await ws.next();
      assert.deepEqual([ghost.type, ghost.data.code], ["error", "job_not_found"]);
      await publish(server.url, b, logEvent("b1"));
      const live = await ws.next(isEvent);
      assert.deepEqual([live.job_id, live.sequence], [b, 1]);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("all=1 websocket receives new jobs and events of every job, filtered by kind", async () => {
  await withServer({}, async (server) => {
    const old = await createJob(server.url, { kind: "build" });
    const ws = await WsClient.connect(`${server.url}/ws?all=1&kind=build`);
    try {
      const hello = await ws.next();
      assert.equal(hello.type, "connection");
      assert.deepEqual(hello.data.jobs.map((j: { id: string }) => j.id), [old]);
      const fresh = await createJob(server.url, { kind: "build" });
      const created = await ws.next();
      assert.deepEqual([created.type, created.job_id, created.data.job.kind], [
        "created",
        fresh,
        "build",
      ]);
      const other = await createJob(server.url, { kind: "deploy" });
      await publish(server.url, other, logEvent("ignored"));
      await publish(server.url, old, logEvent("seen"));
      const event = await ws.next(isEvent);
      assert.deepEqual([event.job_id, event.sequence], [old, 1]);
      assert.ok(!ws.messages.some((m) => m.job_id === other));
    } finally {
      await ws.close();
    }
  });
});

Deno.test("close_on_finish closes with 1000 after the terminal status, after every event", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}?close_on_finish=1`);
    await ws.next((m) => m.type === "connection");
    await publish(server.url, id, { type: "status", data: { status: "running" } }, logEvent("x"));
    const done = await http(server.url, "POST", `/jobs/${id}/complete`, { result: { ok: true } });
    assert.equal(done.status, 201);
    const closed = await ws.closed;
    assert.equal(closed.code, 1000);
    const events = ws.messages.filter(isEvent);
    assert.deepEqual(events.map((m) => m.type), ["status", "log", "result", "status"]);
    assert.equal(events.at(-1).data.status, "completed");

    const late = await WsClient.connect(`${server.url}/ws/jobs/${id}?close_on_finish=1&since=0`);
    assert.equal((await late.closed).code, 1000);
    assert.equal(late.messages.filter(isEvent).length, 4);
  });
});

Deno.test("close_on_finish on a finished job leaves no subscriber behind", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    await http(server.url, "POST", `/jobs/${id}/complete`);
    for (let i = 0; i < 5; i++) {
      const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}?since=0&close_on_finish=1`);
      assert.equal((await ws.closed).code, 1000);
    }
    const sse = await StreamClient.open(
      `${server.url}/jobs/${id}/events?since=0&close_on_finish=1`,
      "sse",
    );
    await sse.done;
    const stats = await waitFor(
      async () => {
        const reply = (await http(server.url, "GET", "/stats")).json;
        return reply.connections.total === 0 ? reply : undefined;
      },
      5000,
      "the streams to close",
    );
    assert.equal(stats.per_job?.[id], undefined, JSON.stringify(stats.per_job));
  });
});

Deno.test("format=snapshot sends the current snapshot first, then one per request that changes the state", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { metadata: { file: "a.wav" } });
    await publish(server.url, id, { type: "status", data: { status: "running" } });
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}?format=snapshot`);
    try {
      const first = await ws.next();
      assert.deepEqual(Object.keys(first).sort(), [
        "created_at",
        "error",
        "estimated_time_remaining",
        "job_id",
        "message",
        "metadata",
        "progress",
        "sequence",
        "stage",
        "status",
        "timestamp",
        "updated_at",
      ]);
      assert.equal(first.timestamp, first.updated_at);
      assert.equal(first.status, "running");
      assert.deepEqual(first.metadata, { file: "a.wav" });
      await publish(server.url, id, logEvent("not sent"), {
        type: "progress",
        data: { progress: 60, message: "Transcribing" },
      });
      const second = await ws.next();
      assert.equal(second.progress, 60);
      assert.equal(second.message, "Transcribing");
      assert.equal(second.sequence, 3);
      ws.send({ type: "ping" });
      const pong = await ws.next();
      assert.equal(pong.type, "pong");
      // A request of several changes gives one snapshot, of the state after it.
      await publish(
        server.url,
        id,
        { type: "progress", data: { progress: 70 } },
        { type: "progress", data: { progress: 80 } },
      );
      const batch = await ws.next();
      assert.deepEqual([batch.progress, batch.sequence], [80, 5]);
      // `fail` commits the error and the status together: one snapshot, the failed one.
      await http(server.url, "POST", `/jobs/${id}/fail`, { error: "Whisper crashed" });
      const failed = await ws.next();
      assert.equal(failed.status, "failed");
      assert.equal(failed.error, "Whisper crashed");
      assert.equal(failed.sequence, 7);
      assert.ok(!ws.messages.some((m) => m.type === "log"));
    } finally {
      await ws.close();
    }
  });
});

Deno.test("format=snapshot tells of an unsubscribe and a deletion in flat messages with a type", async () => {
  await withServer({}, async (server) => {
    const [a, b] = [await createJob(server.url), await createJob(server.url)];
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${a}?format=snapshot`);
    const all = await WsClient.connect(`${server.url}/ws?all=1&format=snapshot`);
    try {
      assert.equal((await ws.next()).job_id, a);
      ws.send({ type: "subscribe", job_id: b });
      assert.equal((await ws.next()).job_id, b);
      ws.send({ type: "unsubscribe", job_id: b });
      const unsubscribed = await ws.next();
      assert.deepEqual(Object.keys(unsubscribed).sort(), ["job_id", "timestamp", "type"]);
      assert.deepEqual([unsubscribed.type, unsubscribed.job_id], ["unsubscribed", b]);
      // A job followed beside the stream's own goes with an unsubscribed that says why.
      ws.send({ type: "subscribe", job_id: b });
      assert.equal((await ws.next()).job_id, b);
      assert.equal((await http(server.url, "DELETE", `/jobs/${b}`)).status, 200);
      const ended = await ws.next();
      assert.deepEqual([ended.type, ended.job_id, typeof ended.reason], [
        "unsubscribed",
        b,
        "string",
      ]);
      // A stream of every job hears of the deletion.
      const deleted = await waitFor(() => all.messages.find((m) => m.type === "deleted"));
      assert.deepEqual(Object.keys(deleted).sort(), ["job_id", "reason", "timestamp", "type"]);
      assert.equal(deleted.job_id, b);
      assert.equal(deleted.reason, "job deleted");
    } finally {
      await ws.close();
      await all.close();
    }
  });
});

Deno.test("heartbeats carry the job's last sequence; snapshot streams get bare pings", async () => {
  await withServer({ heartbeat: "100ms" }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    const snap = await WsClient.connect(`${server.url}/ws/jobs/${id}?format=snapshot`);
    try {
      const beat = await ws.next((m) => m.type === "heartbeat", 3000);
      assert.equal(beat.sequence, null);
      assert.equal(beat.job_id, id);
      assert.equal(beat.data.last_sequence, 1);
      const ping = await snap.next((m) => m.type === "ping", 3000);
      assert.deepEqual(Object.keys(ping).sort(), ["timestamp", "type"]);
    } finally {
      await ws.close();
      await snap.close();
    }
  });
});

Deno.test("all=1 heartbeats carry the last sequence of every job the stream knows that has not ended", async () => {
  await withServer({ heartbeat: "100ms" }, async (server) => {
    const start = { type: "status", data: { status: "running" } };
    const running = await createJob(server.url);
    await publish(server.url, running, start);
    const ended = await createJob(server.url);
    await publish(server.url, ended, start);
    assert.equal((await http(server.url, "POST", `/jobs/${ended}/complete`, {})).status, 201);
    const ws = await WsClient.connect(`${server.url}/ws?all=1`);
    try {
      await ws.next((m) => m.type === "connection");
      const quiet = await createJob(server.url);
      const fresh = await createJob(server.url);
      await publish(server.url, fresh, logEvent(1), logEvent(2));
      await publish(server.url, running, logEvent(2));
      const finishing = await createJob(server.url);
      await publish(server.url, finishing, start);
      assert.equal((await http(server.url, "POST", `/jobs/${finishing}/complete`, {})).status, 201);
      await ws.next((m) => m.job_id === finishing && m.data?.status === "completed");
      const beat = await ws.next((m) => m.type === "heartbeat", 3000);
      assert.equal(beat.job_id, null);
      assert.deepEqual(beat.data.last_sequences, { [running]: 2, [quiet]: 0, [fresh]: 2 });

      const deleted = await http(server.url, "DELETE", `/jobs/${fresh}`);
      assert.equal(deleted.status < 300, true, `delete: ${deleted.status}`);
      await ws.next((m) => m.type === "deleted" && m.job_id === fresh);
      const later = await ws.next((m) => m.type === "heartbeat", 3000);
      assert.deepEqual(later.data.last_sequences, { [running]: 2, [quiet]: 0 });
    } finally {
      await ws.close();
    }
  });
});

Deno.test("all=1&status= heartbeats leave out a job once it has left that status", async () => {
  await withServer({ heartbeat: "100ms" }, async (server) => {
    const ws = await WsClient.connect(`${server.url}/ws?all=1&status=queued`);
    try {
      await ws.next((m) => m.type === "connection");
      const staying = await createJob(server.url);
      const leaving = await createJob(server.url);
      const queued = { type: "status", data: { status: "queued" } };
      await publish(server.url, staying, queued);
      await publish(server.url, leaving, queued);
      await publish(server.url, leaving, { type: "status", data: { status: "running" } });
      await ws.next((m) => m.job_id === leaving && m.sequence === 1);
      const beat = await ws.next((m) => m.type === "heartbeat", 3000);
      assert.deepEqual(beat.data.last_sequences, { [staying]: 1 });
    } finally {
      await ws.close();
    }
  });
});

Deno.test("websocket message over 64 KiB closes with 1009", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    await ws.next((m) => m.type === "connection");
    ws.send(JSON.stringify({ type: "ping", pad: "x".repeat(70 * 1024) }));
    assert.equal((await ws.closed).code, 1009);
  });
});

Deno.test("deleting a job ends its websocket and SSE streams with an error naming it, then 4004", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    await ws.next((m) => m.type === "connection");
    await publish(server.url, id, logEvent(1), logEvent(2));
    await ws.next((m) => m.sequence === 2);
    assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
    const closed = await ws.closed;
    assert.equal(closed.code, 4004);
    const error = ws.messages.at(-1);
    assert.equal(error.type, "error");
    assert.equal(error.job_id, id);
    assert.equal(error.data.code, "job_gone");
    assert.equal(error.data.last_sequence, 2, "what the stream had sent of it");
    assert.match(error.data.error, /deleted/);
    // SSE names the job in its last message too.
    const other = await createJob(server.url);
    const sse = await StreamClient.open(`${server.url}/jobs/${other}/events`, "sse");
    await sse.inbox.next((m) => m.event === "connection");
    assert.equal((await http(server.url, "DELETE", `/jobs/${other}`)).status, 200);
    const last = await sse.inbox.next((m) => m.event === "error");
    assert.equal(last.json.job_id, other);
    assert.equal(last.json.data.code, "job_gone");
    await sse.done;
  });
});

Deno.test("plain HTTP request to a websocket route answers 426 naming the protocol to upgrade to", async () => {
  await withServer({}, async (server) => {
    const reply = await http(server.url, "GET", "/ws/jobs/x");
    assert.equal(reply.status, 426);
    assert.equal(reply.json.error.code, "upgrade_required");
    assert.equal(reply.headers.get("upgrade"), "websocket");
  });
});

/** Sends one raw HTTP/1.1 request; the reply's status, head and body (by its Content-Length). */
async function rawRequest(
  port: number,
  head: string[],
): Promise<{ status: number; head: string; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode([...head, "", ""].join("\r\n")));
    let text = "";
    const buffer = new Uint8Array(16384);
    for (;;) {
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: *(\d+)/i.exec(text)?.[1] ?? NaN);
      if (end >= 0 && text.length >= end + 4 + length) {
        return {
          status: Number(text.slice(9, 12)),
          head: text.slice(0, end),
          body: text.slice(end + 4),
        };
      }
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`connection closed: ${text}`);
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

Deno.test("an incomplete websocket handshake answers 400 and takes no connection slot", async () => {
  await withServer({ "max-connections": 2 }, async (server) => {
    const id = await createJob(server.url);
    const host = `Host: 127.0.0.1:${server.port}`;
    for (let i = 0; i < 3; i++) {
      for (
        const extra of [
          ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"],
          [
            "Upgrade: websocket",
            "Connection: close",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
          ],
        ]
      ) {
        const reply = await rawRequest(server.port, [
          `GET /ws/jobs/${id} HTTP/1.1`,
          host,
          ...extra,
        ]);
        assert.equal(reply.status, 400, reply.body);
        assert.equal(JSON.parse(reply.body).error.code, "invalid_upgrade");
      }
    }
    // Both slots are still free.
    const first = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    const second = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    try {
      assert.equal((await first.next()).type, "connection");
      assert.equal((await second.next()).type, "connection");
    } finally {
      await first.close();
      await second.close();
    }
  });
});

Deno.test("a websocket handshake of another version answers 426 naming version 13", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    for (const version of ["Sec-WebSocket-Version: 8", null]) {
      const reply = await rawRequest(server.port, [
        `GET /ws/jobs/${id} HTTP/1.1`,
        `Host: 127.0.0.1:${server.port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ...(version === null ? [] : [version]),
      ]);
      assert.equal(reply.status, 426, reply.body);
      assert.match(reply.head, /^sec-websocket-version: 13$/im);
      assert.match(reply.head, /^upgrade: websocket$/im);
      assert.equal(JSON.parse(reply.body).error.code, "upgrade_required");
      assert.match(JSON.parse(reply.body).error.message, /version 13, not (8|none)/);
    }
  });
});

Deno.test("shutdown closes open websockets with 1001", async () => {
  const server = await startTestServer();
  const id = await createJob(server.url);
  const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
  await ws.next((m) => m.type === "connection");
  await server.close();
  assert.equal((await ws.closed).code, 1001);
});

Deno.test("a many-job stream with close_on_finish follows every job it names, even after a first one that has ended", async () => {
  await withServer({}, async (server) => {
    const done = await createJob(server.url);
    const running = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${done}/start`);
    await http(server.url, "POST", `/jobs/${done}/complete`);
    await http(server.url, "POST", `/jobs/${running}/start`);
    const ws = await WsClient.connect(
      `${server.url}/ws?jobs=${done},${running}&close_on_finish=1&since=0`,
    );
    const sse = await StreamClient.open(
      `${server.url}/events?jobs=${done},${running}&close_on_finish=1&since=0`,
      "sse",
    );
    await ws.next((m) => m.type === "subscribed" && m.job_id === running);
    await sse.inbox.next((m) => m.event === "subscribed" && m.json.job_id === running);
    await publish(server.url, running, logEvent("still going"));
    await ws.next((m) => m.data?.line === "still going");
    await sse.inbox.next((m) => m.json.data?.line === "still going");
    await http(server.url, "POST", `/jobs/${running}/complete`);
    const closed = await ws.closed;
    assert.equal(closed.code, 1000);
    assert.equal(closed.reason, "job finished");
    await sse.done;
    assert.ok(sse.raw.includes(`"job_id":"${running}"`));
  });
});

Deno.test("a socket follows at most 100 jobs, however they were added", async () => {
  await withServer({}, async (server) => {
    const ids = await Promise.all(Array.from({ length: 101 }, () => createJob(server.url)));
    const ws = await WsClient.connect(`${server.url}/ws?jobs=${ids.slice(0, 100).join(",")}`);
    try {
      await waitFor(
        () => ws.messages.filter((m) => m.type === "subscribed").length === 100,
        5000,
        "100 subscriptions",
      );
      ws.send({ type: "subscribe", job_id: ids[100] });
      const refused = await ws.next((m) => m.type === "error" && m.job_id === ids[100]);
      assert.equal(refused.data.code, "too_many_jobs");
      // Room made, it is followed.
      ws.send({ type: "unsubscribe", job_id: ids[0] });
      await ws.next((m) => m.type === "unsubscribed");
      ws.send({ type: "subscribe", job_id: ids[100] });
      const joined = await ws.next((m) => m.type === "subscribed" && m.job_id === ids[100]);
      assert.equal(joined.data.job.id, ids[100]);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("on a stream of every job, created and deleted carry the marks of what it follows, and deleted says why", async () => {
  await withServer({}, async (server) => {
    const all = await WsClient.connect(`${server.url}/ws?all=1`);
    try {
      await all.next((m) => m.type === "connection");
      const id = await createJob(server.url);
      const created = await all.next((m) => m.type === "created");
      assert.equal(created.job_id, id);
      assert.deepEqual(created.data.last_sequences, { [id]: 0 });
      await publish(server.url, id, logEvent("a"));
      await all.next((m) => m.sequence === 1);
      assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
      const deleted = await all.next((m) => m.type === "deleted");
      assert.equal(deleted.data.reason, "job deleted");
      assert.deepEqual(deleted.data.last_sequences, {});
    } finally {
      await all.close();
    }
  });
});
