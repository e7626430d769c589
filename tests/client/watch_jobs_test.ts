import assert from "node:assert/strict";
import { JobReporter, watchJob, watchJobs } from "../../src/client/mod.ts";
import { createJob, http, logEvent, publish, waitFor } from "../_helpers/clients.ts";
import { startTestServer, type TestServer, withServer } from "../_helpers/server.ts";
import { range, Recorder } from "../_helpers/watch.ts";

Deno.test("watchJobs follows several jobs over one socket and resumes each from its own sequence", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-client-" });
  let server: TestServer = await startTestServer({}, { dataDir });
  const port = server.port;
  const a = await createJob(server.url, { id: "job-a" });
  const b = await createJob(server.url, { id: "job:b" });
  await publish(server.url, a, logEvent(1), logEvent(2), logEvent(3));
  const watcher = watchJobs(server.url, { jobs: [a, b], since: { [a]: 1 }, initialDelayMs: 10 });
  const rec = new Recorder(watcher);
  try {
    await rec.until(3, a);
    assert.equal(watcher.transport, "websocket");
    await publish(server.url, b, logEvent("b1"));
    await rec.until(1, b);
    await server.shutdown();
    server = await startTestServer({ port }, { dataDir });
    await publish(server.url, a, logEvent(4));
    await publish(server.url, b, logEvent("b2"), logEvent("b3"));
    await rec.until(4, a);
    await rec.until(3, b);
    assert.deepEqual(rec.sequences(a), [2, 3, 4]);
    assert.deepEqual(rec.sequences(b), range(3));
    assert.equal(rec.all("connected").length, 2);
    assert.equal(watcher.lastSequence(a), 4);
    assert.equal(watcher.jobs.get(b)?.last_sequence, 3);
  } finally {
    watcher.close();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

for (const transport of ["sse", "poll"] as const) {
  Deno.test(`watchJobs over ${transport} goes on with the other jobs when one is deleted, across a restart`, async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-client-" });
    let server: TestServer = await startTestServer({}, { dataDir });
    const port = server.port;
    const a = await createJob(server.url, { id: "gone-a" });
    const b = await createJob(server.url, { id: "kept-b" });
    const watcher = watchJobs(server.url, {
      jobs: [a, b],
      transports: [transport],
      initialDelayMs: 10,
      maxDelayMs: 200,
      pollWaitSeconds: 1,
    });
    const rec = new Recorder(watcher);
    try {
      await publish(server.url, b, logEvent("b1"));
      await rec.until(1, b);
      assert.equal((await http(server.url, "DELETE", `/jobs/${a}`)).status, 200);
      const deleted = await rec.next("deleted");
      assert.equal(deleted.job_id, a);
      await publish(server.url, b, logEvent("b2"));
      await rec.until(2, b);
      // A restart makes the stream reconnect: it must not name the deleted job again.
      await server.shutdown();
      server = await startTestServer({ port }, { dataDir });
      await publish(server.url, b, logEvent("b3"));
      await rec.until(3, b);
      assert.deepEqual(rec.sequences(b), range(3));
      assert.equal(rec.all("closed").length, 0, "the watcher is still open");
    } finally {
      watcher.close();
      await server.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    }
  });
}

Deno.test("watchJobs with all follows every visible job, including new ones", async () => {
  await withServer({}, async (server) => {
    const old = await createJob(server.url, { kind: "train" });
    await publish(server.url, old, logEvent(1));
    const watcher = watchJobs(server.url, { all: true, kind: "train" });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connected");
      await rec.next("connection");
      assert.equal(watcher.jobs.get(old)?.last_sequence, 1);
      const fresh = await createJob(server.url, { kind: "train" });
      const other = await createJob(server.url, { kind: "deploy" });
      assert.equal((await rec.next("created")).job_id, fresh);
      await publish(server.url, other, logEvent("ignored"));
      await publish(server.url, fresh, { type: "status", data: { status: "running" } });
      await publish(server.url, old, logEvent(2));
      await rec.until(2, old);
      await rec.until(1, fresh);
      assert.deepEqual(rec.sequences(old), [2]);
      assert.deepEqual(rec.sequences(other), []);
      assert.equal(watcher.jobs.get(fresh)?.status, "running");
      await http(server.url, "DELETE", `/jobs/${fresh}`);
      assert.equal((await rec.next("deleted")).job_id, fresh);
      assert.equal(watcher.state, "connected");
    } finally {
      watcher.close();
    }
  });
});

Deno.test("an all watcher reports finished only for jobs that end while it watches", async () => {
  await withServer({}, async (server) => {
    const running = { type: "status", data: { status: "running" } };
    const old = await createJob(server.url);
    await publish(server.url, old, running);
    assert.equal((await http(server.url, "POST", `/jobs/${old}/complete`, {})).status, 201);
    const watcher = watchJobs(server.url, { all: true });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connection");
      assert.equal(watcher.jobs.get(old)?.status, "completed");
      const live = await createJob(server.url);
      await publish(server.url, live, running);
      assert.equal(
        (await http(server.url, "POST", `/jobs/${live}/fail`, { error: "x" })).status,
        201,
      );
      const finished = await rec.next("finished");
      assert.deepEqual([finished.job_id, finished.status], [live, "failed"]);
      assert.deepEqual(rec.all("finished").map((f) => f.job_id), [live]);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("an all watcher catches up on jobs that moved while it was disconnected", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-client-" });
  let server: TestServer = await startTestServer({}, { dataDir });
  const port = server.port;
  const id = await createJob(server.url);
  const watcher = watchJobs(server.url, { all: true, initialDelayMs: 10 });
  const rec = new Recorder(watcher);
  try {
    await rec.next("connection");
    await publish(server.url, id, logEvent(1));
    await rec.until(1, id);
    await server.shutdown();
    const offline = await startTestServer({}, { dataDir });
    await publish(offline.url, id, logEvent(2), logEvent(3));
    await offline.shutdown();
    server = await startTestServer({ port }, { dataDir });
    await rec.next("connected", 2);
    assert.deepEqual(await rec.until(3, id), [1, 2, 3]);
    assert.deepEqual(rec.all("gap").map((g) => [g.from, g.to]), [[2, 3]]);
  } finally {
    watcher.close();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("watchJobs refuses options that name nothing", () => {
  assert.throws(() => watchJobs("http://127.0.0.1:9", {}), TypeError);
  assert.throws(() => watchJobs("http://127.0.0.1:9", { jobs: ["a"], since: -1 }), RangeError);
});

Deno.test("watchJobs refuses more jobs than one stream may name, saying so, and takes 100", () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `job-${i}`);
  assert.throws(
    () => watchJobs("http://127.0.0.1:9", { jobs: ids(101) }),
    (e) =>
      e instanceof TypeError && /at most 100 jobs/.test(e.message) && /not 101/.test(e.message),
  );
  // Named twice counts once.
  watchJobs("http://127.0.0.1:9", { jobs: [...ids(100), "job-0"] })
    .close();
});

Deno.test("watchJobs goes on without a named job the server does not have, then finishes", async () => {
  await withServer({}, async (server) => {
    for (const transport of ["websocket", "sse", "poll"] as const) {
      const done = await createJob(server.url);
      await http(server.url, "POST", `/jobs/${done}/start`, {});
      assert.equal((await http(server.url, "POST", `/jobs/${done}/complete`, {})).status, 201);
      const deleted = await createJob(server.url);
      await http(server.url, "DELETE", `/jobs/${deleted}`);
      const running = await createJob(server.url);
      await http(server.url, "POST", `/jobs/${running}/start`, {});
      const watcher = watchJobs(server.url, {
        jobs: [done, deleted, "never-made", running],
        transports: [transport],
        pollWaitSeconds: 1,
        initialDelayMs: 10,
      });
      const rec = new Recorder(watcher);
      try {
        await rec.next("connected");
        assert.equal((await http(server.url, "POST", `/jobs/${running}/complete`, {})).status, 201);
        const closed = await rec.next("closed");
        assert.equal(closed.reason, "finished", transport);
        assert.equal(rec.all("connected").length, 1, `${transport}: connected once`);
        const codes = rec.all("error").map((e) => e.code).sort();
        assert.deepEqual(codes, ["job_gone", "job_not_found"], transport);
      } finally {
        watcher.close();
      }
    }
  });
});

Deno.test("watchJobs finishes, without an error, when the last job it follows is deleted", async () => {
  await withServer({}, async (server) => {
    for (const transport of ["websocket", "sse", "poll"] as const) {
      const id = await createJob(server.url);
      const watcher = watchJobs(server.url, {
        jobs: ["never-made", id],
        transports: [transport],
        pollWaitSeconds: 1,
        initialDelayMs: 10,
      });
      const rec = new Recorder(watcher);
      try {
        await rec.next("connected");
        await rec.next("error");
        assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
        const closed = await rec.next("closed");
        assert.equal(closed.reason, "finished", transport);
        assert.deepEqual(rec.all("deleted").map((d) => d.job_id), [id], transport);
        assert.deepEqual(rec.all("error").map((e) => e.code), ["job_not_found"], transport);
      } finally {
        watcher.close();
      }
    }
  });
});

Deno.test("an all watcher hands on the state and the deletion of jobs older than its greeting lists", async () => {
  await withServer({}, async (server) => {
    const [older, oldest] = [await createJob(server.url), await createJob(server.url)];
    // The greeting lists the newest 200 jobs: these two are left out of it.
    for (let i = 0; i < 200; i++) await createJob(server.url);
    const watcher = watchJobs(server.url, { all: true });
    const rec = new Recorder(watcher);
    try {
      const greeting = await rec.next("connection");
      const listed = (greeting.data.jobs as { id: string }[]).map((job) => job.id);
      assert.ok(!listed.includes(older) && !listed.includes(oldest));
      await publish(server.url, older, { type: "status", data: { status: "running" } });
      const snapshot = await rec.next("snapshot", 201);
      assert.deepEqual([snapshot.job_id, snapshot.job.status], [older, "running"]);
      assert.equal(watcher.jobs.get(older)?.status, "running");
      assert.deepEqual(rec.sequences(older), [1]);
      assert.equal((await http(server.url, "DELETE", `/jobs/${oldest}`)).status, 200);
      const deleted = await rec.next("deleted");
      assert.equal(deleted.job_id, oldest);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("a watcher's snapshot turns stalled with the server's warning and back with the next event", async () => {
  await withServer({ "stall-after": "300ms" }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, { type: "status", data: { status: "running" } });
    const watcher = watchJobs(server.url, { jobs: [id] });
    const rec = new Recorder(watcher);
    try {
      await rec.next("connection");
      const stalled = await waitFor(
        () => rec.all("snapshot").find((s) => s.job.stalled === true),
        5000,
        "a stalled snapshot",
      );
      assert.equal(stalled.job.last_sequence, 2);
      assert.equal(watcher.jobs.get(id)?.stalled, true);
      const before = rec.all("snapshot").length;
      // A log line is no state change, but it ends the quiet spell.
      await publish(server.url, id, logEvent("back"));
      const cleared = await rec.next("snapshot", before + 1);
      assert.deepEqual([cleared.job.stalled, cleared.job.last_sequence], [false, 3]);
      const onServer = (await http(server.url, "GET", `/jobs/${id}`)).json;
      assert.equal(onServer.stalled, false);
    } finally {
      watcher.close();
    }
  });
});

Deno.test("watchers and reporters refuse a base URL that is not an absolute http(s) URL, at once", () => {
  for (const url of ["127.0.0.1:8080", "localhost:8080", "http//127.0.0.1:8080", "", "ws://x"]) {
    const named = (e: unknown) =>
      e instanceof TypeError && /absolute http\(s\) URL/.test(e.message) &&
      e.message.includes(JSON.stringify(url));
    assert.throws(() => watchJob(url, "job-1"), named, url);
    assert.throws(() => watchJobs(url, { jobs: ["a"] }), named, url);
    assert.throws(() => new JobReporter(url, "job-1"), named, url);
  }
  watchJob("https://jobs.example:8443/base/", "job-1").close();
});

Deno.test("an all watcher left with long-poll alone says why it cannot watch", () => {
  assert.throws(
    () => watchJobs("http://127.0.0.1:9", { all: true, transports: ["poll"] }),
    (e) => e instanceof TypeError && /all: true cannot use long-poll/.test(e.message),
  );
});

Deno.test("a long-poll watcher asks at most once a second however short its wait", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    let asked = 0;
    const counting = (input: string | URL | Request, init?: RequestInit) => {
      if (String(input).includes("/events")) asked++;
      return fetch(input, init);
    };
    for (const pollWaitSeconds of [0, 0.5, -3, Number.NaN]) {
      asked = 0;
      const watcher = watchJob(server.url, id, {
        transports: ["poll"],
        pollWaitSeconds,
        fetch: counting,
      });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      watcher.close();
      // The first read, then waits of a second or more.
      assert.ok(asked <= 3, `pollWaitSeconds ${pollWaitSeconds}: ${asked} requests`);
    }
  });
});
