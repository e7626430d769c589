import assert from "node:assert/strict";
import {
  type FetchLike,
  watchJob,
  watchJobs,
  type WebSocketConstructor,
} from "../../src/client/mod.ts";
import { createJob, http, logEvent, publish } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { failingWebSocket, hangingWebSocket, range, Recorder } from "../_helpers/watch.ts";

/** A network that lets plain requests through but breaks every streaming one. */
function noStreaming(): FetchLike & { refused: number } {
  const wrapped = Object.assign(
    (input: string, init?: RequestInit) => {
      const accept = new Headers(init?.headers).get("accept") ?? "";
      if (accept.includes("text/event-stream")) {
        wrapped.refused++;
        return Promise.reject(new TypeError("connection reset by proxy"));
      }
      return fetch(input, init);
    },
    { refused: 0 },
  );
  return wrapped;
}

Deno.test("watchJob falls back to SSE when the WebSocket cannot connect", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const ws = failingWebSocket();
    const watcher = watchJob(server.url, id, { WebSocket: ws, initialDelayMs: 10 });
    const rec = new Recorder(watcher);
    try {
      await rec.until(2);
      assert.equal(watcher.transport, "sse");
      assert.equal(ws.attempts, 2, "falls back after fallbackAfter (2) failed attempts");
      assert.deepEqual(rec.all("transport").map((t) => t.to), ["websocket", "sse"]);
      await http(server.url, "POST", `/jobs/${id}/start`, {});
      await publish(server.url, id, { type: "progress", data: { progress: 30 } });
      assert.equal((await http(server.url, "POST", `/jobs/${id}/complete`, {})).status, 201);
      await rec.next("finished");
      assert.deepEqual(rec.sequences(), range(5));
      assert.equal(watcher.job?.status, "completed");
      assert.equal(watcher.quality, "unknown");
    } finally {
      watcher.close();
    }
  });
});

Deno.test("watchJob falls back to long-poll when WebSocket and streaming both fail", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    const network = noStreaming();
    const watcher = watchJob(server.url, id, {
      WebSocket: failingWebSocket(),
      fetch: network,
      initialDelayMs: 10,
      pollWaitSeconds: 2,
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(1);
      assert.equal(watcher.transport, "poll");
      assert.equal(network.refused, 2);
      assert.deepEqual(rec.all("transport").map((t) => t.to), ["websocket", "sse", "poll"]);
      // Live events arrive through the waiting long-poll request.
      await publish(server.url, id, logEvent(2), logEvent(3));
      await http(server.url, "POST", `/jobs/${id}/cancel`, { reason: "enough" });
      const finished = await rec.next("finished");
      assert.equal(finished.status, "cancelled");
      assert.deepEqual(rec.sequences(), range(4));
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a blocked transport is not blamed when the server itself is down", async () => {
  const watcher = watchJob("http://127.0.0.1:9", "any", {
    transports: ["sse", "poll"],
    initialDelayMs: 5,
    maxDelayMs: 10,
    maxAttempts: 4,
  });
  const rec = new Recorder(watcher);
  try {
    await rec.next("max_reconnect_attempts");
    assert.deepEqual(rec.all("transport").map((t) => t.to), ["sse"]);
    assert.ok(rec.all("error").every((e) => e.code === "network_error"));
  } finally {
    watcher.close();
  }
});

Deno.test("transports restricts and orders what a watcher uses", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    const watcher = watchJob(server.url, id, { transports: ["poll"], pollWaitSeconds: 1 });
    const rec = new Recorder(watcher);
    try {
      await rec.until(1);
      assert.equal(watcher.transport, "poll");
      await publish(server.url, id, logEvent(2));
      assert.deepEqual(await rec.until(2), [1, 2]);
      assert.equal(rec.all("transport").length, 1);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a long-poll wait above the server's 60 s is taken as 60, not refused", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const watcher = watchJob(server.url, id, { transports: ["poll"], pollWaitSeconds: 90 });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      await publish(server.url, id, logEvent(1));
      assert.deepEqual(await rec.until(1), [1]);
      assert.deepEqual(rec.all("error"), []);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("watchJobs follows several jobs over SSE when the WebSocket is unavailable", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, a, logEvent("a1"), logEvent("a2"));
    const watcher = watchJobs(server.url, {
      jobs: [a, b],
      since: { [a]: 1 },
      WebSocket: failingWebSocket(),
      initialDelayMs: 10,
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(2, a);
      assert.equal(watcher.transport, "sse");
      await publish(server.url, b, logEvent("b1"));
      await http(server.url, "POST", `/jobs/${a}/cancel`, {});
      await http(server.url, "POST", `/jobs/${b}/fail`, { error: "boom" });
      await rec.next("finished", 2);
      await rec.next("closed");
      assert.deepEqual(rec.sequences(a), [2, 3]);
      assert.deepEqual(rec.sequences(b), [1, 2, 3]);
      assert.deepEqual(rec.all("finished").map((f) => [f.job_id, f.status]), [
        [a, "cancelled"],
        [b, "failed"],
      ]);
      assert.equal(watcher.jobs.get(a)?.status, "cancelled");
      assert.equal(watcher.lastSequence(b), 3);
      assert.equal(watcher.jobs.get(b)?.error?.error, "boom");
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a WebSocket that hangs while connecting is given up after connectTimeoutMs", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    const ws = hangingWebSocket();
    const watcher = watchJob(server.url, id, {
      WebSocket: ws,
      connectTimeoutMs: 100,
      initialDelayMs: 5,
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(1);
      assert.equal(watcher.transport, "sse");
      assert.equal(ws.attempts, 2);
      assert.equal(ws.closed, 2, "each hanging socket was closed");
      assert.ok(rec.all("error").some((e) => /greeting/.test(e.message)));
    } finally {
      watcher.close();
    }
  });
});

Deno.test("an SSE watcher that has seen a finished job to its end finishes at once", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`, {});
    await http(server.url, "POST", `/jobs/${id}/complete`, { result: 1 });
    // The server answers 204 to a resumed stream with nothing left; the watcher greets
    // itself with the final snapshot.
    const watcher = watchJob(server.url, id, { since: 3, transports: ["sse"] });
    const rec = new Recorder(watcher);
    try {
      const finished = await rec.next("finished");
      assert.equal(finished.status, "completed");
      assert.equal(finished.job?.result, 1);
      assert.deepEqual(rec.sequences(), []);
      assert.equal((await rec.next("closed")).reason, "finished");
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a transport that failed while the server was down keeps its place when it comes back", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    // The network as the client sees a restart: plain requests fail while `down`; the next
    // `failNext` WebSockets fail, and the last of them just as the server is back, so the
    // check that follows it finds the server answering.
    let down = false;
    let failNext = 0;
    const live: WebSocket[] = [];
    const failing = failingWebSocket();
    const Flaky = class {
      constructor(url: string) {
        if (failNext > 0) {
          failNext--;
          if (failNext === 0) down = false;
          return new failing(url);
        }
        const socket = new WebSocket(url);
        live.push(socket);
        return socket;
      }
    } as unknown as WebSocketConstructor;
    const network: FetchLike = (input, init) =>
      down ? Promise.reject(new TypeError("connection refused")) : fetch(input, init);
    const watcher = watchJob(server.url, id, {
      WebSocket: Flaky,
      fetch: network,
      initialDelayMs: 10,
      maxDelayMs: 20,
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(1);
      down = true;
      failNext = 2;
      live.at(-1)!.close();
      await publish(server.url, id, logEvent(2));
      assert.deepEqual(await rec.until(2), [1, 2]);
      assert.equal(watcher.transport, "websocket");
      assert.deepEqual(rec.all("transport").map((t) => t.to), ["websocket"]);
      assert.equal(failing.attempts, 2);
    } finally {
      watcher.close();
    }
  });
});
