import assert from "node:assert/strict";
import {
  createJob,
  http,
  logEvent,
  publish,
  type Reply,
  StreamClient,
  waitFor,
  WsClient,
} from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { MAX_JSON_DEPTH } from "../../src/jobs/input.ts";

/** `depth` arrays nested in one another, as JSON text. */
function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/** Asserts a 422 `validation_error` whose details name a path starting with `path`. */
function assertInvalid(reply: Reply, path: string): void {
  assert.equal(reply.status, 422, reply.text);
  assert.equal(reply.json.error.code, "validation_error");
  const paths = (reply.json.error.details as { path: string }[]).map((d) => d.path);
  assert.ok(paths.some((p) => p.startsWith(path)), `details name ${path}: ${reply.text}`);
}

Deno.test("JSON nested deeper than the limit is refused with 422 and writes nothing; the limit itself is kept and streamed", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    // The body object, `data` and the arrays: MAX_JSON_DEPTH levels in all.
    const deepest = nested(MAX_JSON_DEPTH - 2);
    const kept = await http(
      server.url,
      "POST",
      `/jobs/${id}/events`,
      `{"type":"result","data":{"results":${deepest}}}`,
    );
    assert.equal(kept.status, 201, kept.text);

    for (const depth of [MAX_JSON_DEPTH - 1, 6000]) {
      const refused = await http(
        server.url,
        "POST",
        `/jobs/${id}/events`,
        `{"type":"result","data":{"results":${nested(depth)}}}`,
      );
      assertInvalid(refused, "data.results.0.0");
      assert.match(refused.json.error.message, /Nested deeper than 100 levels/);
    }
    const created = await http(
      server.url,
      "POST",
      "/jobs",
      `{"id":"deep-meta","metadata":{"a":${nested(6000)}}}`,
    );
    assertInvalid(created, "metadata.a");
    assert.equal((await http(server.url, "GET", "/jobs/deep-meta")).status, 404);

    // The job is still watchable, and carries exactly what was acknowledged.
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events?since=0`, "sse");
    try {
      const result = await sse.next((m) => m.json?.sequence === 1);
      assert.equal(JSON.stringify(result.json.data.results), deepest);
      await publish(server.url, id, logEvent("after"));
      assert.equal((await sse.next((m) => m.json?.sequence === 2)).json.data.line, "after");
    } finally {
      await sse.close();
    }
    const page = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    assert.deepEqual(page.json.events.map((e: { sequence: number }) => e.sequence), [1, 2]);
  });
});

Deno.test("a number too large for a double is refused with 422 instead of stored as null", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const reply = await http(
      server.url,
      "POST",
      `/jobs/${id}/events`,
      '{"type":"result","data":{"results":{"total":1e400}}}',
    );
    assertInvalid(reply, "data.results.total");
    assert.match(reply.json.error.message, /out of range/);
    const page = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    assert.deepEqual(page.json.events, []);
  });
});

Deno.test("NUL characters and unpaired surrogates are refused in the fields a job keeps as text", async () => {
  await withServer({}, async (server) => {
    for (
      const [body, path] of [
        [{ kind: "build\u0000evil" }, "kind"],
        [{ owner: "ali\u0000ce" }, "owner"],
        [{ kind: "build\ud800" }, "kind"],
      ] as const
    ) {
      assertInvalid(await http(server.url, "POST", "/jobs", body), path);
    }
    const id = await createJob(server.url, { kind: "build 🚀" });
    assert.equal((await http(server.url, "GET", `/jobs/${id}`)).json.kind, "build 🚀");
    for (
      const [event, path] of [
        [{ type: "status", data: { status: "running", message: "step\u00001" } }, "data.message"],
        [{ type: "progress", data: { progress: 5, stage: "a\u0000b" } }, "data.stage"],
        [{ type: "progress", data: { progress: 5, message: "\udc00" } }, "data.message"],
      ] as const
    ) {
      assertInvalid(await http(server.url, "POST", `/jobs/${id}/events`, event), path);
    }
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/start`, { message: "go\u0000" }),
      "message",
    );
    const job = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(job.json.last_sequence, 0, "nothing was written");

    await publish(server.url, id, {
      type: "progress",
      data: { progress: 5, stage: "étape 🚀", message: "ok" },
    });
    const after = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(after.json.stage, "étape 🚀");
  });
});

Deno.test("keys named __proto__ are kept in metadata and in the data of every event type", async () => {
  await withServer({}, async (server) => {
    const created = await http(
      server.url,
      "POST",
      "/jobs",
      '{"metadata":{"__proto__":{"x":1},"a":2}}',
    );
    assert.equal(created.status, 201, created.text);
    const id = created.json.job.id;
    const job = await http(server.url, "GET", `/jobs/${id}`);
    assert.deepEqual(Object.keys(job.json.metadata), ["__proto__", "a"]);

    const proto = '"__proto__":{"x":1}';
    const bodies = [
      `{"type":"status","data":{"status":"running",${proto}}}`,
      `{"type":"progress","data":{"progress":5,${proto}}}`,
      `{"type":"log","data":{"line":"a",${proto}}}`,
      `{"type":"result","data":{"results":1,${proto}}}`,
      `{"type":"custom.thing","data":{${proto}}}`,
    ];
    for (const body of bodies) {
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, body);
      assert.equal(reply.status, 201, reply.text);
    }
    const lines = await http(
      server.url,
      "POST",
      `/jobs/${id}/log`,
      `{"lines":[{"line":"b",${proto}}]}`,
    );
    assert.equal(lines.status, 201, lines.text);
    const page = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    const events = page.json.events as { type: string; data: Record<string, unknown> }[];
    assert.equal(events.length, bodies.length + 1);
    for (const event of events) {
      assert.ok(Object.hasOwn(event.data, "__proto__"), `${event.type}: ${JSON.stringify(event)}`);
      assert.deepEqual({ ...event.data["__proto__"] as object }, { x: 1 });
    }
  });
});

Deno.test("job metadata is limited by its size in UTF-8 bytes", async () => {
  await withServer({ "max-event-bytes": 10_000 }, async (server) => {
    // 4,000 emoji: 8,000 UTF-16 units, 16,000 bytes.
    const emoji = await http(server.url, "POST", "/jobs", { metadata: { s: "🚀".repeat(4000) } });
    assert.equal(emoji.status, 413, emoji.text);
    assert.equal(emoji.json.error.code, "payload_too_large");
    assert.match(emoji.json.error.message, /16\d{3} bytes/);
    const ascii = await http(server.url, "POST", "/jobs", { metadata: { s: "a".repeat(9000) } });
    assert.equal(ascii.status, 201, ascii.text);
  });
});

Deno.test("HEAD on a stream answers its headers and holds no session", async () => {
  await withServer({ "max-connections-per-ip": 2, "limits-exempt-ips": "none" }, async (server) => {
    const id = await createJob(server.url);
    for (let i = 0; i < 3; i++) {
      for (
        const [path, accept, type] of [
          [`/jobs/${id}/events`, "text/event-stream", /^text\/event-stream/],
          [`/jobs/${id}/events`, "application/x-ndjson", /^application\/x-ndjson/],
          [`/events?jobs=${id}`, "text/event-stream", /^text\/event-stream/],
        ] as const
      ) {
        const reply = await http(server.url, "HEAD", path, undefined, { accept });
        assert.equal(reply.status, 200, `${path} ${accept}: ${reply.status}`);
        assert.match(reply.headers.get("content-type") ?? "", type);
        assert.equal(reply.text, "");
      }
    }
    const stats = await http(server.url, "GET", "/stats");
    assert.equal(stats.json.connections.total, 0, JSON.stringify(stats.json.connections));
    // Nine HEADs later, the two streams this address may hold are still free.
    const a = await StreamClient.open(`${server.url}/jobs/${id}/events`, "sse");
    const b = await StreamClient.open(`${server.url}/jobs/${id}/events`, "ndjson");
    try {
      await a.next((m) => m.json?.type === "connection");
      await b.next((m) => m.type === "connection");
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("a job's events are served in the type Accept prefers by its q-values", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const cases: [string, RegExp][] = [
      ["text/event-stream; charset=utf-8", /^text\/event-stream/],
      ["text/event-stream;q=0, application/json", /^application\/json/],
      ["application/json;q=0.5, application/x-ndjson", /^application\/x-ndjson/],
      ["application/json, text/event-stream;q=0.9", /^application\/json/],
      ["application/x-ndjson;q=0.8, TEXT/EVENT-STREAM;q=0.8", /^text\/event-stream/],
      ["text/html, */*;q=0.1", /^application\/json/],
    ];
    for (const [accept, type] of cases) {
      const reply = await http(server.url, "HEAD", `/jobs/${id}/events`, undefined, { accept });
      assert.equal(reply.status, 200, `${accept}: ${reply.status}`);
      assert.match(reply.headers.get("content-type") ?? "", type, accept);
    }
    // Refusing every type the URL answers is a 406 that names them; a stream of several jobs
    // has no page to refuse.
    for (
      const accept of [
        "text/event-stream;q=0, application/x-ndjson;q=0, application/json;q=0",
        "application/json;q=0",
        "*/*;q=0",
        "application/*;q=0",
      ]
    ) {
      const reply = await http(server.url, "GET", `/jobs/${id}/events`, undefined, { accept });
      assert.equal(reply.status, 406, `${accept}: ${reply.status}`);
      assert.equal(reply.json.error.code, "not_acceptable");
      assert.match(reply.json.error.message, /text\/event-stream/);
    }
    // JSON refused, a wildcard accepting the rest: a stream; a q that is no number refuses
    // nothing.
    for (
      const [accept, type] of [
        ["application/json;q=0, */*", /^text\/event-stream/],
        ["application/json;q=0, application/*", /^application\/x-ndjson/],
        ["application/json;q=abc", /^application\/json/],
      ] as const
    ) {
      const reply = await http(server.url, "HEAD", `/jobs/${id}/events`, undefined, { accept });
      assert.equal(reply.status, 200, `${accept}: ${reply.status}`);
      assert.match(reply.headers.get("content-type") ?? "", type, accept);
    }
    const all = await fetch(`${server.url}/events?jobs=${id}`, {
      method: "HEAD",
      headers: { accept: "application/json;q=0" },
    });
    assert.equal(all.status, 200);
    assert.match(all.headers.get("content-type") ?? "", /^text\/event-stream/);
  });
});

Deno.test("a page asked for in a format no URL serves names the formats there are", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    for (const format of ["xml", "NDJSON"]) {
      const reply = await http(server.url, "GET", `/jobs/${id}/events?format=${format}`);
      assert.equal(reply.status, 422, reply.text);
      assert.match(reply.text, /json or envelope \(a page of events\), sse or ndjson/, format);
    }
    const snapshot = await http(server.url, "GET", `/jobs/${id}/events?format=snapshot`);
    assert.match(snapshot.text, /format=snapshot needs a stream/);
    // A job deleted answers as deleted to every route, writes too.
    assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
    const start = await http(server.url, "POST", `/jobs/${id}/start`, {});
    assert.equal(start.status, 410, start.text);
    assert.match(start.json.error.message, /deleted or purged/);
  });
});

Deno.test("a WebSocket message nested too deeply gets an error and the connection stays open", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    try {
      await ws.next((m) => m.type === "connection");
      ws.send(`{"type":"ping","client_time":${nested(5000)}}`);
      const bad = await ws.next();
      assert.equal(bad.type, "error");
      assert.equal(bad.data.code, "invalid_message");
      assert.match(bad.data.error, /client_time(\.0)+: Nested deeper/);
      ws.send({ type: "ping", client_time: 7 });
      const pong = await ws.next();
      assert.equal(pong.type, "pong");
      assert.equal(pong.data.client_time, 7);
      await waitFor(() => ws.socket.readyState === WebSocket.OPEN, 1000, "the socket to stay open");
    } finally {
      await ws.close();
    }
  });
});
