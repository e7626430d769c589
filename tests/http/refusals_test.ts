/**
 * What an operator sees of refused requests and ended streams: `/metrics` and `/stats`
 * count them (error answers by code, streams by close code) over every isolate, and the
 * debug log tells each one, with the client's address and never its token.
 */
import assert from "node:assert/strict";
import { http, samples, WsClient } from "../_helpers/clients.ts";
import { spawnServer } from "../_helpers/server.ts";
import { bearer, SECRET, tokenFor } from "../_helpers/tokens.ts";

Deno.test("refusals and stream ends are counted by code on every isolate and logged at debug", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-refusals-" });
  const server = await spawnServer([
    "--port",
    "0",
    "--data-dir",
    dataDir,
    "--jwt-secret",
    SECRET,
    "--workers",
    "2",
    "--log-level",
    "debug",
  ]);
  try {
    const writer = await tokenFor("alice", "read write");
    const admin = await tokenFor("root", "admin");
    const created = await http(server.url, "POST", "/jobs", {}, bearer(writer));
    assert.equal(created.status, 201, created.text);
    const id = created.json.job.id as string;

    // Refused handshakes, each accepted only to be closed 1008 with the reason.
    for (const query of ["", "?token=not-a-jwt"]) {
      const refused = await WsClient.connect(`${server.url}/ws/jobs/${id}${query}`);
      const closed = await refused.closed;
      assert.equal(closed.code, 1008);
    }
    // Error answers over HTTP.
    assert.equal(
      (await http(server.url, "GET", "/jobs/nope", undefined, bearer(writer))).status,
      404,
    );
    const malformed = await fetch(`${server.url}/jobs/${id}/events`, {
      method: "POST",
      headers: { ...bearer(writer), "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(malformed.status, 400);
    await malformed.body?.cancel();

    // A stream its client leaves, and one the server ends when the job finishes.
    const left = await WsClient.connect(`${server.url}/ws/jobs/${id}?token=${writer}`);
    await left.next((m) => m.type === "connection");
    await left.close();
    const finished = await WsClient.connect(
      `${server.url}/ws/jobs/${id}?close_on_finish=1&token=${writer}`,
    );
    await finished.next((m) => m.type === "connection");
    assert.equal(
      (await http(server.url, "POST", `/jobs/${id}/start`, {}, bearer(writer))).status,
      201,
    );
    assert.equal(
      (await http(server.url, "POST", `/jobs/${id}/complete`, {}, bearer(writer))).status,
      201,
    );
    assert.equal((await finished.closed).code, 1000);

    // Counted whichever isolate took each request: the figures are the server's.
    let metrics = new Map<string, number>();
    const deadline = Date.now() + 10_000;
    do {
      metrics = samples((await http(server.url, "GET", "/metrics")).text);
      if (
        metrics.get('jobwire_streams_closed_total{code="client"}') === 1 &&
        metrics.get('jobwire_streams_closed_total{code="1000"}') === 1 &&
        metrics.get('jobwire_errors_total{code="malformed_json"}') === 1 &&
        metrics.get('jobwire_errors_total{code="invalid_token"}') === 1
      ) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    assert.equal(metrics.get('jobwire_errors_total{code="unauthorized"}'), 1);
    assert.equal(metrics.get('jobwire_errors_total{code="invalid_token"}'), 1);
    assert.equal(metrics.get('jobwire_errors_total{code="job_not_found"}'), 1);
    assert.equal(metrics.get('jobwire_errors_total{code="malformed_json"}'), 1);
    assert.equal(metrics.get('jobwire_streams_closed_total{code="client"}'), 1);
    assert.equal(metrics.get('jobwire_streams_closed_total{code="1000"}'), 1);

    const stats = await http(server.url, "GET", "/stats", undefined, bearer(admin));
    assert.equal(stats.status, 200, stats.text);
    assert.equal(stats.json.errors.job_not_found, 1);
    assert.equal(stats.json.errors.invalid_token, 1);
    assert.deepEqual(stats.json.streams_closed, { "1000": 1, client: 1 });

    const log = server.output();
    assert.match(
      log,
      /DEBUG refused method=GET path=\/ws\/jobs\/\S+ error=invalid_token close=1008 reason="invalid token" ip=127\.0\.0\.1/,
    );
    assert.match(
      log,
      /DEBUG refused method=GET path=\/ws\/jobs\/\S+ error=unauthorized close=1008/,
    );
    assert.match(
      log,
      /DEBUG refused method=GET path=\/jobs\/nope error=job_not_found status=404 ip=127\.0\.0\.1/,
    );
    assert.match(
      log,
      /DEBUG refused method=POST path=\/jobs\/\S+\/events error=malformed_json status=400/,
    );
    assert.match(log, /DEBUG stream opened transport=websocket sub=alice ip=127\.0\.0\.1/);
    assert.match(
      log,
      /DEBUG stream closed transport=websocket jobs=\S+ code=client seconds=[\d.]+ sub=alice/,
    );
    assert.match(
      log,
      /DEBUG stream closed transport=websocket jobs=\S+ code=1000 reason="job finished" seconds=/,
    );
    assert.ok(!log.includes(writer), "the log holds no token");
    assert.ok(!log.includes("not-a-jwt"), "the log holds no token, even an invalid one");
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
