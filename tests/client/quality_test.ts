import assert from "node:assert/strict";
import { qualityOf, watchJob } from "../../src/client/mod.ts";
import { createJob } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { filteredWebSocket, Recorder } from "../_helpers/watch.ts";

Deno.test("quality comes from the server's pong to the ping sent on connect", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const watcher = watchJob(server.url, id);
    const rec = new Recorder(watcher);
    try {
      assert.equal(watcher.quality, "unknown");
      const change = await rec.next("quality");
      assert.notEqual(change.quality, "unknown");
      assert.equal(typeof change.rttMs, "number");
      assert.equal(change.quality, qualityOf(change.rttMs!));
      assert.equal(watcher.quality, change.quality);
      assert.equal(watcher.rttMs, change.rttMs);
    } finally {
      watcher.close();
    }
    assert.equal(watcher.quality, "unknown");
  });
});

Deno.test("a slow round trip makes the quality poor", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const pending = new Set<ReturnType<typeof setTimeout>>();
    // A slow link: pongs arrive 350 ms late, so the round trip is at least that.
    const Slow = filteredWebSocket((data, deliver) => {
      if (JSON.parse(data).type !== "pong") return true;
      const timer = setTimeout(() => {
        pending.delete(timer);
        deliver();
      }, 350);
      pending.add(timer);
      return false;
    });
    const watcher = watchJob(server.url, id, { WebSocket: Slow });
    const rec = new Recorder(watcher);
    try {
      const change = await rec.next("quality");
      assert.equal(change.quality, "poor");
      assert.ok(change.rttMs! >= 350);
    } finally {
      watcher.close();
      for (const timer of pending) clearTimeout(timer);
    }
  });
});

Deno.test("quality stays unknown on transports without ping", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const watcher = watchJob(server.url, id, { transports: ["sse"] });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      await rec.next("connection");
      assert.equal(watcher.quality, "unknown");
      assert.equal(rec.all("quality").length, 0);
    } finally {
      watcher.close();
    }
  });
});
