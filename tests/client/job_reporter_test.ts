import assert from "node:assert/strict";
import { type FetchLike, JobReporter, JobwireError, type LogLevel } from "../../src/client/mod.ts";
import { http, waitFor } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";

const FAST = { initialDelayMs: 5, maxDelayMs: 20 };

/** The real network, with every request recorded (`POST /jobs/x/log`). */
function recording(
  trouble?: (request: string, n: number) => "lose-reply" | "unavailable" | "hang" | undefined,
): FetchLike & { calls: string[] } {
  const calls: string[] = [];
  const wrapped = async (input: string, init?: RequestInit) => {
    const request = `${init?.method ?? "GET"} ${new URL(input).pathname}`;
    calls.push(request);
    const n = calls.filter((c) => c === request).length;
    const what = trouble?.(request, n);
    if (what === "hang") {
      // A black hole: the request is sent and no answer ever comes back.
      await fetch(input, init).then((r) => r.body?.cancel());
      return new Promise<Response>((_, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
      });
    }
    if (what === "unavailable") {
      // A load balancer in front answering for a server it cannot reach.
      return new Response("upstream unavailable", { status: 503 });
    }
    const response = await fetch(input, init);
    if (what === "lose-reply") {
      await response.body?.cancel();
      throw new TypeError("connection reset");
    }
    return response;
  };
  return Object.assign(wrapped, { calls });
}

async function events(base: string, id: string) {
  const page = await http(base, "GET", `/jobs/${id}/events?since=0&limit=1000`);
  return page.json.events as { type: string; sequence: number; data: Record<string, unknown> }[];
}

/** A job's events in short: a log's line, else `type status-or-progress`. */
async function written(base: string, id: string): Promise<unknown[]> {
  return (await events(base, id)).map((e) =>
    e.type === "log" ? e.data.line : `${e.type} ${e.data.status ?? e.data.progress}`
  );
}

Deno.test("JobReporter publishes a whole job in call order, logs batched", async () => {
  await withServer({}, async (server) => {
    const network = recording();
    const reporter = await JobReporter.create(server.url, {
      kind: "train",
      metadata: { model: "m1" },
      fetch: network,
      logFlushMs: 60_000,
    });
    try {
      assert.equal(reporter.job?.kind, "train");
      await reporter.queued();
      await reporter.started("go");
      reporter.log("loading data");
      reporter.log("3 files", "debug");
      await reporter.progress(40, { stage: "fit", current: 4, total: 10, eta_seconds: 9 });
      reporter.log("epoch 5");
      await reporter.event("training_progress", { epoch: 5, loss: 0.02 });
      await reporter.complete({ accuracy: 0.97 }, "done");
      const got = await events(server.url, reporter.jobId);
      assert.deepEqual(got.map((e) => e.type), [
        "status",
        "status",
        "log",
        "log",
        "progress",
        "log",
        "training_progress",
        "result",
        "status",
      ]);
      assert.deepEqual(got.map((e) => e.sequence), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.deepEqual(got[3]!.data, { line: "3 files", level: "debug" });
      assert.equal(got[4]!.data.stage, "fit");
      assert.deepEqual(got[7]!.data, { results: { accuracy: 0.97 } });
      const logPosts = network.calls.filter((c) => c.endsWith("/log"));
      assert.equal(logPosts.length, 2, "two lines went as one request, then one");
      const job = await http(server.url, "GET", `/jobs/${reporter.jobId}`);
      assert.equal(job.json.status, "completed");
      assert.deepEqual(job.json.metadata, { model: "m1" });
    } finally {
      await reporter.close();
    }
  });
});

Deno.test("JobReporter sends each buffered line's source, in one request", async () => {
  await withServer({}, async (server) => {
    const network = recording();
    const reporter = await JobReporter.create(server.url, { fetch: network, logFlushMs: 60_000 });
    try {
      reporter.log("out", "info", "stdout");
      reporter.log("err", "warning", "stderr");
      reporter.log("plain");
      await reporter.flush();
      const got = await events(server.url, reporter.jobId);
      assert.deepEqual(got.map((e) => e.data), [
        { line: "out", level: "info", source: "stdout" },
        { line: "err", level: "warning", source: "stderr" },
        { line: "plain", level: "info" },
      ]);
      assert.equal(network.calls.filter((c) => c.endsWith("/log")).length, 1);
    } finally {
      await reporter.close();
    }
  });
});

Deno.test("JobReporter flushes buffered logs on its timer and at the batch size", async () => {
  await withServer({}, async (server) => {
    const network = recording();
    const reporter = await JobReporter.create(server.url, {
      fetch: network,
      logFlushMs: 20,
      logBatchSize: 3,
    });
    try {
      for (let i = 0; i < 7; i++) reporter.log(`line ${i}`);
      await reporter.flush();
      const got = await events(server.url, reporter.jobId);
      assert.deepEqual(got.map((e) => e.data.line), range7());
      assert.equal(network.calls.filter((c) => c.endsWith("/log")).length, 3);
      reporter.log("late");
      const deadline = Date.now() + 5000;
      while ((await events(server.url, reporter.jobId)).length < 8) {
        if (Date.now() > deadline) throw new Error("the timer never flushed");
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await reporter.close();
    }
  });
});

function range7(): string[] {
  return Array.from({ length: 7 }, (_, i) => `line ${i}`);
}

Deno.test("a publish whose reply is lost is retried with the same key and written once", async () => {
  await withServer({}, async (server) => {
    const network = recording((request, n) =>
      request.endsWith("/progress") && n === 1 ? "lose-reply" : undefined
    );
    const reporter = await JobReporter.create(server.url, { ...FAST, fetch: network });
    try {
      await reporter.started();
      const result = await reporter.progress(50);
      assert.equal(result.replayed, true, "the retry was answered from the first commit");
      assert.deepEqual(result.sequences, [2]);
      await reporter.progress(60);
      const got = await events(server.url, reporter.jobId);
      assert.deepEqual(got.map((e) => [e.type, e.data.progress]), [
        ["status", undefined],
        ["progress", 50],
        ["progress", 60],
      ]);
      assert.equal(network.calls.filter((c) => c.endsWith("/progress")).length, 3);
    } finally {
      await reporter.close();
    }
  });
});

Deno.test("a request whose answer never comes is given up after timeoutMs and retried", async () => {
  await withServer({}, async (server) => {
    const network = recording((request, n) =>
      request.endsWith("/events") && n === 1 ? "hang" : undefined
    );
    const reporter = await JobReporter.create(server.url, {
      ...FAST,
      fetch: network,
      timeoutMs: 200,
    });
    try {
      const result = await reporter.event("model_deployed", { version: "v3" });
      assert.equal(result.replayed, true);
      assert.equal(network.calls.filter((c) => c.endsWith("/events")).length, 2);
      assert.deepEqual((await events(server.url, reporter.jobId)).map((e) => e.type), [
        "model_deployed",
      ]);
    } finally {
      await reporter.close();
    }
  });
});

Deno.test("JobReporter retries 5xx and a create whose reply was lost", async () => {
  await withServer({}, async (server) => {
    const network = recording((request, n) => {
      if (request === "POST /jobs" && n === 1) return "lose-reply";
      if (request.endsWith("/start") && n <= 2) return "unavailable";
      return undefined;
    });
    const reporter = await JobReporter.create(server.url, { ...FAST, fetch: network, id: "etl-7" });
    try {
      assert.equal(reporter.jobId, "etl-7");
      await reporter.started();
      assert.equal(network.calls.filter((c) => c === "POST /jobs").length, 2);
      assert.equal(network.calls.filter((c) => c.endsWith("/start")).length, 3);
      assert.deepEqual((await events(server.url, "etl-7")).map((e) => e.data.status), ["running"]);
    } finally {
      await reporter.close();
    }
  });
});

Deno.test("a create retried after a try that never reached the server does not take someone else's job", async () => {
  await withServer({}, async (server) => {
    // Another worker's job under the id, running.
    assert.equal(
      (await http(server.url, "POST", "/jobs", { id: "etl-8", kind: "other" })).status,
      201,
    );
    assert.equal((await http(server.url, "POST", "/jobs/etl-8/start", {})).status, 201);
    const refused = Object.assign(async (input: string, init?: RequestInit) => {
      refused.calls++;
      if (refused.calls === 1) throw new TypeError("Connection refused");
      return await fetch(input, init);
    }, { calls: 0 });
    await assert.rejects(
      JobReporter.create(server.url, { ...FAST, fetch: refused, id: "etl-8", kind: "train" }),
      { code: "job_exists" },
    );
    // Its own job, made by a try whose reply was lost, is still taken as created.
    const network = recording((request, n) =>
      request === "POST /jobs" && n === 1 ? "lose-reply" : undefined
    );
    const reporter = await JobReporter.create(server.url, {
      ...FAST,
      fetch: network,
      id: "etl-9",
      kind: "train",
      metadata: { b: 1, a: [1, 2] },
    });
    try {
      assert.equal(reporter.job?.id, "etl-9");
      assert.equal(reporter.job?.kind, "train");
    } finally {
      await reporter.close();
    }
  });
});

Deno.test("JobReporter surfaces 4xx refusals with the server's code, without retrying", async () => {
  await withServer({}, async (server) => {
    const network = recording();
    const reporter = await JobReporter.create(server.url, { ...FAST, fetch: network });
    try {
      await assert.rejects(reporter.progress(150), (error: unknown) => {
        assert.ok(error instanceof JobwireError);
        assert.equal(error.code, "validation_error");
        assert.equal(error.status, 422);
        assert.ok(Array.isArray(error.details));
        return true;
      });
      assert.equal(network.calls.filter((c) => c.endsWith("/progress")).length, 1);
      await reporter.cancel("no longer needed");
      await assert.rejects(reporter.started(), { code: "job_finished", status: 409 });
      await assert.rejects(
        JobReporter.create(server.url, { fetch: network, id: reporter.jobId }),
        { code: "job_exists" },
      );
    } finally {
      await reporter.close();
    }
  });
});

Deno.test("a failed background log flush rejects the next flush()", async () => {
  await withServer({}, async (server) => {
    const errors: JobwireError[] = [];
    const reporter = await JobReporter.create(server.url, {
      ...FAST,
      onError: (e) => errors.push(e),
    });
    reporter.log("fine");
    reporter.log("bad", "shouting" as LogLevel);
    await assert.rejects(reporter.flush(), { code: "validation_error" });
    assert.equal(errors.length, 1);
    await reporter.flush();
    await reporter.close();
    assert.throws(() => reporter.log("after close"), { code: "closed" });
  });
});

Deno.test("JobReporter's signal aborts its pending requests", async () => {
  // Nothing listens: without the signal, both calls would fail with network_error.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  listener.close();
  const abort = new AbortController();
  const reporter = new JobReporter(url, "gone", {
    retries: 1,
    initialDelayMs: 10,
    maxDelayMs: 10,
    logFlushMs: 60_000,
    signal: abort.signal,
  });
  const progress = reporter.progress(10);
  reporter.log("queued behind it");
  const flushed = reporter.flush();
  abort.abort(new DOMException("Stopped by the test", "AbortError"));
  await assert.rejects(progress, { name: "AbortError", message: "Stopped by the test" });
  await assert.rejects(flushed, (error: unknown) => {
    assert.ok(error instanceof JobwireError);
    assert.equal(error.code, "closed");
    assert.equal((error.cause as Error).message, "Stopped by the test");
    return true;
  });
});

Deno.test("JobReporter keeps log lines it could not send and sends them before the next report, which never goes after a gap", async () => {
  await withServer({}, async (server) => {
    let down = false;
    const network = recording((request) =>
      down && request.endsWith("/log") ? "unavailable" : undefined
    );
    const failures: string[] = [];
    const reporter = await JobReporter.create(server.url, {
      ...FAST,
      retries: 1,
      logFlushMs: 10,
      fetch: network,
      onError: (error) => failures.push(error.code),
    });
    try {
      await reporter.started();
      down = true;
      reporter.log("logged while the server was away");
      await waitFor(() => failures.length > 0 || undefined, 5000, "the background flush to fail");
      // Still away: the report is refused rather than written after the missing line.
      await assert.rejects(reporter.progress(40), { status: 503 });
      down = false;
      reporter.log("logged after");
      await reporter.progress(50);
      await reporter.flush();
      assert.deepEqual(await written(server.url, reporter.jobId), [
        "status running",
        "logged while the server was away",
        "logged after",
        "progress 50",
      ]);
    } finally {
      await reporter.close().catch(() => {});
    }
  });
});

Deno.test("JobReporter drops only the line the server refuses as too large, holds up no report for it, and tells of it once", async () => {
  await withServer({}, async (server) => {
    const told: string[] = [];
    const reporter = await JobReporter.create(server.url, {
      ...FAST,
      logFlushMs: 60_000,
      onError: (error) => told.push(error.code),
    });
    try {
      await reporter.started();
      for (let i = 1; i <= 7; i++) {
        reporter.log(i === 4 ? "x".repeat(70_000) : `good ${i}`);
      }
      // A refused line is gone for good: the report after it goes out all the same.
      await reporter.progress(10);
      await assert.rejects(reporter.flush(), { code: "event_too_large", status: 413 });
      await reporter.flush();
      assert.deepEqual(told, ["event_too_large"]);
      assert.equal(reporter.droppedLines, 1);
      assert.ok(reporter.splitBatches >= 1);
      await reporter.complete({ ok: true });
      assert.deepEqual(await written(server.url, reporter.jobId), [
        "status running",
        "good 1",
        "good 2",
        "good 3",
        "good 5",
        "good 6",
        "good 7",
        "progress 10",
        "result undefined",
        "status completed",
      ]);
    } finally {
      await reporter.close().catch(() => {});
    }
  });
});

Deno.test("JobReporter refuses lines and reports from the moment close() is called, and sends what came before", async () => {
  await withServer({}, async (server) => {
    const reporter = await JobReporter.create(server.url, { ...FAST, logFlushMs: 60_000 });
    await reporter.started();
    reporter.log("before close");
    const closing = reporter.close();
    assert.throws(() => reporter.log("during close"), { code: "closed" });
    await assert.rejects(reporter.progress(5), { code: "closed" });
    await closing;
    const lines = (await events(server.url, reporter.jobId)).filter((e) => e.type === "log")
      .map((e) => e.data.line);
    assert.deepEqual(lines, ["before close"]);
  });
});

Deno.test("JobReporter's aborted report rejects with the signal's reason whether or not lines wait", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  listener.close();
  for (const withLines of [false, true]) {
    const abort = new AbortController();
    const reporter = new JobReporter(url, "gone", {
      retries: 1,
      initialDelayMs: 10,
      maxDelayMs: 10,
      logFlushMs: 60_000,
      signal: abort.signal,
    });
    if (withLines) reporter.log("waiting");
    const progress = reporter.progress(10);
    abort.abort(new DOMException("Stopped by the test", "AbortError"));
    await assert.rejects(progress, { name: "AbortError", message: "Stopped by the test" });
  }
});

Deno.test("JobReporter sends a line logged after a report after it, and refuses calls after close with a rejected promise", async () => {
  await withServer({}, async (server) => {
    const reporter = await JobReporter.create(server.url, { ...FAST, logFlushMs: 60_000 });
    await reporter.started();
    reporter.log("before");
    const progress = reporter.progress(30);
    reporter.log("after");
    await progress;
    await reporter.close();
    assert.deepEqual(await written(server.url, reporter.jobId), [
      "status running",
      "before",
      "progress 30",
      "after",
    ]);
    const late = reporter.progress(40);
    assert.ok(late instanceof Promise);
    await assert.rejects(late, { code: "closed" });
  });
});

Deno.test("create takes as its own a job the runtime made by sending its request twice, when the id was its own", async () => {
  await withServer({}, async (server) => {
    // As fetch does when a reused connection closes before the reply: the request goes
    // again, and only the second answer (job_exists) is seen.
    const twice = async (input: string, init?: RequestInit) => {
      if (init?.method === "POST" && input.endsWith("/jobs")) {
        await (await fetch(input, init)).body?.cancel();
      }
      return fetch(input, init);
    };
    const reporter = await JobReporter.create(server.url, { kind: "twice", fetch: twice });
    assert.equal(reporter.job?.kind, "twice");
    await reporter.close();
    // An id the caller chose may be someone else's: taken, it is refused as before.
    await assert.rejects(
      JobReporter.create(server.url, { id: reporter.jobId, fetch: twice }),
      (error: unknown) => error instanceof JobwireError && error.code === "job_exists",
    );
  });
});
