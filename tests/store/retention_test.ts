/**
 * Retention, tombstones and stall detection on the real server, with short thresholds.
 */
import assert from "node:assert/strict";
import { createJob, http, logEvent, publish, waitFor, WsClient } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";

Deno.test("a finished job is purged after retention and then answers 410 everywhere", async () => {
  await withServer({ retention: "500ms" }, async (server) => {
    const id = await createJob(server.url);
    const live = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    await http(server.url, "POST", `/jobs/${live}/start`);
    const watcher = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    await watcher.next((m) => m.type === "connection");
    await http(server.url, "POST", `/jobs/${id}/complete`, { result: 1 });
    const closed = await watcher.closed;
    assert.equal(closed.code, 4004);
    assert.match(closed.reason, /purged/);
    const gone = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(gone.status, 410);
    assert.equal(gone.json.error.code, "job_gone");
    assert.equal((await http(server.url, "GET", `/jobs/${id}/events`)).status, 410);
    assert.equal(
      (await http(server.url, "POST", `/jobs/${id}/events`, logEvent("late"))).status,
      410,
    );
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    const refused = await ws.closed;
    assert.equal(refused.code, 4004);
    assert.match(refused.reason, /purged/);
    // A running job is never purged, however old.
    assert.equal((await http(server.url, "GET", `/jobs/${live}`)).status, 200);
  });
});

Deno.test("a tombstone is forgotten after its time to live: the id then answers 404", async () => {
  await withServer({ retention: "300ms", "tombstone-ttl": "300ms" }, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/cancel`);
    await waitFor(
      async () => (await http(server.url, "GET", `/jobs/${id}`)).status === 410,
      5000,
      "410",
    );
    await waitFor(
      async () => (await http(server.url, "GET", `/jobs/${id}`)).status === 404,
      5000,
      "404",
    );
  });
});

Deno.test("a running job with no event for the stall threshold is flagged and warned about", async () => {
  await withServer({ "stall-after": "400ms" }, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    try {
      await ws.next((m) => m.type === "connection");
      const warning = await ws.next((m) => m.type === "log", 5000);
      assert.equal(warning.data.level, "warning");
      assert.equal(warning.data.source, "jobwire");
      assert.match(warning.data.line, /stalled/);
      const stalled = await http(server.url, "GET", `/jobs/${id}`);
      assert.equal(stalled.json.stalled, true);
      await publish(server.url, id, { type: "progress", data: { progress: 5 } });
      const cleared = await http(server.url, "GET", `/jobs/${id}`);
      assert.equal(cleared.json.stalled, false);
    } finally {
      await ws.close();
    }
    // Only once per quiet period: the warning is itself an event, not a producer's.
    const page = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    const warnings = page.json.events.filter((e: { data: { source?: string } }) =>
      e.data.source === "jobwire"
    );
    assert.ok(warnings.length >= 1);
    // Every committed event is counted as published, the server's own warnings too.
    const metrics = (await http(server.url, "GET", "/metrics")).text;
    const published = Number(/^jobwire_events_published_total (\d+)$/m.exec(metrics)?.[1]);
    assert.equal(published, page.json.last_sequence, metrics);
  });
});

Deno.test("a pending job is never flagged stalled", async () => {
  await withServer({ "stall-after": "250ms" }, async (server) => {
    const id = await createJob(server.url);
    const running = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${running}/start`);
    await waitFor(
      async () => (await http(server.url, "GET", `/jobs/${running}`)).json.stalled,
      5000,
      "stall",
    );
    const pending = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(pending.json.stalled, false);
    assert.equal(pending.json.last_sequence, 0);
  });
});
