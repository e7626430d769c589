import assert from "node:assert/strict";
import { watchJob, watchJobs } from "../../src/client/mod.ts";
import { createJob, http, logEvent, publish, waitFor } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { filteredWebSocket, range, Recorder } from "../_helpers/watch.ts";

/** A real WebSocket that loses the first message matching `lost` (a dropped frame). */
function losing(lost: (m: { type: string; sequence: number | null }) => boolean) {
  let dropped = 0;
  const ctor = filteredWebSocket((data) => {
    if (dropped === 0 && lost(JSON.parse(data))) {
      dropped++;
      return false;
    }
    return true;
  });
  return Object.assign(ctor, { dropped: () => dropped });
}

Deno.test("an event past a gap makes the watcher fetch the missing events first", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const ws = losing((m) => m.sequence === 3);
    const watcher = watchJob(server.url, id, { WebSocket: ws });
    const rec = new Recorder(watcher);
    try {
      await rec.until(2);
      await publish(server.url, id, logEvent(3), logEvent(4), logEvent(5));
      assert.deepEqual(await rec.until(5), range(5));
      assert.equal(ws.dropped(), 1);
      const [gap] = rec.all("gap");
      assert.deepEqual({ ...gap, filled: undefined }, {
        job_id: id,
        from: 3,
        to: 3,
        filled: undefined,
      });
      assert.ok(gap!.filled >= 1);
      assert.equal(watcher.transport, "websocket");
      assert.equal(rec.all("disconnected").length, 0);
      await publish(server.url, id, logEvent(6));
      assert.deepEqual(await rec.until(6), range(6));
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a heartbeat ahead of the watcher makes it fetch what it missed", async () => {
  await withServer({ heartbeat: "100ms" }, async (server) => {
    const id = await createJob(server.url);
    const ws = losing((m) => m.sequence === 2);
    const watcher = watchJob(server.url, id, { WebSocket: ws });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      await publish(server.url, id, logEvent(1));
      await rec.until(1);
      // The last event is lost and nothing follows it: only the heartbeat tells.
      await publish(server.url, id, { type: "progress", data: { progress: 50 } });
      assert.deepEqual(await rec.until(2), [1, 2]);
      assert.equal(ws.dropped(), 1);
      assert.deepEqual(rec.all("gap").map((g) => [g.from, g.to]), [[2, 2]]);
      assert.equal(watcher.job?.progress, 50);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("multi-job heartbeats (last_sequences) fill each job's gap", async () => {
  await withServer({ heartbeat: "100ms" }, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    const ws = losing((m) => m.sequence === 1 && m.type === "log");
    const watcher = watchJobs(server.url, { jobs: [a, b], WebSocket: ws });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connection", 3);
      await publish(server.url, b, logEvent("b1"));
      await publish(server.url, a, logEvent("a1"));
      await rec.until(1, a);
      await rec.until(1, b);
      assert.equal(ws.dropped(), 1);
      assert.deepEqual([rec.sequences(a), rec.sequences(b)], [[1], [1]]);
      assert.equal(rec.all("gap").length, 1);
      assert.equal(rec.all("gap")[0]!.job_id, b);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a gap the per-job cap emptied is reported with nothing filled, and truncated", async () => {
  await withServer({ "max-events-per-job": 20 }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, ...Array.from({ length: 50 }, (_, i) => logEvent(i)));
    const watcher = watchJob(server.url, id, {
      since: 0,
      transports: ["poll"],
      closeOnFinish: false,
    });
    const rec = new Recorder(watcher);
    try {
      assert.deepEqual(await rec.until(50), range(50, 31));
      assert.equal(rec.all("truncated")[0]?.first_available, 31);
      // Events 1-30 are gone: none of them was filled, whatever the page held after them.
      for (const gap of rec.all("gap")) assert.equal(gap.filled, 0, JSON.stringify(gap));
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a gap whose page cannot be fetched reconnects once, and what the connection sent after it is not tried again and again", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const ws = losing((m) => m.sequence === 3);
    let pageCalls = 0;
    let failing = true;
    const watcher = watchJob(server.url, id, {
      WebSocket: ws,
      initialDelayMs: 10,
      fetch: (input, init) => {
        const url = String(input);
        if (failing && url.includes("/events?")) {
          pageCalls++;
          return Promise.reject(new TypeError("the page is out of reach"));
        }
        return fetch(input, init);
      },
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(2);
      // 48 events in one go: one message (batch=1), which loses event 3.
      await publish(server.url, id, ...Array.from({ length: 48 }, (_, i) => logEvent(i + 3)));
      await rec.next("reconnecting");
      failing = false;
      assert.deepEqual(await rec.until(50), range(50));
      assert.equal(pageCalls, 1, "one failed fill, then a reconnect that resumes from 2");
      assert.equal(rec.all("error").length, 1);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a watcher of every job still tells of jobs created and deleted behind a gap it could not fill", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, a, logEvent(1));
    const ws = losing((m) => m.type === "log" && m.sequence === 2);
    let release: (() => void) | undefined;
    const watcher = watchJobs(server.url, {
      all: true,
      WebSocket: ws,
      initialDelayMs: 10,
      fetch: (input, init) => {
        // The page of the gap hangs, then fails, while notices queue behind it.
        if (String(input).includes(`/jobs/${a}/events?`) && release === undefined) {
          return new Promise((_, reject) => {
            release = () => reject(new TypeError("the page is out of reach"));
          });
        }
        return fetch(input, init);
      },
    });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      await publish(server.url, a, logEvent(2), logEvent(3));
      await waitFor(() => release !== undefined, 5000, "the page asked for");
      assert.equal((await http(server.url, "DELETE", `/jobs/${b}`)).status, 200);
      const c = await createJob(server.url);
      await waitFor(() => watcher.state === "connected", 1000, "still connected");
      release!();
      // Sent once, and not again by the next connection: they must not be passed over.
      const deleted = await rec.next("deleted");
      assert.equal(deleted.job_id, b);
      assert.equal((await rec.next("created")).job_id, c);
      // Event 1 came before the watcher (all: from now on); 2 and 3 after the reconnect.
      assert.deepEqual(await rec.until(3, a), [2, 3]);
    } finally {
      watcher.close();
    }
  });
});
