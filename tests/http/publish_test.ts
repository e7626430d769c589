import assert from "node:assert/strict";
import {
  createJob,
  http,
  logEvent,
  type Msg,
  publish,
  type Reply,
  waitFor,
  WsClient,
} from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";

/** Asserts the JSON error shape with `status` and `code`. */
function assertError(reply: Reply, status: number, code: string): void {
  assert.equal(
    reply.status,
    status,
    `expected ${status} ${code}, got ${reply.status} ${reply.text}`,
  );
  assert.match(reply.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(typeof reply.json?.error, "object", reply.text);
  assert.equal(reply.json.error.code, code);
  assert.equal(typeof reply.json.error.message, "string");
  assert.ok(reply.json.error.message.length > 0);
  for (const key of Object.keys(reply.json.error)) {
    assert.ok(["code", "message", "details"].includes(key), `unexpected error field ${key}`);
  }
}

/** Asserts a 422 whose `details` list `[{path, message}]` and name `path`. */
function assertInvalid(reply: Reply, path: string): void {
  assertError(reply, 422, "validation_error");
  const details = reply.json.error.details;
  assert.ok(Array.isArray(details) && details.length > 0, `details listed: ${reply.text}`);
  for (const issue of details) {
    assert.equal(typeof issue.path, "string");
    assert.equal(typeof issue.message, "string");
  }
  assert.ok(
    details.some((d: { path: string }) => d.path === path),
    `details name ${path}: ${reply.text}`,
  );
}

/** What is persisted for a job: its snapshot and every retained event. */
async function persisted(base: string, id: string): Promise<{ job: Msg; events: Msg[] }> {
  const job = await http(base, "GET", `/jobs/${id}`);
  assert.equal(job.status, 200, job.text);
  const page = await http(base, "GET", `/jobs/${id}/events?since=0&limit=1000`);
  assert.equal(page.status, 200, page.text);
  return { job: job.json, events: page.json.events };
}

/** Asserts that nothing was written since `before` was taken. */
async function assertUnchanged(
  base: string,
  id: string,
  before: { job: Msg; events: Msg[] },
): Promise<void> {
  const after = await persisted(base, id);
  assert.equal(after.job.last_sequence, before.job.last_sequence);
  assert.equal(after.job.status, before.job.status);
  assert.deepEqual(after.events, before.events);
}

/** The value of an unlabelled Prometheus sample. */
async function metric(base: string, name: string): Promise<number> {
  const text = (await http(base, "GET", "/metrics")).text;
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `metric ${name} present`);
  return Number(line.split(" ")[1]);
}

const status = (value: string, message?: string) => ({
  type: "status",
  data: message === undefined ? { status: value } : { status: value, message },
});

async function eventsOf(base: string, id: string): Promise<Msg[]> {
  return (await persisted(base, id)).events;
}

Deno.test("publish of one event answers 201 with its sequence, status and watchers", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const reply = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("hello"));
    assert.equal(reply.status, 201, reply.text);
    assert.equal(reply.json.job_id, id);
    assert.deepEqual(reply.json.sequences, [1]);
    assert.equal(reply.json.last_sequence, 1);
    assert.equal(reply.json.status, "pending");
    assert.equal(reply.json.watchers, 0);
    assert.equal(reply.json.replayed, false);
    assert.equal(reply.headers.get("x-watchers"), "0");

    const second = await http(server.url, "POST", `/jobs/${id}/events`, status("running"));
    assert.deepEqual(second.json.sequences, [2]);
    assert.equal(second.json.last_sequence, 2);
    assert.equal(second.json.status, "running");

    const events = await eventsOf(server.url, id);
    assert.deepEqual(events.map((e) => e.sequence), [1, 2]);
    assert.deepEqual(Object.keys(events[0]), ["type", "job_id", "sequence", "timestamp", "data"]);
    assert.equal(events[0].data.line, "hello");
    assert.equal(events[0].data.level, "info");
  });
});

Deno.test("watchers counts the clients a publish reached, those it ended included", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    // A long-poll the publish answers.
    const page = fetch(`${server.url}/jobs/${id}/events?since=1&wait=30`);
    await waitFor(
      async () => (await http(server.url, "GET", "/stats")).json.connections.long_poll === 1,
      5000,
      "the long-poll to wait",
    );
    const woke = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("wake"));
    assert.equal(woke.json.watchers, 1, woke.text);
    assert.equal(woke.headers.get("x-watchers"), "1");
    assert.equal((await (await page).json()).events.length, 1);
    // Two streams the job's end closes.
    const sockets = [
      await WsClient.connect(`${server.url}/ws/jobs/${id}?close_on_finish=1`),
      await WsClient.connect(`${server.url}/ws/jobs/${id}?close_on_finish=1`),
    ];
    try {
      for (const ws of sockets) await ws.next((m: Msg) => m.type === "connection");
      const done = await http(server.url, "POST", `/jobs/${id}/complete`, { result: 1 });
      assert.equal(done.status, 201, done.text);
      assert.equal(done.json.watchers, 2, done.text);
      for (const ws of sockets) assert.equal((await ws.closed).code, 1000);
    } finally {
      for (const ws of sockets) await ws.close();
    }
  });
});

Deno.test("a batch gets contiguous sequences in the order sent", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("first"));
    const reply = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent("a"), status("running"), logEvent("b"), {
        type: "progress",
        data: { progress: 10 },
      }],
    });
    assert.equal(reply.status, 201, reply.text);
    assert.deepEqual(reply.json.sequences, [2, 3, 4, 5]);
    assert.equal(reply.json.last_sequence, 5);
    assert.equal(reply.json.status, "running");
    const events = await eventsOf(server.url, id);
    assert.deepEqual(events.map((e) => [e.sequence, e.type]), [
      [1, "log"],
      [2, "log"],
      [3, "status"],
      [4, "log"],
      [5, "progress"],
    ]);
    assert.deepEqual(events.map((e) => e.data.line ?? null), ["first", "a", null, "b", null]);
  });
});

Deno.test("concurrent publishes to one job get distinct gap-free sequences", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => publish(server.url, id, logEvent(i), logEvent(i))),
    );
    const all = replies.flat().sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: 40 }, (_, i) => i + 1));
    for (const pair of replies) assert.equal(pair[1], pair[0]! + 1);
    assert.equal((await persisted(server.url, id)).job.last_sequence, 40);
  });
});

Deno.test("x-watchers and watchers count the open websocket watchers of the job", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const other = await createJob(server.url);
    const a = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    const b = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
    const elsewhere = await WsClient.connect(`${server.url}/ws/jobs/${other}`);
    try {
      await a.next((m) => m.type === "connection");
      await b.next((m) => m.type === "connection");
      await elsewhere.next((m) => m.type === "connection");
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("x"));
      assert.equal(reply.status, 201);
      assert.equal(reply.headers.get("x-watchers"), "2");
      assert.equal(reply.json.watchers, 2);

      await b.close();
      await waitFor(
        async () => {
          const probe = await http(server.url, "GET", `/jobs/${id}`);
          return probe.headers.get("x-watchers") === "1";
        },
        5000,
        "the closed watcher to leave",
      );
      const after = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("y"));
      assert.equal(after.headers.get("x-watchers"), "1");
      assert.equal(after.json.watchers, 1);
    } finally {
      await a.close();
      await b.close();
      await elsewhere.close();
    }
  });
});

Deno.test("status aliases and upper-case forms map to canonical statuses", async () => {
  await withServer({}, async (server) => {
    const cases: [string, string][] = [
      ["in_progress", "running"],
      ["IN_PROGRESS", "running"],
      ["processing", "running"],
      ["PROCESSING", "running"],
      ["RUNNING", "running"],
      ["Running", "running"],
      ["QUEUED", "queued"],
      ["PENDING", "pending"],
    ];
    for (const [input, canonical] of cases) {
      const id = await createJob(server.url);
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, status(input));
      assert.equal(reply.status, 201, `${input}: ${reply.text}`);
      assert.equal(reply.json.status, canonical, input);
      const { job, events } = await persisted(server.url, id);
      assert.equal(job.status, canonical);
      assert.equal(events[0].data.status, canonical, `stored status of ${input}`);
    }
    const terminal: [string, string][] = [
      ["processed", "completed"],
      ["PROCESSED", "completed"],
      ["COMPLETED", "completed"],
      ["FAILED", "failed"],
      ["CANCELLED", "cancelled"],
    ];
    for (const [input, canonical] of terminal) {
      const id = await createJob(server.url);
      await publish(server.url, id, status("running"));
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, status(input));
      assert.equal(reply.status, 201, `${input}: ${reply.text}`);
      assert.equal(reply.json.status, canonical, input);
      const { events } = await persisted(server.url, id);
      assert.equal(events[1].data.status, canonical);
    }
  });
});

Deno.test("an unknown status is refused with 422 and nothing is written", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, status("sleeping")),
      "data.status",
    );
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, { type: "status", data: {} }),
      "data.status",
    );
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, { type: "status", data: { status: 3 } }),
      "data.status",
    );
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("the status machine accepts every allowed transition", async () => {
  await withServer({}, async (server) => {
    const paths = [
      ["queued", "running", "completed"],
      ["running", "completed"],
      ["queued", "failed"],
      ["queued", "cancelled"],
      ["running", "failed"],
      ["running", "cancelled"],
      ["failed"],
      ["cancelled"],
      ["queued", "queued", "running", "running", "completed"],
    ];
    for (const path of paths) {
      const id = await createJob(server.url);
      for (const next of path) {
        const reply = await http(server.url, "POST", `/jobs/${id}/events`, status(next));
        assert.equal(reply.status, 201, `pending→${path.join("→")} at ${next}: ${reply.text}`);
        assert.equal(reply.json.status, next);
      }
      const { job } = await persisted(server.url, id);
      assert.equal(job.status, path.at(-1));
      assert.equal(job.last_sequence, path.length);
    }
  });
});

Deno.test("the status machine refuses a backward or skipping transition with 409 invalid_transition", async () => {
  await withServer({}, async (server) => {
    const refused: [string[], string][] = [
      [["running"], "queued"],
      [["running"], "pending"],
      [["queued"], "pending"],
      [[], "completed"],
      [["queued"], "completed"],
    ];
    for (const [setup, next] of refused) {
      const id = await createJob(server.url);
      for (const s of setup) await publish(server.url, id, status(s));
      const before = await persisted(server.url, id);
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, status(next));
      assertError(reply, 409, "invalid_transition");
      await assertUnchanged(server.url, id, before);
    }
  });
});

Deno.test("a batch holding a refused transition writes none of its events", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("before"));
    const before = await persisted(server.url, id);
    const reply = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent("a"), { type: "result", data: { results: 1 } }, status("completed")],
    });
    assertError(reply, 409, "invalid_transition");
    await assertUnchanged(server.url, id, before);
    assert.equal(before.job.result, null);
    assert.equal((await persisted(server.url, id)).job.result, null);
  });
});

Deno.test("any event after a terminal status is refused with 409 job_finished and nothing is written", async () => {
  await withServer({}, async (server) => {
    for (const end of ["completed", "failed", "cancelled"]) {
      const id = await createJob(server.url);
      await publish(server.url, id, status("running"), status(end));
      const before = await persisted(server.url, id);
      const attempts: unknown[] = [
        logEvent("late"),
        { type: "progress", data: { progress: 50 } },
        status("running"),
        status(end),
        { type: "result", data: { results: { late: true } } },
        { type: "error", data: { error: "late" } },
        { type: "model_deployed", data: { version: 2 } },
        { events: [logEvent("a"), logEvent("b")] },
      ];
      for (const attempt of attempts) {
        const reply = await http(server.url, "POST", `/jobs/${id}/events`, attempt);
        assertError(reply, 409, "job_finished");
        // The status it ended in, so that a producer can tell a cancel from a completion.
        assert.deepEqual(reply.json.error.details, { status: end });
      }
      for (const shortcut of ["queue", "start", "cancel"]) {
        assertError(await http(server.url, "POST", `/jobs/${id}/${shortcut}`), 409, "job_finished");
      }
      assertError(
        await http(server.url, "POST", `/jobs/${id}/complete`, { result: 1 }),
        409,
        "job_finished",
      );
      assertError(
        await http(server.url, "POST", `/jobs/${id}/fail`, { error: "x" }),
        409,
        "job_finished",
      );
      await assertUnchanged(server.url, id, before);
      const after = await persisted(server.url, id);
      assert.equal(after.job.result, null);
      assert.equal(after.job.error, null);
    }
  });
});

Deno.test("a batch with an event after the status that ends the job is refused with 422 naming it, and the job goes on", async () => {
  await withServer({}, async (server) => {
    for (const end of ["completed", "failed", "cancelled"]) {
      const id = await createJob(server.url);
      await publish(server.url, id, status("running"));
      const before = await persisted(server.url, id);
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, {
        events: [logEvent("a"), status(end), logEvent("b")],
      });
      // Not 409 job_finished: the job has not ended, and a producer must not think it has.
      assertError(reply, 422, "validation_error");
      assert.equal(reply.json.error.details[0].path, "events.2");
      assert.match(reply.json.error.message, /events\.1, which ends the job/);
      await assertUnchanged(server.url, id, before);
      assert.equal((await persisted(server.url, id)).job.status, "running");
      // The same events with the end last commit together.
      await publish(server.url, id, logEvent("a"), logEvent("b"), status(end));
      assert.equal((await persisted(server.url, id)).job.status, end);
    }
  });
});

Deno.test("progress gets a percentage, and current/total compute the progress", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    await publish(server.url, id, {
      type: "progress",
      data: { progress: 45.5, stage: "MCMC", message: "Sampling" },
    });
    let { job, events } = await persisted(server.url, id);
    assert.equal(events[1].data.percentage, "45.5%");
    assert.equal(events[1].data.progress, 45.5);
    assert.equal(job.progress, 45.5);
    assert.equal(job.stage, "MCMC");
    assert.equal(job.message, "Sampling");

    await publish(server.url, id, { type: "progress", data: { current: 3, total: 4 } });
    ({ job, events } = await persisted(server.url, id));
    assert.equal(events[2].data.progress, 75);
    assert.equal(events[2].data.percentage, "75%");
    assert.equal(events[2].data.current, 3);
    assert.equal(events[2].data.total, 4);
    assert.equal(job.progress, 75);
    assert.equal(job.stage, "MCMC");

    await publish(server.url, id, { type: "progress", data: { progress: 0 } });
    await publish(server.url, id, { type: "progress", data: { progress: 100 } });
    ({ events } = await persisted(server.url, id));
    assert.equal(events[3].data.percentage, "0%");
    assert.equal(events[4].data.percentage, "100%");
  });
});

Deno.test("a progress update whose status would leave the job as it was is refused with 422, and nothing is written", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    const before = await persisted(server.url, id);
    // A producer reporting its end with its last progress, as one call did in its own channel.
    let reply = await http(server.url, "POST", `/jobs/${id}/progress`, {
      status: "processed",
      progress: 100,
    });
    assertInvalid(reply, "status");
    assert.match(reply.json.error.message, /"completed" as a status event/);
    reply = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent("a"), { type: "progress", data: { status: "uploading", progress: 10 } }],
    });
    assertInvalid(reply, "events.1.data.status");
    assert.match(reply.json.error.message, /goes in stage/);
    await assertUnchanged(server.url, id, before);
    // Said with a status event in the same batch, the end is taken.
    await publish(server.url, id, {
      type: "progress",
      data: { progress: 100, status: "in_progress" },
    }, status("processed"));
    assert.equal((await persisted(server.url, id)).job.status, "completed");
  });
});

Deno.test("the routes a refused progress status names exist", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const reply = await http(server.url, "POST", `/jobs/${id}/progress`, {
      status: "cancelled",
      progress: 10,
    });
    assertInvalid(reply, "status");
    const routes = [...reply.json.error.message.matchAll(/\/jobs\/:id(\/[a-z]+)?/g)];
    assert.ok(routes.length >= 3, reply.json.error.message);
    const bodies: Record<string, unknown> = {
      "/fail": { error: "x" },
      "/events": { type: "status", data: { status: "cancelled" } },
    };
    for (const [, route = ""] of routes) {
      // A route that exists says the job is unknown; a missing one, that the route is.
      const answer = await http(
        server.url,
        "POST",
        `/jobs/no-such-job${route}`,
        bodies[route] ?? {},
      );
      assertError(answer, 404, "job_not_found");
    }
  });
});

Deno.test("a progress event that says running starts a pending or queued job; one that says nothing leaves it", async () => {
  await withServer({}, async (server) => {
    for (const before of ["pending", "queued"]) {
      const id = await createJob(server.url);
      if (before === "queued") await publish(server.url, id, status("queued"));
      await publish(server.url, id, { type: "progress", data: { progress: 5 } });
      assert.equal((await persisted(server.url, id)).job.status, before);
      // As channels that report "in progress" with each step do.
      await publish(server.url, id, {
        type: "progress",
        data: { status: "IN_PROGRESS", progress: 45, stage: "transcribing" },
      });
      const { job, events } = await persisted(server.url, id);
      assert.equal(job.status, "running", before);
      assert.equal(job.started_at, events.at(-1).timestamp);
      assert.equal(events.at(-1).data.status, "running");
      assert.equal(job.progress, 45);
      // Started, it may end as any running job.
      await publish(server.url, id, status("processed"));
      assert.equal((await persisted(server.url, id)).job.status, "completed");
    }
  });
});

Deno.test("a start or an end without a message of its own leaves no earlier message on the job", async () => {
  await withServer({}, async (server) => {
    for (
      const [end, message] of [["completed", undefined], ["cancelled", undefined], [
        "failed",
        "out of memory",
      ]] as const
    ) {
      const id = await createJob(server.url);
      await publish(server.url, id, status("running"), {
        type: "progress",
        data: { progress: 50, stage: "transcribing", message: "Transcribing audio…" },
      });
      await publish(server.url, id, {
        type: "status",
        data: message === undefined ? { status: end } : { status: end, message },
      });
      const { job } = await persisted(server.url, id);
      assert.equal(job.status, end);
      assert.equal(job.message, message ?? null, end);
      // The stage tells how far the job came.
      assert.equal(job.stage, "transcribing");
    }
    // A move into the queue keeps the message it had.
    const id = await createJob(server.url);
    await publish(server.url, id, {
      type: "progress",
      data: { progress: 1, message: "waiting for a worker" },
    }, status("queued"));
    assert.equal((await persisted(server.url, id)).job.message, "waiting for a worker");
    // A start without a message of its own leaves no word of the wait, whether a status event
    // or a progress event saying running starts it.
    await publish(server.url, id, status("running"));
    assert.equal((await persisted(server.url, id)).job.message, null);
    const other = await createJob(server.url);
    await publish(server.url, other, {
      type: "status",
      data: { status: "queued", message: "Position 2 in queue" },
    });
    await publish(server.url, other, {
      type: "progress",
      data: { progress: 5, status: "running" },
    });
    const started = (await persisted(server.url, other)).job;
    assert.equal(started.status, "running");
    assert.equal(started.message, null);
    // A running job's status said again keeps its message.
    await publish(server.url, other, {
      type: "progress",
      data: { progress: 6, message: "Transcribing audio…" },
    }, status("running"));
    assert.equal((await persisted(server.url, other)).job.message, "Transcribing audio…");
  });
});

Deno.test("progress gets an automatic ETA when the producer gives none", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    // The estimate needs at least one second of history; this is the only sleep in the file.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await publish(server.url, id, { type: "progress", data: { progress: 50 } });
    const { job, events } = await persisted(server.url, id);
    const progress = events[1];
    assert.equal(progress.type, "progress");
    assert.equal(typeof progress.data.eta_seconds, "number");
    assert.ok(progress.data.eta_seconds > 0, `eta ${progress.data.eta_seconds}`);
    assert.equal(progress.data.eta_estimated, true);
    assert.equal(job.eta_seconds, progress.data.eta_seconds);
  });
});

Deno.test("progress keeps the producer's eta_seconds as given", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    await publish(server.url, id, { type: "progress", data: { progress: 20, eta_seconds: 42 } });
    const { job, events } = await persisted(server.url, id);
    assert.equal(events[1].data.eta_seconds, 42);
    assert.ok(!("eta_estimated" in events[1].data) || events[1].data.eta_estimated === false);
    assert.equal(job.eta_seconds, 42);
  });
});

Deno.test("log levels accept aliases and any letter case; an unknown level is refused with 422", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const levels: [string, string][] = [
      ["WARN", "warning"],
      ["warn", "warning"],
      ["Warning", "warning"],
      ["DEBUG", "debug"],
      ["INFO", "info"],
      ["ERROR", "error"],
    ];
    for (const [input, canonical] of levels) {
      await publish(server.url, id, { type: "log", data: { line: input, level: input } });
      const events = await eventsOf(server.url, id);
      assert.equal(events.at(-1).data.level, canonical, input);
    }
    await publish(server.url, id, { type: "log", data: { line: "no level" } });
    assert.equal((await eventsOf(server.url, id)).at(-1).data.level, "info");

    const before = await persisted(server.url, id);
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, {
        type: "log",
        data: { line: "x", level: "loud" },
      }),
      "data.level",
    );
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, {
        type: "log",
        data: { level: "info" },
      }),
      "data.line",
    );
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("an error event defaults error_type to general and sets the job's error", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, { type: "error", data: { error: "GPU out of memory" } });
    let { job, events } = await persisted(server.url, id);
    assert.equal(events[0].data.error_type, "general");
    assert.deepEqual(job.error, { error: "GPU out of memory", error_type: "general" });
    assert.equal(job.status, "pending");

    await publish(server.url, id, {
      type: "error",
      data: { error: "bad row", error_type: "validation_error", details: { row: 7 } },
    });
    ({ job, events } = await persisted(server.url, id));
    assert.equal(events[1].data.error_type, "validation_error");
    assert.deepEqual(job.error, {
      error: "bad row",
      error_type: "validation_error",
      details: { row: 7 },
    });

    const before = await persisted(server.url, id);
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, {
        type: "error",
        data: { error: "x", error_type: "Not-Valid" },
      }),
      "data.error_type",
    );
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, { type: "error", data: {} }),
      "data.error",
    );
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("a result event sets the job's result", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const results = { recommendations: [{ id: 1, score: 0.9 }], total: 1 };
    await publish(server.url, id, { type: "result", data: { results } });
    const { job, events } = await persisted(server.url, id);
    assert.deepEqual(events[0].data.results, results);
    assert.deepEqual(job.result, results);
    assert.equal(job.has_result, true);
    assert.equal(job.status, "pending");
  });
});

Deno.test("custom event types pass through with any object data", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const recommendation = {
      user_id: "u-1",
      items: [{ sku: "A", score: 0.91 }, { sku: "B", score: 0.42 }],
      nested: { deep: { list: [1, "two", null, true] } },
    };
    const training = { epoch: 3, loss: 0.125, metrics: { acc: 0.97 } };
    const seqs = await publish(
      server.url,
      id,
      { type: "recommendation_update", data: recommendation },
      { type: "training_progress", data: training },
      { type: "model.deployed:v2-final", data: {} },
      { type: "no_data" },
    );
    assert.deepEqual(seqs, [1, 2, 3, 4]);
    const { job, events } = await persisted(server.url, id);
    assert.deepEqual(events.map((e) => e.type), [
      "recommendation_update",
      "training_progress",
      "model.deployed:v2-final",
      "no_data",
    ]);
    assert.deepEqual(events[0].data, recommendation);
    assert.deepEqual(events[1].data, training);
    assert.deepEqual(events[3].data, {});
    assert.equal(job.status, "pending");
    assert.equal(job.progress, 0);
  });
});

Deno.test("reserved session names and bad type patterns are refused with 422", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    const reserved = ["connection", "heartbeat", "pong", "ping", "subscribed", "unsubscribed"];
    for (const type of reserved) {
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, { type, data: {} });
      assertInvalid(reply, "type");
    }
    const badPatterns = [
      "",
      "Upper",
      "1starts_with_digit",
      "has space",
      "_leading",
      "emoji🙂",
      "x".repeat(65),
      "slash/type",
    ];
    for (const type of badPatterns) {
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, { type, data: {} });
      assertInvalid(reply, "type");
    }
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/events`, { type: 5, data: {} }),
      "type",
    );
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("lifecycle shortcuts queue, start, progress, log and cancel publish their events", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const queued = await http(server.url, "POST", `/jobs/${id}/queue`);
    assert.equal(queued.status, 201, queued.text);
    assert.deepEqual(queued.json.sequences, [1]);
    assert.equal(queued.json.status, "queued");

    const started = await http(server.url, "POST", `/jobs/${id}/start`, { message: "Go" });
    assert.equal(started.status, 201, started.text);
    assert.equal(started.json.status, "running");

    const progress = await http(server.url, "POST", `/jobs/${id}/progress`, {
      progress: 30,
      stage: "encode",
    });
    assert.equal(progress.status, 201, progress.text);
    assert.deepEqual(progress.json.sequences, [3]);

    const one = await http(server.url, "POST", `/jobs/${id}/log`, { line: "one", level: "WARN" });
    assert.equal(one.status, 201, one.text);
    assert.deepEqual(one.json.sequences, [4]);

    const many = await http(server.url, "POST", `/jobs/${id}/log`, {
      lines: ["two", "three", { line: "four", level: "error" }],
      level: "debug",
      source: "stderr",
    });
    assert.equal(many.status, 201, many.text);
    assert.deepEqual(many.json.sequences, [5, 6, 7]);

    const cancelled = await http(server.url, "POST", `/jobs/${id}/cancel`, { reason: "user" });
    assert.equal(cancelled.status, 201, cancelled.text);
    assert.equal(cancelled.json.status, "cancelled");

    const { job, events } = await persisted(server.url, id);
    assert.deepEqual(events.map((e) => e.type), [
      "status",
      "status",
      "progress",
      "log",
      "log",
      "log",
      "log",
      "status",
    ]);
    assert.deepEqual(events[0].data, { status: "queued" });
    assert.deepEqual(events[1].data, { status: "running", message: "Go" });
    assert.equal(events[2].data.progress, 30);
    assert.equal(events[2].data.percentage, "30%");
    assert.equal(events[3].data.level, "warning");
    assert.deepEqual(events.slice(4, 7).map((e) => [e.data.line, e.data.level, e.data.source]), [
      ["two", "debug", "stderr"],
      ["three", "debug", "stderr"],
      ["four", "error", "stderr"],
    ]);
    assert.equal(events[7].data.status, "cancelled");
    assert.equal(events[7].data.message, "user");
    assert.equal(job.status, "cancelled");
    assert.equal(job.stage, "encode");
    assert.notEqual(job.completed_at, null);
  });
});

Deno.test("shortcuts validate their bodies and write nothing when refused", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    const before = await persisted(server.url, id);
    assertInvalid(
      await http(server.url, "POST", `/jobs/${id}/progress`, { progress: "abc" }),
      "progress",
    );
    assertError(
      await http(server.url, "POST", `/jobs/${id}/log`, { lines: ["ok", { level: "info" }] }),
      422,
      "validation_error",
    );
    assertError(await http(server.url, "POST", `/jobs/${id}/fail`, {}), 422, "validation_error");
    assertError(
      await http(server.url, "POST", `/jobs/${id}/queue`),
      409,
      "invalid_transition",
    );
    assertError(await http(server.url, "POST", "/jobs/nope/start"), 404, "job_not_found");
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("the log shortcut refuses an empty lines list with 422", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    const before = await persisted(server.url, id);
    const reply = await http(server.url, "POST", `/jobs/${id}/log`, { lines: [] });
    assertError(reply, 422, "validation_error");
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("complete writes the result and the completed status atomically in one commit", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    await publish(server.url, id, logEvent("working"));
    const reply = await http(server.url, "POST", `/jobs/${id}/complete`, {
      result: { words: 1200, language: "en" },
      message: "Done",
    });
    assert.equal(reply.status, 201, reply.text);
    assert.deepEqual(reply.json.sequences, [3, 4]);
    assert.equal(reply.json.status, "completed");
    assert.equal(reply.json.last_sequence, 4);
    const { job, events } = await persisted(server.url, id);
    assert.deepEqual(events.slice(2).map((e) => [e.sequence, e.type]), [[3, "result"], [
      4,
      "status",
    ]]);
    assert.deepEqual(events[2].data.results, { words: 1200, language: "en" });
    assert.equal(events[3].data.status, "completed");
    assert.equal(events[2].timestamp, events[3].timestamp);
    assert.deepEqual(job.result, { words: 1200, language: "en" });
    assert.equal(job.has_result, true);
    assert.equal(job.status, "completed");
    assert.equal(job.message, "Done");
    assert.equal(job.progress, 100);
  });
});

Deno.test("complete without a result writes only the status", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    const reply = await http(server.url, "POST", `/jobs/${id}/complete`);
    assert.equal(reply.status, 201, reply.text);
    assert.deepEqual(reply.json.sequences, [2]);
    const { job } = await persisted(server.url, id);
    assert.equal(job.status, "completed");
    assert.equal(job.has_result, false);
  });
});

Deno.test("complete on a job that may not complete writes neither result nor status", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    const reply = await http(server.url, "POST", `/jobs/${id}/complete`, { result: { x: 1 } });
    assertError(reply, 409, "invalid_transition");
    await assertUnchanged(server.url, id, before);
    const { job } = await persisted(server.url, id);
    assert.equal(job.result, null);
    assert.equal(job.has_result, false);
  });
});

Deno.test("fail writes the error and the failed status atomically", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/queue`);
    const reply = await http(server.url, "POST", `/jobs/${id}/fail`, {
      error: "Input file is corrupt",
      error_type: "validation_error",
      details: { offset: 1024 },
    });
    assert.equal(reply.status, 201, reply.text);
    assert.deepEqual(reply.json.sequences, [2, 3]);
    assert.equal(reply.json.status, "failed");
    const { job, events } = await persisted(server.url, id);
    assert.deepEqual(events.slice(1).map((e) => e.type), ["error", "status"]);
    assert.equal(events[1].data.error, "Input file is corrupt");
    assert.equal(events[1].data.error_type, "validation_error");
    assert.equal(events[2].data.status, "failed");
    assert.deepEqual(job.error, {
      error: "Input file is corrupt",
      error_type: "validation_error",
      details: { offset: 1024 },
    });
    assert.equal(job.status, "failed");
    assert.notEqual(job.completed_at, null);

    const plain = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${plain}/fail`, { error: "boom" });
    assert.deepEqual((await persisted(server.url, plain)).job.error, {
      error: "boom",
      error_type: "general",
    });
  });
});

Deno.test("an event sent flat keeps its fields as data; fields beside data are refused, not dropped", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const path = `/jobs/${id}/events`;
    const flat = await http(server.url, "POST", path, {
      type: "model_deployed",
      model_name: "Customer Predictor v3.2",
      model_version: "v3.2",
      expected_sequence: 1,
    });
    assert.equal(flat.status, 201, flat.text);
    const batch = await http(server.url, "POST", path, {
      events: [{ type: "progress", progress: 45, stage: "train" }, {
        type: "system_alert",
        alert: { level: "high" },
      }],
    });
    assert.equal(batch.status, 201, batch.text);
    let events = await eventsOf(server.url, id);
    assert.deepEqual(events.map((e) => [e.type, e.data]), [
      ["model_deployed", { model_name: "Customer Predictor v3.2", model_version: "v3.2" }],
      ["progress", { progress: 45, stage: "train", percentage: "45%" }],
      ["system_alert", { alert: { level: "high" } }],
    ]);
    // With data, other fields would be lost: refused, naming them, and nothing is written.
    const before = await persisted(server.url, id);
    const mixed = await http(server.url, "POST", path, {
      type: "recommendation_update",
      diagnosis_id: 123,
      data: { text: "rest" },
    });
    assertInvalid(mixed, "diagnosis_id");
    assert.match(mixed.json.error.details[0].message, /put them in data/);
    const mixedBatch = await http(server.url, "POST", path, {
      events: [logEvent("fine"), { type: "x_y", foo: 1, data: {} }],
    });
    assertInvalid(mixedBatch, "events.1.foo");
    await assertUnchanged(server.url, id, before);
    events = await eventsOf(server.url, id);
    assert.equal(events.length, 3);
  });
});

Deno.test("shortcuts keep fields they do not know in the event they write; complete takes results too", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const started = await http(server.url, "POST", `/jobs/${id}/start`, { worker: "w-7" });
    assert.equal(started.status, 201, started.text);
    const done = await http(server.url, "POST", `/jobs/${id}/complete`, {
      results: { accuracy: 0.9 },
      duration_ms: 1200,
    });
    assert.equal(done.status, 201, done.text);
    const { job, events } = await persisted(server.url, id);
    assert.deepEqual(events.map((e) => [e.type, e.data]), [
      ["status", { worker: "w-7", status: "running" }],
      ["result", { results: { accuracy: 0.9 } }],
      ["status", { duration_ms: 1200, status: "completed" }],
    ]);
    assert.deepEqual(job.result, { accuracy: 0.9 });

    const failing = await createJob(server.url);
    const failed = await http(server.url, "POST", `/jobs/${failing}/fail`, {
      error: "Insufficient memory",
      error_type: "MEMORY_ERROR",
      error_code: "E_OOM",
      suggestions: ["Reduce the batch size"],
    });
    assert.equal(failed.status, 201, failed.text);
    const error = (await eventsOf(server.url, failing))[0]!;
    assert.deepEqual(error.data, {
      error: "Insufficient memory",
      error_type: "memory_error",
      error_code: "E_OOM",
      suggestions: ["Reduce the batch size"],
    });
  });
});

Deno.test("progress takes estimated_time_remaining for eta_seconds; an unknown status says where steps go", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const reply = await http(server.url, "POST", `/jobs/${id}/progress`, {
      progress: 45,
      stage: "transcribing",
      estimated_time_remaining: 30,
    });
    assert.equal(reply.status, 201, reply.text);
    const job = (await http(server.url, "GET", `/jobs/${id}`)).json;
    assert.equal(job.eta_seconds, 30);
    // An eta_seconds of null is no ETA: the alias is taken then too.
    await http(server.url, "POST", `/jobs/${id}/progress`, {
      progress: 50,
      eta_seconds: null,
      estimated_time_remaining: 9,
    });
    assert.equal((await http(server.url, "GET", `/jobs/${id}`)).json.eta_seconds, 9);
    const refused = await http(server.url, "POST", `/jobs/${id}/events`, status("transcribing"));
    assertInvalid(refused, "data.status");
    assert.match(refused.json.error.details[0].message, /pending, queued, running/);
    assert.match(refused.json.error.details[0].message, /stage/);
  });
});

Deno.test("a publish retried with the same Idempotency-Key returns the same sequences and writes nothing twice", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const send = (key: string, body: unknown) =>
      http(server.url, "POST", `/jobs/${id}/events`, body, { "idempotency-key": key });
    const batch = { events: [logEvent("a"), logEvent("b")] };
    const first = await send("req-1", batch);
    assert.equal(first.status, 201, first.text);
    assert.deepEqual(first.json.sequences, [1, 2]);
    assert.equal(first.json.replayed, false);
    const written = await persisted(server.url, id);

    const retry = await send("req-1", batch);
    assert.equal(retry.status, 201, retry.text);
    assert.deepEqual(retry.json.sequences, [1, 2]);
    assert.equal(retry.json.replayed, true);
    assert.equal(retry.json.last_sequence, 2);
    await assertUnchanged(server.url, id, written);

    const single = await send("req-2", logEvent("c"));
    assert.deepEqual(single.json.sequences, [3]);
    const singleRetry = await send("req-2", logEvent("c"));
    assert.deepEqual(singleRetry.json.sequences, [3]);
    assert.equal(singleRetry.json.replayed, true);

    const other = await send("req-3", logEvent("d"));
    assert.deepEqual(other.json.sequences, [4]);
    assert.equal(other.json.replayed, false);

    const events = await eventsOf(server.url, id);
    assert.deepEqual(events.map((e) => e.data.line), ["a", "b", "c", "d"]);
    const stats = await http(server.url, "GET", "/stats");
    assert.equal(stats.json.events.published_total, 4);
  });
});

Deno.test("an Idempotency-Key reused for other events is refused with 422 and writes nothing", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const send = (key: string, body: unknown) =>
      http(server.url, "POST", `/jobs/${id}/events`, body, { "idempotency-key": key });
    const first = await send("req-1", { events: [logEvent("a"), logEvent("b")] });
    assert.equal(first.status, 201, first.text);
    const written = await persisted(server.url, id);
    for (
      const body of [
        { events: [logEvent("a"), logEvent("other")] },
        { events: [logEvent("a")] },
        { events: [logEvent("a"), logEvent("b"), logEvent("c")] },
        { type: "custom.a", data: { line: "a", level: "info" } },
      ]
    ) {
      const reused = await send("req-1", body);
      assertError(reused, 422, "idempotency_key_reused");
      assert.match(reused.json.error.message, /req-1/);
    }
    await assertUnchanged(server.url, id, written);
    // The same events, written another way (a level alias), are the same request.
    const retry = await send("req-1", {
      events: [logEvent("a"), { type: "log", data: { line: "b", level: "INFO" } }],
    });
    assert.equal(retry.status, 201, retry.text);
    assert.equal(retry.json.replayed, true);
    assert.deepEqual(retry.json.sequences, [1, 2]);
  });
});

Deno.test("concurrent publishes with the same Idempotency-Key write once", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const replies = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          http(
            server.url,
            "POST",
            `/jobs/${id}/events`,
            { events: [logEvent("a"), logEvent("b")] },
            {
              "idempotency-key": "same",
            },
          ),
      ),
    );
    for (const reply of replies) {
      assert.equal(reply.status, 201, reply.text);
      assert.deepEqual(reply.json.sequences, [1, 2]);
    }
    assert.equal(replies.filter((r) => r.json.replayed === false).length, 1);
    const { job, events } = await persisted(server.url, id);
    assert.equal(job.last_sequence, 2);
    assert.equal(events.length, 2);
  });
});

Deno.test("a malformed Idempotency-Key is refused with 422 and nothing is written", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    for (const key of ["has space", "k".repeat(256)]) {
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("x"), {
        "idempotency-key": key,
      });
      assertError(reply, 422, "validation_error");
    }
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("an Idempotency-Key of a refused publish is not remembered", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const refused = await http(server.url, "POST", `/jobs/${id}/events`, status("completed"), {
      "idempotency-key": "k",
    });
    assertError(refused, 409, "invalid_transition");
    const accepted = await http(server.url, "POST", `/jobs/${id}/events`, status("running"), {
      "idempotency-key": "k",
    });
    assert.equal(accepted.status, 201, accepted.text);
    assert.equal(accepted.json.replayed, false);
    assert.deepEqual(accepted.json.sequences, [1]);
    assert.equal((await persisted(server.url, id)).job.status, "running");
  });
});

Deno.test("expected_sequence at a place other events hold is a conflict, not a retry", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const at = (expected: number, event: Record<string, unknown>) =>
      http(server.url, "POST", `/jobs/${id}/events`, { ...event, expected_sequence: expected });
    assert.equal((await at(1, logEvent("mine"))).status, 201);
    const written = await persisted(server.url, id);
    const other = await at(1, logEvent("theirs"));
    assertError(other, 409, "sequence_conflict");
    assert.match(other.json.error.message, /not a retry/);
    assertError(
      await at(1, { type: "custom.x", data: { line: "mine" } }),
      409,
      "sequence_conflict",
    );
    await assertUnchanged(server.url, id, written);

    // Producers racing for the same place: one writes, every other one is told.
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => at(2, logEvent(`racer ${i}`))),
    );
    const winners = replies.filter((r) => r.status === 201);
    assert.equal(winners.length, 1, JSON.stringify(replies.map((r) => r.json)));
    assert.equal(winners[0]!.json.replayed, false);
    for (const reply of replies) {
      if (reply.status !== 201) assertError(reply, 409, "sequence_conflict");
    }

    // A retry is still one, with what the server added to the event (an estimated ETA).
    await at(3, { type: "progress", data: { progress: 10 } });
    // At 100% the ETA is estimated at once: 0.
    const progress = { type: "progress", data: { progress: 100, eta_seconds: null } };
    const first = await at(4, progress);
    assert.equal(first.status, 201, first.text);
    const stored = (await eventsOf(server.url, id)).at(-1)!;
    assert.equal(stored.data.eta_estimated, true, JSON.stringify(stored));
    const retry = await at(4, progress);
    assert.equal(retry.status, 201, retry.text);
    assert.equal(retry.json.replayed, true);
    assert.deepEqual(
      (await eventsOf(server.url, id)).map((e) => e.sequence),
      [1, 2, 3, 4],
    );
  });
});

Deno.test("expected_sequence at places the per-job cap dropped is a conflict: the server cannot tell a retry", async () => {
  await withServer({ "max-events-per-job": 5 }, async (server) => {
    const id = await createJob(server.url);
    const at = (expected: number, event: Record<string, unknown>) =>
      http(server.url, "POST", `/jobs/${id}/events`, { ...event, expected_sequence: expected });
    assert.equal((await at(1, logEvent("mine"))).status, 201);
    assert.equal((await at(2, logEvent("next"))).status, 201);
    await publish(server.url, id, ...Array.from({ length: 5 }, (_, i) => logEvent(i)));
    const before = await persisted(server.url, id);
    assert.equal(before.job.first_sequence, 3);
    for (const event of [logEvent("theirs"), { type: "result", data: { results: 1 } }]) {
      const reply = await at(1, event);
      assertError(reply, 409, "sequence_conflict");
      assert.match(reply.json.error.message, /no longer kept/);
    }
    // A batch whose first places are gone is not taken for a retry either.
    const batch = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent("next"), logEvent(0)],
      expected_sequence: 2,
    });
    assertError(batch, 409, "sequence_conflict");
    await assertUnchanged(server.url, id, before);
    assert.equal(before.job.result, null);
    // Places still kept are checked as before.
    const kept = await at(3, logEvent(0));
    assert.equal(kept.status, 201, kept.text);
    assert.equal(kept.json.replayed, true);
  });
});

Deno.test("expected_sequence writes when it is next, replays a retry, and refuses a gap with 409", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const next = await http(server.url, "POST", `/jobs/${id}/events`, {
      ...logEvent(3),
      expected_sequence: 3,
    });
    assert.equal(next.status, 201, next.text);
    assert.deepEqual(next.json.sequences, [3]);
    assert.equal(next.json.replayed, false);
    const written = await persisted(server.url, id);

    const retry = await http(server.url, "POST", `/jobs/${id}/events`, {
      ...logEvent(3),
      expected_sequence: 3,
    });
    assert.equal(retry.status, 201, retry.text);
    assert.deepEqual(retry.json.sequences, [3]);
    assert.equal(retry.json.replayed, true);
    await assertUnchanged(server.url, id, written);

    const batch = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent(4), logEvent(5)],
      expected_sequence: 4,
    });
    assert.deepEqual(batch.json.sequences, [4, 5]);
    const afterBatch = await persisted(server.url, id);
    const batchRetry = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent(4), logEvent(5)],
      expected_sequence: 4,
    });
    assert.equal(batchRetry.status, 201, batchRetry.text);
    assert.deepEqual(batchRetry.json.sequences, [4, 5]);
    assert.equal(batchRetry.json.replayed, true);
    await assertUnchanged(server.url, id, afterBatch);

    const ahead = await http(server.url, "POST", `/jobs/${id}/events`, {
      ...logEvent("gap"),
      expected_sequence: 9,
    });
    assertError(ahead, 409, "sequence_conflict");
    await assertUnchanged(server.url, id, afterBatch);

    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, {
        ...logEvent("x"),
        expected_sequence: 0,
      }),
      422,
      "validation_error",
    );
    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, {
        ...logEvent("x"),
        expected_sequence: "6",
      }),
      422,
      "validation_error",
    );
    await assertUnchanged(server.url, id, afterBatch);
    assert.deepEqual((await eventsOf(server.url, id)).map((e) => e.data.line), [
      "1",
      "2",
      "3",
      "4",
      "5",
    ]);
  });
});

Deno.test("malformed JSON and invalid UTF-8 are refused with 400 and nothing is written", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("kept"));
    const before = await persisted(server.url, id);
    for (const body of ['{"type": "log", "data": {', "{type:log}", "not json", '{"a":1}}']) {
      assertError(
        await http(server.url, "POST", `/jobs/${id}/events`, body),
        400,
        "malformed_json",
      );
    }
    // {"type":"log","data":{"line":"<0xff 0xfe>"}}
    const prefix = new TextEncoder().encode('{"type":"log","data":{"line":"');
    const suffix = new TextEncoder().encode('"}}');
    const bytes = new Uint8Array([...prefix, 0xff, 0xfe, ...suffix]);
    assertError(await http(server.url, "POST", `/jobs/${id}/events`, bytes), 400, "malformed_json");
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("wrong field types are refused with 422 validation_error naming each path", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    const before = await persisted(server.url, id);
    const post = (body: unknown) => http(server.url, "POST", `/jobs/${id}/events`, body);
    assertInvalid(await post({ type: "progress", data: { progress: "abc" } }), "data.progress");
    assertInvalid(await post({ type: "progress", data: { progress: 150 } }), "data.progress");
    assertInvalid(await post({ type: "progress", data: { progress: -1 } }), "data.progress");
    assertInvalid(await post({ type: "progress", data: {} }), "data.progress");
    assertInvalid(await post({ type: "progress", data: { progress: 5, total: 0 } }), "data.total");
    assertInvalid(
      await post({ type: "progress", data: { progress: 5, eta_seconds: -3 } }),
      "data.eta_seconds",
    );
    assertInvalid(await post({ type: "log", data: "hello" }), "data");
    assertInvalid(await post({ type: "log", data: ["hello"] }), "data");
    assertInvalid(await post({ type: "recommendation_update", data: 42 }), "data");
    assertInvalid(await post({ events: "not a list" }), "events");
    assertInvalid(await post({ events: [] }), "events");
    assertError(await post({ data: { line: "no type" } }), 422, "validation_error");
    assertError(await post([logEvent("array body")]), 422, "validation_error");
    assertError(await post("42"), 422, "validation_error");
    assertError(await post({}), 422, "validation_error");
    // Nothing to publish, however sent, is told what to send.
    for (const nothing of [{}, "null", ""]) {
      const reply = await post(nothing);
      assertError(reply, 422, "validation_error");
      assert.equal(reply.json.error.message, "Send a JSON object: {type, data} or {events: [...]}");
    }
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("a batch with one invalid event is refused with 422 and none of it is written", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    const before = await persisted(server.url, id);
    const reply = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [
        logEvent("fine"),
        { type: "progress", data: { progress: "abc" } },
        logEvent("also fine"),
        { type: "log", data: { line: "x", level: "loud" } },
      ],
    });
    assertInvalid(reply, "events.1.data.progress");
    assert.ok(
      reply.json.error.details.some((d: { path: string }) => d.path === "events.3.data.level"),
      `every invalid event is listed: ${reply.text}`,
    );
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("a body over 1 MiB is refused with 413 payload_too_large", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    const lines = Array.from({ length: 20 }, () => logEvent("y".repeat(60 * 1024)));
    const body = JSON.stringify({ events: lines });
    assert.ok(body.length > 1024 * 1024);
    const reply = await http(server.url, "POST", `/jobs/${id}/events`, body);
    assertError(reply, 413, "payload_too_large");
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("the body cap follows --max-body-bytes, also for a chunked body without Content-Length", async () => {
  await withServer({ "max-body-bytes": 2048 }, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    const big = JSON.stringify(logEvent("z".repeat(3000)));
    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, big),
      413,
      "payload_too_large",
    );

    const chunk = new TextEncoder().encode(big);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk.slice(0, 1000));
        controller.enqueue(chunk.slice(1000, 2000));
        controller.enqueue(chunk.slice(2000));
        controller.close();
      },
    });
    const response = await fetch(`${server.url}/jobs/${id}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
    });
    const text = await response.text();
    assert.equal(response.status, 413, text);
    assert.equal(JSON.parse(text).error.code, "payload_too_large");

    const small = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("fits"));
    assert.equal(small.status, 201, small.text);
    assert.deepEqual(small.json.sequences, [1]);
    const after = await persisted(server.url, id);
    assert.equal(after.events.length, before.events.length + 1);
  });
});

Deno.test("an event with data over 64 KiB is refused with 413 event_too_large", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    const large = { type: "log", data: { line: "x".repeat(65 * 1024) } };
    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, large),
      413,
      "event_too_large",
    );
    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, { events: [logEvent("small"), large] }),
      413,
      "event_too_large",
    );
    const multibyte = { type: "custom_blob", data: { text: "é".repeat(40 * 1024) } };
    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, multibyte),
      413,
      "event_too_large",
    );
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("a batch over --max-batch is refused with 413 and nothing is written", async () => {
  await withServer({ "max-batch": 3 }, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    const four = { events: [logEvent(1), logEvent(2), logEvent(3), logEvent(4)] };
    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, four),
      413,
      "payload_too_large",
    );
    assertError(
      await http(server.url, "POST", `/jobs/${id}/log`, { lines: ["1", "2", "3", "4"] }),
      413,
      "payload_too_large",
    );
    await assertUnchanged(server.url, id, before);
    const three = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent(1), logEvent(2), logEvent(3)],
    });
    assert.equal(three.status, 201, three.text);
    assert.deepEqual(three.json.sequences, [1, 2, 3]);
  });
});

Deno.test("a non-JSON Content-Type, another charset or a compressed body is refused with 415 (501 for a transfer coding), and nothing is stored", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = await persisted(server.url, id);
    const body = JSON.stringify(logEvent("x"));
    for (
      const type of [
        "text/html",
        "text/html; charset=utf-8",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "image/png",
      ]
    ) {
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, body, {
        "content-type": type,
      });
      assertError(reply, 415, "unsupported_media_type");
    }
    // A body in another charset, or compressed (or only labelled so), is not read as sent.
    for (
      const headers of [
        { "content-type": "application/json; charset=utf-16" },
        { "content-type": "text/plain; charset=iso-8859-1" },
        { "content-type": "application/json", "content-encoding": "gzip" },
        { "content-encoding": "br" },
      ]
    ) {
      const reply = await http(server.url, "POST", `/jobs/${id}/events`, body, headers);
      assertError(reply, 415, "unsupported_media_type");
    }
    const gzipped = await new Response(
      new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer();
    const compressed = await fetch(`${server.url}/jobs/${id}/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: gzipped,
    });
    const said = await compressed.json();
    assert.deepEqual([compressed.status, said.error.code], [415, "unsupported_media_type"]);
    assert.match(said.error.message, /Content-Encoding gzip/);
    // A transfer coding before `chunked` is no coding the body is read with: refused, not
    // stored as if it were absent.
    const { hostname, port } = new URL(server.url);
    for (const coding of ["gzip, chunked", "deflate,chunked"]) {
      const conn = await Deno.connect({ hostname, port: Number(port) });
      try {
        const chunk = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
        await conn.write(
          new TextEncoder().encode(
            `POST /jobs/${id}/events HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
              `Content-Type: application/json\r\nTransfer-Encoding: ${coding}\r\n` +
              `Connection: close\r\n\r\n${chunk}`,
          ),
        );
        let answer = "";
        const buffer = new Uint8Array(4096);
        for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
          answer += new TextDecoder().decode(buffer.subarray(0, n));
        }
        assert.match(answer, /^HTTP\/1\.1 501 /, `${coding}: ${answer}`);
        assert.match(answer, /"code":"unsupported_transfer_encoding"/, coding);
      } finally {
        conn.close();
      }
    }
    const form = new FormData();
    form.append("type", "log");
    const multipart = await fetch(`${server.url}/jobs/${id}/events`, {
      method: "POST",
      body: form,
    });
    const text = await multipart.text();
    assert.equal(multipart.status, 415, text);
    assert.equal(JSON.parse(text).error.code, "unsupported_media_type");
    await assertUnchanged(server.url, id, before);
  });
});

Deno.test("curl's default form Content-Type with a JSON body is accepted", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const reply = await http(
      server.url,
      "POST",
      `/jobs/${id}/events`,
      JSON.stringify(logEvent("curl")),
      {
        "content-type": "application/x-www-form-urlencoded",
      },
    );
    assert.equal(reply.status, 201, reply.text);
    assert.deepEqual(reply.json.sequences, [1]);
    const created = await http(server.url, "POST", "/jobs", JSON.stringify({ kind: "curl" }), {
      "content-type": "application/x-www-form-urlencoded",
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.job.kind, "curl");
    assert.equal((await eventsOf(server.url, id))[0].data.line, "curl");
  });
});

Deno.test("publishing to an unknown job answers 404 job_not_found", async () => {
  await withServer({}, async (server) => {
    assertError(
      await http(server.url, "POST", "/jobs/no-such-job/events", logEvent("x")),
      404,
      "job_not_found",
    );
    for (const shortcut of ["queue", "start", "progress", "log", "complete", "fail", "cancel"]) {
      const body = shortcut === "progress"
        ? { progress: 1 }
        : shortcut === "log"
        ? { line: "x" }
        : shortcut === "fail"
        ? { error: "x" }
        : {};
      assertError(
        await http(server.url, "POST", `/jobs/no-such-job/${shortcut}`, body),
        404,
        "job_not_found",
      );
    }
    const list = await http(server.url, "GET", "/jobs");
    assert.deepEqual(list.json.jobs, []);
  });
});

Deno.test("bad input never causes a 5xx", async () => {
  await withServer({ "max-batch": 5 }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    const bodies: unknown[] = [
      "",
      "null",
      "[]",
      "true",
      '"text"',
      "{",
      '{"type":null}',
      '{"type":"log","data":null}',
      '{"type":"progress","data":{"progress":1e999}}',
      '{"type":"progress","data":{"progress":null}}',
      '{"type":"progress","data":{"current":5,"total":"x"}}',
      '{"type":"status","data":{"status":null}}',
      '{"type":"result","data":{}}',
      '{"events":[null,1,"x",[]]}',
      '{"events":{"0":{}}}',
      '{"__proto__":{"type":"log"}}',
      '{"type":"constructor","data":{}}',
      '{"type":"log","data":{"line":"\\ud800"}}',
      '{"type":"log","data":{"line":"x","level":null}}',
      '{"expected_sequence":1e20,"type":"log","data":{"line":"x"}}',
      JSON.stringify({ events: Array.from({ length: 6 }, () => logEvent("x")) }),
      "x".repeat(3000),
    ];
    const paths = [
      `/jobs/${id}/events`,
      `/jobs/${id}/log`,
      `/jobs/${id}/progress`,
      `/jobs/${id}/complete`,
    ];
    for (const path of paths) {
      for (const body of bodies) {
        const reply = await http(server.url, "POST", path, body as string);
        assert.ok(
          reply.status < 500,
          `${path} ${String(body).slice(0, 60)}: ${reply.status} ${reply.text}`,
        );
        if (reply.status >= 400) assert.equal(typeof reply.json?.error?.code, "string", reply.text);
      }
    }
    for (const query of ["wait=terminal&timeout=99999", "x=%ZZ", "wait=", "timeout=1"]) {
      const reply = await http(server.url, "GET", `/jobs/${id}?${query}`);
      assert.ok(reply.status < 500, `${query}: ${reply.status}`);
    }
    assert.equal(await metric(server.url, "jobwire_server_errors_total"), 0);
  });
});

Deno.test("every shortcut takes expected_sequence as the events route does, and stores it nowhere", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const steps: [string, Record<string, unknown>, number[]][] = [
      ["start", { message: "go" }, [1]],
      ["progress", { progress: 10 }, [2]],
      ["log", { line: "one" }, [3]],
      ["log", { lines: ["two", "three"] }, [4, 5]],
      ["complete", { result: { ok: true } }, [6, 7]],
    ];
    for (const [route, body, sequences] of steps) {
      const request = { ...body, expected_sequence: sequences[0] };
      const first = await http(server.url, "POST", `/jobs/${id}/${route}`, request);
      assert.equal(first.status, 201, `${route}: ${first.text}`);
      assert.deepEqual(first.json.sequences, sequences);
      assert.equal(first.json.replayed, false);
      // The retry writes nothing, even after the job has ended.
      const retry = await http(server.url, "POST", `/jobs/${id}/${route}`, request);
      assert.equal(retry.status, 201, `${route} again: ${retry.text}`);
      assert.deepEqual(retry.json.sequences, sequences);
      assert.equal(retry.json.replayed, true);
    }
    const page = await http(server.url, "GET", `/jobs/${id}/events`);
    assert.deepEqual(page.json.events.map((e: Msg) => e.sequence), [1, 2, 3, 4, 5, 6, 7]);
    for (const event of page.json.events) {
      assert.equal("expected_sequence" in event.data, false, JSON.stringify(event));
    }
    // Another producer's progress at a place taken: a conflict.
    const other = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${other}/log`, { line: "first" });
    const late = await http(server.url, "POST", `/jobs/${other}/progress`, {
      progress: 5,
      expected_sequence: 1,
    });
    assert.equal(late.status, 409, late.text);
    assert.equal(late.json.error.code, "sequence_conflict");
    const bad = await http(server.url, "POST", `/jobs/${other}/progress`, {
      progress: 5,
      expected_sequence: "1",
    });
    assert.equal(bad.status, 422, bad.text);
  });
});

Deno.test("a batch with a field beside its events, or a shortcut given one thing under both names, is refused and writes nothing", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const refused: [string, Record<string, unknown>, string][] = [
      ["events", { events: [logEvent("a")], type: "log", data: { line: "b" } }, "type"],
      ["events", { events: [logEvent("a")], idempotency_key: "k" }, "idempotency_key"],
      ["log", { line: "x", lines: ["y"] }, "lines"],
      ["complete", { result: 1, results: 2 }, "results"],
    ];
    for (const [route, body, field] of refused) {
      const reply = await http(server.url, "POST", `/jobs/${id}/${route}`, body);
      assert.equal(reply.status, 422, `${route}: ${reply.text}`);
      assert.equal(reply.json.error.code, "validation_error");
      assert.ok(
        reply.json.error.details.some((d: { path: string }) => d.path === field),
        reply.text,
      );
    }
    const job = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(job.json.last_sequence, 0);
    assert.equal(job.json.status, "pending");
  });
});

Deno.test("a shortcut's refusal names the field of its own body, not of the events it writes", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, status("running"));
    const fail = await http(server.url, "POST", `/jobs/${id}/fail`, {
      error: "x",
      error_type: "bad-type",
    });
    assertInvalid(fail, "error_type");
    assert.match(fail.json.error.message, /^The event is invalid: error_type: /);
    const progress = await http(server.url, "POST", `/jobs/${id}/progress`, {
      progress: 150,
    });
    assertInvalid(progress, "progress");
    const lines = await http(server.url, "POST", `/jobs/${id}/log`, {
      lines: ["fine", { line: "x", level: "bogus" }],
    });
    assertInvalid(lines, "lines.1.level");
    const line = await http(server.url, "POST", `/jobs/${id}/log`, { line: "x", level: "bogus" });
    assertInvalid(line, "level");
    // A level given once for every line is named once, as given.
    const shared = await http(server.url, "POST", `/jobs/${id}/log`, {
      lines: ["a", "b"],
      level: "bogus",
    });
    assertInvalid(shared, "level");
    assert.deepEqual(shared.json.error.details.map((d: { path: string }) => d.path), ["level"]);
    // The events route keeps the paths of the events it was sent.
    const batch = await http(server.url, "POST", `/jobs/${id}/events`, {
      events: [logEvent("a"), { type: "log", data: { line: "b", level: "bogus" } }],
    });
    assertInvalid(batch, "events.1.data.level");
  });
});
