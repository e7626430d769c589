import assert from "node:assert/strict";
import type { z } from "zod";
import {
  createJob,
  http,
  logEvent,
  type Msg,
  publish,
  samples,
  StreamClient,
  waitFor,
  WsClient,
} from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { concat } from "../_helpers/bytes.ts";
import {
  eventsPageQuery,
  getJobQuery,
  listJobsQuery,
  streamQuery,
} from "../../src/http/schemas.ts";

Deno.test("healthz answers 200 with status ok, and /health with healthy, without a token", async () => {
  await withServer({ "no-auth": false }, async (server) => {
    const reply = await http(server.url, "GET", "/healthz");
    assert.equal(reply.status, 200);
    assert.match(reply.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(reply.json.status, "ok");
    const health = await http(server.url, "GET", "/health");
    assert.equal(health.status, 200, health.text);
    assert.equal(health.json.status, "healthy");
    assert.equal(health.json.isolates, 1);
  });
});

Deno.test("stats counts open connections by transport, jobs by status and published events", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { kind: "watched" });
    const idle = await createJob(server.url);
    const done = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${done}/start`);
    await http(server.url, "POST", `/jobs/${done}/complete`);
    await publish(server.url, id, { type: "status", data: { status: "running" } }, logEvent("a"));

    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events`, "sse");
    try {
      await ws.next((m) => m.type === "connection");
      await sse.next((m) => m.json?.type === "connection");
      await publish(server.url, id, logEvent("b"));
      await ws.next((m) => m.sequence === 3);
      await sse.next((m) => m.json?.sequence === 3);

      const stats = await waitFor(
        async () => {
          const reply = await http(server.url, "GET", "/stats");
          assert.equal(reply.status, 200, reply.text);
          return reply.json.per_job?.[id]?.last_sequence === 3 ? reply.json : undefined;
        },
        5000,
        "stats to show the delivered event",
      );

      assert.equal(stats.connections.websocket, 1);
      assert.equal(stats.connections.sse, 1);
      assert.equal(stats.connections.ndjson, 0);
      assert.equal(stats.connections.total, 2);
      assert.ok(stats.connections.opened_total >= 2);

      assert.deepEqual(stats.jobs.by_status, {
        pending: 1,
        queued: 0,
        running: 1,
        completed: 1,
        failed: 0,
        cancelled: 0,
      });
      assert.equal(stats.jobs.total, 3);
      assert.equal(stats.jobs.created_total, 3);
      assert.equal(stats.jobs.watched, 1);

      // start + complete on one job, then status + log + log on the other.
      assert.equal(stats.events.published_total, 5);
      assert.equal(typeof stats.events.delivered_total, "number");
      assert.ok(stats.events.delivered_total >= 2);
      // Both streams replayed the job's first two events, from memory: they were published here.
      assert.equal(stats.events.replayed_from_memory_total, 4);
      assert.equal(stats.events.replayed_from_store_total, 0);
      assert.ok(stats.replay_cache_bytes > 0);

      assert.deepEqual(stats.per_job[id], { connections: 2, last_sequence: 3 });
      assert.ok(!(idle in stats.per_job));
      assert.deepEqual(stats.websocket_connections, {
        total_jobs: 1,
        total_connections: 2,
        jobs: { [id]: { connections: 2, last_sequence: 3 } },
      });

      assert.equal(typeof stats.uptime_seconds, "number");
      assert.ok(!Number.isNaN(Date.parse(stats.server_time)));
      assert.equal(typeof stats.buffered_events, "number");
      assert.equal(typeof stats.rates.events_published_per_second, "number");
      assert.equal(typeof stats.rates.messages_delivered_per_second, "number");
    } finally {
      await ws.close();
      await sse.close();
    }
  });
});

Deno.test("stats stops counting connections once they close", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events`, "sse");
    try {
      await ws.next((m) => m.type === "connection");
      await sse.next((m) => m.json?.type === "connection");
      const open = (await http(server.url, "GET", "/stats")).json;
      assert.equal(open.connections.total, 2);
    } finally {
      await ws.close();
      await sse.close();
    }
    const closed = await waitFor(
      async () => {
        const stats = (await http(server.url, "GET", "/stats")).json;
        return stats.connections.total === 0 ? stats : undefined;
      },
      5000,
      "connections to close",
    );
    assert.equal(closed.connections.websocket, 0);
    assert.equal(closed.connections.sse, 0);
    assert.deepEqual(closed.per_job, {});
    assert.equal(closed.websocket_connections.total_connections, 0);
  });
});

Deno.test("stats and metrics count waiting long-polls as connections, and stop when they answer", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const abort = new AbortController();
    // One events long-poll and one wait for the job's end, both held open.
    const page = fetch(`${server.url}/jobs/${id}/events?since=0&wait=30`, { signal: abort.signal });
    const end = fetch(`${server.url}/jobs/${id}?wait=terminal&timeout=30`, {
      signal: abort.signal,
    });
    try {
      const waiting = await waitFor(
        async () => {
          const stats = (await http(server.url, "GET", "/stats")).json;
          return stats.connections.long_poll === 2 ? stats : undefined;
        },
        5000,
        "stats to count both long-polls",
      );
      assert.equal(waiting.connections.total, 2);
      assert.equal(waiting.per_job[id].connections, 2);
      assert.equal(
        waiting.per_isolate.reduce(
          (sum: number, one: { connections: number }) => sum + one.connections,
          0,
        ),
        2,
      );
      const metrics = samples((await http(server.url, "GET", "/metrics")).text);
      assert.equal(metrics.get('jobwire_connections{transport="long_poll"}'), 2);
      // Both count as long-polls that waited, the wait for the job's end too.
      assert.equal(metrics.get("jobwire_long_polls_total"), 2);

      await publish(server.url, id, logEvent("wake the page"));
      const answered = await page;
      assert.equal(answered.status, 200);
      assert.equal((await answered.json()).events.length, 1);
      const one = await waitFor(
        async () => {
          const stats = (await http(server.url, "GET", "/stats")).json;
          return stats.connections.long_poll === 1 ? stats : undefined;
        },
        5000,
        "stats to stop counting the answered long-poll",
      );
      assert.equal(one.connections.total, 1);
    } finally {
      abort.abort();
      await page.catch(() => {});
      await end.then((r) => r.body?.cancel()).catch(() => {});
    }
    const none = await waitFor(
      async () => {
        const stats = (await http(server.url, "GET", "/stats")).json;
        return stats.connections.long_poll === 0 ? stats : undefined;
      },
      5000,
      "stats to stop counting the aborted wait",
    );
    assert.equal(none.connections.total, 0);
  });
});

Deno.test("metrics is Prometheus text with connection and event counters and no job id", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "secret-job-name-42", kind: "private-kind" });
    await publish(server.url, id, logEvent(1), logEvent(2), logEvent(3));
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    try {
      await ws.next((m) => m.type === "connection");
      const reply = await http(server.url, "GET", "/metrics");
      assert.equal(reply.status, 200);
      const type = reply.headers.get("content-type") ?? "";
      assert.match(type, /^text\/plain/);
      assert.match(type, /version=0\.0\.4/);
      const text = reply.text;
      assert.match(text, /^# HELP jobwire_connections /m);
      assert.match(text, /^# TYPE jobwire_connections gauge$/m);
      assert.match(text, /^# HELP jobwire_events_published_total /m);
      assert.match(text, /^# TYPE jobwire_events_published_total counter$/m);
      const values = samples(text);
      assert.equal(values.get('jobwire_connections{transport="websocket"}'), 1);
      assert.equal(values.get('jobwire_connections{transport="sse"}'), 0);
      assert.equal(values.get("jobwire_events_published_total"), 3);
      assert.equal(values.get('jobwire_jobs{status="pending"}'), 1);
      assert.equal(values.get('jobwire_events_replayed_total{source="memory"}'), 3);
      assert.equal(values.get('jobwire_events_replayed_total{source="store"}'), 0);
      assert.ok(values.get("jobwire_replay_cache_bytes")! > 0);
      assert.ok(text.endsWith("\n"));
      for (const line of text.split("\n")) {
        if (line === "") continue;
        assert.match(
          line,
          /^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+)$/,
          `Prometheus line: ${line}`,
        );
      }
      assert.ok(!text.includes(id), "metrics hold no job id");
      assert.ok(!text.includes("private-kind"), "metrics hold no job kind");
    } finally {
      await ws.close();
    }
  });
});

Deno.test("openapi.json is an OpenAPI 3.1.0 document with the main paths", async () => {
  await withServer({}, async (server) => {
    const reply = await http(server.url, "GET", "/openapi.json");
    assert.equal(reply.status, 200);
    assert.match(reply.headers.get("content-type") ?? "", /^application\/json/);
    const doc = JSON.parse(reply.text);
    assert.equal(doc.openapi, "3.1.0");
    assert.equal(typeof doc.info?.title, "string");
    for (const path of ["/jobs", "/jobs/{id}", "/jobs/{id}/events", "/ws/jobs/{id}"]) {
      assert.equal(typeof doc.paths[path], "object", `path ${path}`);
    }
    assert.equal(typeof doc.paths["/jobs"].post, "object");
    assert.equal(typeof doc.paths["/jobs"].get, "object");
    assert.equal(typeof doc.paths["/jobs/{id}/events"].post, "object");
    assert.equal(typeof doc.paths["/jobs/{id}/events"].get, "object");
  });
});

Deno.test("openapi.json describes every route the server registers, with its auth", async () => {
  // The routes, as registered in the sources: app.get("/path", …), app.post(…), app.delete(…).
  const registered: [string, string][] = [];
  for (
    const file of [
      "app.ts",
      ...["auth", "events", "jobs", "ops", "publish", "streams"].map((n) => `routes/${n}.ts`),
    ]
  ) {
    const text = await Deno.readTextFile(new URL(`../../src/http/${file}`, import.meta.url));
    for (const match of text.matchAll(/app\.(get|post|delete)\(\s*"(\/[^"*]*)"/g)) {
      registered.push([match[1]!, match[2]!.replace(/:(\w+)/g, "{$1}")]);
    }
  }
  assert.ok(registered.length >= 25, `found ${registered.length} routes`);
  await withServer({}, async (server) => {
    const doc = (await http(server.url, "GET", "/openapi.json")).json;
    for (const [method, path] of registered) {
      assert.equal(typeof doc.paths[path]?.[method], "object", `${method.toUpperCase()} ${path}`);
    }
    assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), [
      "bearer",
      "cookie",
      "query_token",
      "ticket",
    ]);
    // Open to anyone: sign-in, the session probe, liveness, metrics and this document.
    for (
      const [method, path] of [
        ["post", "/auth/login"],
        ["get", "/healthz"],
        ["get", "/health"],
        ["get", "/metrics"],
      ]
    ) {
      assert.deepEqual(doc.paths[path!][method!].security, [], path);
    }
    assert.equal(doc.paths["/jobs"].post.security, undefined);
    // Bodies are the routes' own schemas: progress needs a number from 0 to 100.
    const progress = doc.paths["/jobs/{id}/progress"].post.requestBody.content["application/json"];
    assert.equal(progress.schema.properties.progress.maximum, 100);
    assert.deepEqual(
      doc.paths["/tickets"].post.requestBody.content["application/json"].schema.required,
      ["job_id"],
    );
  });
});

Deno.test("openapi.json names every query parameter the routes take, and the answers routes share", async () => {
  // The queries as the routes validate them: each of their fields is a documented parameter.
  const routes: [string, string, z.ZodObject][] = [
    ["get", "/jobs", listJobsQuery],
    ["get", "/jobs/{id}", getJobQuery],
    ["get", "/jobs/{id}/events", eventsPageQuery],
    ["get", "/events", streamQuery],
    ["get", "/ws", streamQuery],
  ];
  await withServer({}, async (server) => {
    const doc = (await http(server.url, "GET", "/openapi.json")).json;
    for (const [method, path, schema] of routes) {
      const names = doc.paths[path][method].parameters.map((p: { name: string }) => p.name);
      for (const field of Object.keys(schema.shape)) {
        // batch=1 is WebSocket framing: an HTTP stream takes it and has nothing to batch.
        if (field === "batch" && path === "/events") continue;
        assert.ok(names.includes(field), `${method.toUpperCase()} ${path} lacks ${field}`);
      }
    }
    // The stream routes of one job take what the page and the streams take, but the filters.
    const events = doc.paths["/jobs/{id}/events"].get.parameters.map((p: { name: string }) =>
      p.name
    );
    for (const field of ["since", "format", "close_on_finish", "limit", "wait", "Last-Event-ID"]) {
      assert.ok(events.includes(field), `GET /jobs/{id}/events lacks ${field}`);
    }
    assert.deepEqual(
      doc.paths["/jobs/{id}/events"].get.parameters.find((p: { name: string }) =>
        p.name === "format"
      )
        .schema.enum,
      ["envelope", "snapshot", "ndjson", "sse", "json"],
    );
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Msg>>)) {
      for (const [method, operation] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        assert.equal(typeof operation.operationId, "string", where);
        assert.ok(!ids.has(operation.operationId), `${where}: ${operation.operationId} twice`);
        ids.add(operation.operationId);
        assert.ok(operation.responses.default !== undefined, where);
        // Refused over HTTP with 401: all but routes whose credential is optional (they
        // answer 200 either way), routes that take none (only a sign-in's wrong password is
        // a 401 there), and WebSockets (refused by their close, 1008).
        const optional = operation.security?.some((need: object) => Object.keys(need).length === 0);
        const open = operation.security?.length === 0;
        assert.equal(
          operation.responses["401"] !== undefined,
          path === "/auth/login" || (!optional && !open && !path.startsWith("/ws")),
          `${where}: 401`,
        );
        if (operation.requestBody !== undefined) {
          assert.ok(operation.responses["415"] !== undefined, `${where} lacks 415`);
        }
      }
    }
    // Publishing answers who heard it, and may be refused for its rate or the database.
    const publish = doc.paths["/jobs/{id}/events"].post.responses;
    assert.ok(publish["201"].headers["X-Watchers"]);
    assert.ok(publish["429"] && publish["503"]);
    assert.ok(doc.paths["/jobs"].post.responses["201"].headers.Location);
    assert.deepEqual(doc.paths["/auth/cookie"].post.security, [{ bearer: [] }]);
    assert.ok(doc.paths["/auth/session"].get.security.some((need: object) => "cookie" in need));
    assert.ok(doc.paths["/ws/jobs/{id}"].get.security.some((need: object) => "ticket" in need));
  });
});

Deno.test("an unknown route answers 404 with the JSON error shape", async () => {
  await withServer({}, async (server) => {
    for (
      const [method, path] of [
        ["GET", "/no/such/route"],
        ["POST", "/nothing"],
        ["GET", "/jobs/a/b/c/d"],
      ]
    ) {
      const reply = await http(server.url, method!, path!);
      assert.equal(reply.status, 404, `${method} ${path}: ${reply.text}`);
      assert.match(reply.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(reply.json.error.code, "not_found");
      assert.equal(typeof reply.json.error.message, "string");
      assert.ok(reply.json.error.message.length > 0);
    }
  });
});

Deno.test("a path with dot segments answers 404 for the path as sent, not a 405 naming another", async () => {
  await withServer({}, async (server) => {
    assert.equal((await http(server.url, "POST", "/jobs", { id: "j1" })).status, 201);
    const { hostname, port } = new URL(server.url);
    for (const path of ["/jobs/../jobs/j1", "/x/../healthz", "/jobs/./j1", "/%2e%2e/jobs/j1"]) {
      // Raw: a client library would remove the dot segments before sending.
      const connection = await Deno.connect({ hostname, port: Number(port) });
      try {
        await connection.write(new TextEncoder().encode(
          `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`,
        ));
        const answer = new TextDecoder().decode(await readAll(connection));
        assert.match(answer, /^HTTP\/1\.1 404 /, `${path}: ${answer}`);
        assert.doesNotMatch(answer, /method_not_allowed/i, path);
        assert.match(answer, /"code":"not_found"/, path);
      } finally {
        connection.close();
      }
    }
  });
});

Deno.test("a known route asked with another method answers 405 with Allow", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    for (
      const [method, path, allow] of [
        ["PUT", `/jobs/${id}`, ["DELETE", "GET", "HEAD"]],
        ["PATCH", "/jobs", ["GET", "HEAD", "POST"]],
        ["POST", "/healthz", ["GET", "HEAD"]],
        ["DELETE", `/jobs/${id}/events`, ["GET", "HEAD", "POST"]],
      ] as const
    ) {
      const reply = await http(server.url, method, path);
      assert.equal(reply.status, 405, `${method} ${path}: ${reply.text}`);
      assert.equal(reply.json.error.code, "method_not_allowed");
      assert.match(reply.json.error.message, new RegExp(`${method} is not allowed`));
      const listed = (reply.headers.get("allow") ?? "").split(", ").sort();
      for (const m of allow) assert.ok(listed.includes(m), `${path} allows ${m}: ${listed}`);
    }
    // The job is untouched by the refused methods.
    assert.equal((await http(server.url, "GET", `/jobs/${id}`)).status, 200);
  });
});

Deno.test("the status page and its files are served with a content security policy and no framing", async () => {
  await withServer({}, async (server) => {
    for (const path of ["/", "/app/main.js", "/style.css"]) {
      const reply = await http(server.url, "GET", path);
      assert.equal(reply.status, 200, path);
      const policy = reply.headers.get("content-security-policy") ?? "";
      assert.match(policy, /default-src 'self'/, path);
      assert.match(policy, /frame-ancestors 'none'/, path);
      assert.equal(reply.headers.get("x-frame-options"), "DENY", path);
      assert.equal(reply.headers.get("x-content-type-options"), "nosniff", path);
    }
  });
});

/** Everything a connection sends until it closes. */
async function readAll(connection: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(16_384);
  for (let n = await connection.read(buffer); n !== null; n = await connection.read(buffer)) {
    chunks.push(buffer.slice(0, n));
  }
  return concat(chunks);
}

Deno.test("HEAD answers what GET would, with the length its body would have", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    for (
      const path of [
        "/jobs",
        `/jobs/${id}`,
        `/jobs/${id}/events`,
        "/",
        "/client.js",
        "/openapi.json",
        "/healthz",
        "/jobs/missing",
      ]
    ) {
      const get = await fetch(`${server.url}${path}`);
      const bytes = (await get.arrayBuffer()).byteLength;
      assert.ok(bytes > 0, path);
      const head = await fetch(`${server.url}${path}`, { method: "HEAD" });
      assert.equal(head.status, get.status, path);
      assert.equal(head.headers.get("content-type"), get.headers.get("content-type"), path);
      assert.equal(head.headers.get("content-length"), String(bytes), path);
      assert.equal((await head.arrayBuffer()).byteLength, 0, path);
    }
    // A stream's length is unknown: HEAD does not say it is empty.
    const stream = await fetch(`${server.url}/jobs/${id}/events`, {
      method: "HEAD",
      headers: { accept: "text/event-stream" },
    });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get("content-length"), null);
    await stream.body?.cancel();
  });
});

Deno.test("the status page's paths asked with another method answer 405, and unknown writes 404, before any token is asked for", async () => {
  await withServer({ "no-auth": false }, async (server) => {
    for (
      const [method, path] of [["POST", "/"], ["PUT", "/client.js"], ["DELETE", "/index.html"]]
    ) {
      const reply = await http(server.url, method!, path!);
      assert.equal(reply.status, 405, `${method} ${path}: ${reply.text}`);
      assert.equal(reply.json.error.code, "method_not_allowed");
      assert.equal(reply.headers.get("allow"), "GET, HEAD", path);
    }
    const wrong = await http(server.url, "POST", "/healthz");
    assert.equal(wrong.status, 405, wrong.text);
    const unknown = await http(server.url, "POST", "/nope");
    assert.equal(unknown.status, 404, unknown.text);
    // A route that takes the method still wants a token first.
    assert.equal((await http(server.url, "POST", "/jobs", {})).status, 401);
  });
});

Deno.test("every error is kept by no cache, and an allowed page's errors vary by Origin once", async () => {
  const page = "http://dash.example";
  await withServer({ "no-auth": false, "allowed-origins": page }, async (server) => {
    for (
      const [method, path, status] of [
        ["POST", "/jobs", 401],
        ["GET", "/jobs", 401],
        ["GET", "/nope", 404],
        ["PUT", "/jobs", 405],
      ] as const
    ) {
      const reply = await http(server.url, method, path, undefined, { origin: page });
      assert.equal(reply.status, status, `${method} ${path}: ${reply.text}`);
      assert.equal(reply.headers.get("cache-control"), "no-store", `${method} ${path}`);
      assert.equal(reply.headers.get("access-control-allow-origin"), page, `${method} ${path}`);
      const vary = (reply.headers.get("vary") ?? "").split(",").map((v) => v.trim());
      assert.equal(vary.filter((v) => v.toLowerCase() === "origin").length, 1, vary.join());
    }
    const foreign = await http(server.url, "GET", "/jobs", undefined, {
      origin: "http://evil.example",
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers.get("cache-control"), "no-store");
  });
});

Deno.test("the status page's files carry an ETag, and a browser revalidating an unchanged one gets 304", async () => {
  await withServer({}, async (server) => {
    const tags = new Set<string>();
    for (const path of ["/", "/client.js", "/style.css"]) {
      const first = await fetch(`${server.url}${path}`);
      await first.body?.cancel();
      const etag = first.headers.get("etag");
      assert.match(etag ?? "", /^"[0-9a-f]+-[0-9a-f]{16}"$/, path);
      tags.add(etag!);
      for (const header of [etag!, `W/${etag}`, `"other", ${etag}`, "*"]) {
        const again = await fetch(`${server.url}${path}`, { headers: { "if-none-match": header } });
        assert.equal(again.status, 304, `${path} with ${header}`);
        assert.equal((await again.arrayBuffer()).byteLength, 0);
        assert.equal(again.headers.get("etag"), etag);
      }
      const changed = await fetch(`${server.url}${path}`, {
        headers: { "if-none-match": '"0-0000000000000000"' },
      });
      assert.equal(changed.status, 200, path);
      assert.ok((await changed.arrayBuffer()).byteLength > 0);
    }
    assert.equal(tags.size, 3, "each file has its own tag");
  });
});
