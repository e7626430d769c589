import assert from "node:assert/strict";
import { JobReporter, watchJob, watchJobs } from "../../src/client/mod.ts";
import type { WebSocketConstructor } from "../../src/client/types.ts";
import { createJob, http, logEvent, publish } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH } from "../_helpers/tokens.ts";
import { range, Recorder } from "../_helpers/watch.ts";

Deno.test("watchJob delivers replayed then live events in order over WebSocket", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { kind: "build" });
    await publish(server.url, id, { type: "status", data: { status: "running" } }, logEvent("a"));
    const watcher = watchJob(server.url, id);
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      assert.equal(watcher.transport, "websocket");
      assert.equal(watcher.state, "connected");
      await rec.until(2);
      await publish(server.url, id, { type: "progress", data: { progress: 40, stage: "compile" } });
      await publish(server.url, id, logEvent("b"), logEvent("c"));
      assert.deepEqual(await rec.until(5), range(5));
      assert.equal(watcher.lastSequence(id), 5);
      assert.equal(watcher.job?.progress, 40);
      assert.equal(watcher.job?.stage, "compile");
      assert.equal(watcher.job?.status, "running");
      assert.equal(watcher.job?.last_sequence, 5);
    } finally {
      watcher.close();
    }
    assert.equal(watcher.state, "closed");
  });
});

Deno.test("watchJob emits finished and stops once the job ends, without reconnecting", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const watcher = watchJob(server.url, id, { initialDelayMs: 10 });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      await publish(server.url, id, { type: "status", data: { status: "running" } });
      await publish(server.url, id, { type: "progress", data: { progress: 70 } });
      await http(server.url, "POST", `/jobs/${id}/complete`, { result: { rows: 3 } });
      const finished = await rec.next("finished");
      assert.equal(finished.job_id, id);
      assert.equal(finished.status, "completed");
      assert.deepEqual(finished.job?.result, { rows: 3 });
      assert.equal((await rec.next("closed")).reason, "finished");
      assert.deepEqual(rec.sequences(), range(4));
      assert.equal(watcher.state, "closed");
      assert.equal(watcher.job?.status, "completed");
      assert.equal(watcher.job?.progress, 100);
      assert.equal(rec.all("reconnecting").length, 0);
      assert.equal(rec.all("finished").length, 1);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("watchJob on a finished job replays it all, then finishes", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    await http(server.url, "POST", `/jobs/${id}/fail`, { error: "out of memory" });
    const watcher = watchJob(server.url, id);
    const rec = new Recorder(watcher);
    try {
      const finished = await rec.next("finished");
      assert.equal(finished.status, "failed");
      assert.deepEqual(rec.sequences(), range(4));
      assert.equal(watcher.job?.error?.error, "out of memory");
      // The snapshot came first, so replayed events did not move it backwards.
      assert.ok(rec.all("snapshot").every((s) => s.job.status === "failed"));
    } finally {
      watcher.close();
    }
  });
});

Deno.test("watchJob stops with job_not_found for an unknown job, without retrying", async () => {
  await withServer({}, async (server) => {
    const watcher = watchJob(server.url, "no-such-job", { initialDelayMs: 10 });
    const rec = new Recorder(watcher);
    try {
      const closed = await rec.next("closed");
      assert.match(closed.reason, /No job no-such-job/);
      assert.equal(rec.all("error").at(-1)?.code, "job_not_found");
      assert.equal(rec.all("reconnecting").length, 0);
      assert.equal(rec.all("connected").length, 0);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("watchJob with since resumes after that sequence", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2), logEvent(3), logEvent(4));
    const watcher = watchJob(server.url, id, { since: 2 });
    const rec = new Recorder(watcher);
    try {
      assert.deepEqual(await rec.until(4), [3, 4]);
      assert.equal(watcher.job?.last_sequence, 4);
    } finally {
      watcher.close();
    }
  });
});

for (const transport of ["websocket", "sse", "poll"] as const) {
  Deno.test(`watchJob over ${transport} with since past the job's end follows the job from where it is`, async () => {
    await withServer({}, async (server) => {
      const id = await createJob(server.url);
      await publish(server.url, id, logEvent(1));
      const watcher = watchJob(server.url, id, {
        since: 50,
        transports: [transport],
        pollWaitSeconds: 1,
      });
      const rec = new Recorder(watcher);
      try {
        await rec.next("truncated");
        await publish(server.url, id, logEvent(2), logEvent(3), logEvent(4));
        assert.deepEqual(await rec.until(4), [2, 3, 4]);
      } finally {
        watcher.close();
      }
    });
  });
}

Deno.test("onEvent listens to the events of one type; on() with a name a watcher never emits throws", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const watcher = watchJob(server.url, id);
    const rec = new Recorder(watcher);
    const deployed: number[] = [];
    const progress: number[] = [];
    watcher.onEvent("model_deployed", (event) => deployed.push(event.sequence));
    const off = watcher.onEvent("progress", (event) => progress.push(event.sequence));
    try {
      await rec.next("connected");
      await publish(
        server.url,
        id,
        { type: "model_deployed", data: { model_name: "v3" } },
        { type: "progress", data: { progress: 10 } },
        logEvent("x"),
        { type: "model_deployed", data: { model_name: "v4" } },
      );
      await rec.until(4);
      off();
      await publish(server.url, id, { type: "progress", data: { progress: 20 } });
      await rec.until(5);
      assert.deepEqual(deployed, [1, 4]);
      assert.deepEqual(progress, [2]);
      // From JavaScript, a listener of an event type by on() would never be called.
      const untyped = watcher as unknown as { on(name: string, fn: () => void): void };
      assert.throws(
        () => untyped.on("model_deployed", () => {}),
        (e) => e instanceof TypeError && /onEvent\("model_deployed"/.test(e.message),
      );
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a job deleted and made again under its id ends a watcher of it with job_gone on every transport", async () => {
  for (const transport of ["websocket", "sse", "poll"] as const) {
    await withServer({}, async (server) => {
      const id = await createJob(server.url);
      await publish(server.url, id, { type: "status", data: { status: "running" } });
      const watcher = watchJob(server.url, id, {
        transports: [transport],
        pollWaitSeconds: 5,
        initialDelayMs: 10,
      });
      const rec = new Recorder(watcher);
      try {
        await rec.next("connected");
        await rec.until(1);
        // Deleted while a long-poll waits on it, and made again at once.
        await new Promise((resolve) => setTimeout(resolve, 100));
        await http(server.url, "DELETE", `/jobs/${id}`);
        assert.equal((await http(server.url, "POST", "/jobs", { id })).status, 201);
        await publish(server.url, id, logEvent("new job"));
        await rec.next("closed");
        const codes = rec.all("error").map((e) => `${e.code} ${e.status}`);
        assert.deepEqual(codes, ["job_gone 410"], `${transport}: ${codes.join()}`);
      } finally {
        watcher.close();
      }
    });
  }
});

Deno.test("an unknown job ends a watcher with job_not_found, status 404 and HTTP's words on every transport", async () => {
  await withServer({}, async (server) => {
    for (const transport of ["websocket", "sse", "poll"] as const) {
      const watcher = watchJob(server.url, "nope", { transports: [transport], initialDelayMs: 10 });
      const rec = new Recorder(watcher);
      try {
        await rec.next("closed");
        const errors = rec.all("error").map((e) => [e.code, e.status, e.message]);
        assert.deepEqual(errors, [["job_not_found", 404, "No job nope"]], transport);
      } finally {
        watcher.close();
      }
    }
  });
});

Deno.test("a deleted job and a refused token end a watcher with the same error on every transport", async () => {
  for (const transport of ["websocket", "sse", "poll"] as const) {
    await withServer({}, async (server) => {
      const id = await createJob(server.url);
      const watcher = watchJob(server.url, id, {
        transports: [transport],
        pollWaitSeconds: 1,
        initialDelayMs: 10,
      });
      const rec = new Recorder(watcher);
      try {
        await rec.next("connected");
        await http(server.url, "DELETE", `/jobs/${id}`);
        await rec.next("closed");
        const codes = rec.all("error").map((e) => e.code);
        assert.deepEqual(codes, ["job_gone"], `${transport}: ${codes.join()}`);
      } finally {
        watcher.close();
      }
    });
    await withServer(AUTH, async (server) => {
      const watcher = watchJob(server.url, "any", {
        transports: [transport],
        token: "not-a-token",
        initialDelayMs: 10,
      });
      const rec = new Recorder(watcher);
      try {
        await rec.next("closed");
        assert.equal(rec.all("error").at(-1)?.code, "invalid_token", transport);
      } finally {
        watcher.close();
      }
    });
  }
});

Deno.test("watchJob asks WebSockets for batch=1: a 2,500-event replay comes in a few messages, every event once and in order", async () => {
  await withServer({ heartbeat: "0" }, async (server) => {
    const id = await createJob(server.url);
    for (let n = 0; n < 2500; n += 500) {
      await publish(server.url, id, ...range(n + 500, n + 1).map((i) => logEvent(i)));
    }
    const messages: string[] = [];
    const urls: string[] = [];
    class Recording extends WebSocket {
      constructor(url: string) {
        super(url);
        urls.push(url);
        this.addEventListener("message", (e) => messages.push(String(e.data)));
      }
    }
    // No pings: a pong between two messages would be a message of its own.
    const watcher = watchJob(server.url, id, {
      since: 0,
      pingIntervalMs: 0,
      WebSocket: Recording as unknown as WebSocketConstructor,
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(2500);
      assert.equal(new URL(urls[0]!).searchParams.get("batch"), "1");
      assert.deepEqual(rec.sequences(), range(2500));
      // 2,500 envelopes of about 150 characters in messages of up to 65,536.
      assert.ok(messages.length <= 10, `${messages.length} messages`);
      assert.ok(messages.some((m) => m.split("\n").length > 100));
      await publish(server.url, id, logEvent("x"), logEvent("y"), logEvent("z"));
      assert.deepEqual(await rec.until(2503), range(2503));
      assert.equal(messages.at(-1)!.split("\n").length, 3);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a since past the end of a finished job is reported as truncated on every transport", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, { type: "status", data: { status: "running" } }, logEvent("a"));
    await http(server.url, "POST", `/jobs/${id}/complete`, {});
    for (const transport of ["websocket", "sse", "poll"] as const) {
      const watcher = watchJob(server.url, id, { since: 99, transports: [transport] });
      const rec = new Recorder(watcher);
      try {
        const truncated = await rec.next("truncated");
        assert.equal(truncated.job_id, id, transport);
        assert.equal((await rec.next("finished")).status, "completed", transport);
      } finally {
        watcher.close();
      }
    }
  });
});

for (const transport of ["websocket", "sse", "poll"] as const) {
  Deno.test(`a job id given as a number is the job of that id over ${transport}, for watchers and the reporter`, async () => {
    await withServer({}, async (server) => {
      const id = 7000 + ["websocket", "sse", "poll"].indexOf(transport);
      await createJob(server.url, { id: String(id) });
      const reporter = new JobReporter(server.url, id);
      assert.equal(reporter.jobId, String(id));
      await reporter.started();
      await reporter.progress(40);
      const one = watchJob(server.url, id, { transports: [transport], pollWaitSeconds: 1 });
      const several = watchJobs(server.url, {
        jobs: [id],
        since: { [id]: 0 },
        transports: [transport === "poll" ? "sse" : transport],
      });
      const recs = [new Recorder(one), new Recorder(several)];
      try {
        await reporter.complete({ rows: 1 });
        for (const rec of recs) {
          assert.equal((await rec.next("finished")).status, "completed");
          // started, progress, the result and the end
          assert.deepEqual(rec.sequences(), range(4));
          assert.equal(rec.all("reconnecting").length, 0);
        }
        assert.equal(one.job?.id, String(id));
        assert.equal(one.job?.status, "completed");
      } finally {
        one.close();
        several.close();
        await reporter.close();
      }
    });
  });
}

Deno.test("a job id that is neither text nor a whole number is refused at once", () => {
  for (const bad of ["", 1.5, -1, NaN, null, undefined, { id: "a" }, true]) {
    assert.throws(
      () => watchJob("http://127.0.0.1:1", bad as string),
      (error: unknown) =>
        error instanceof TypeError && /watchJob needs a job id/.test(error.message),
      String(bad),
    );
    assert.throws(() => new JobReporter("http://127.0.0.1:1", bad as string), TypeError);
    assert.throws(() => watchJobs("http://127.0.0.1:1", { jobs: [bad as string] }), TypeError);
  }
});

Deno.test("during an event, watcher.job is the job as of that event, log lines included", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, { type: "status", data: { status: "running" } });
    const watcher = watchJob(server.url, id, { since: 0 });
    const seen: [number, number | undefined][] = [];
    watcher.on("event", (e) => seen.push([e.sequence, watcher.job?.last_sequence]));
    const rec = new Recorder(watcher);
    try {
      await rec.until(1);
      await publish(server.url, id, logEvent("a"), logEvent("b"));
      await rec.until(3);
      assert.deepEqual(seen, [[1, 1], [2, 2], [3, 3]]);
    } finally {
      watcher.close();
    }
  });
});
