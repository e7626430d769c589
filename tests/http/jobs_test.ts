import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createJob, http, logEvent, publish, type Reply, waitFor } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, bearer, tokenFor } from "../_helpers/tokens.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

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

/** Waits until the clock has moved past the last millisecond, so `created_at` values differ. */
async function nextMillisecond(): Promise<void> {
  const start = Date.now();
  await waitFor(() => Date.now() > start, 1000, "the clock to move");
}

Deno.test("POST /jobs makes a UUID id and answers 201 with the job, urls and Location", async () => {
  await withServer({}, async (server) => {
    const reply = await http(server.url, "POST", "/jobs", {
      kind: "transcription",
      metadata: { file: "a.wav", lang: "en" },
    });
    assert.equal(reply.status, 201);
    const { job, urls } = reply.json;
    assert.match(job.id, UUID);
    assert.equal(job.kind, "transcription");
    assert.equal(job.status, "pending");
    assert.equal(job.progress, 0);
    assert.equal(job.last_sequence, 0);
    assert.equal(job.has_result, false);
    assert.equal(job.result, null);
    assert.equal(job.error, null);
    assert.deepEqual(job.metadata, { file: "a.wav", lang: "en" });
    assert.match(job.created_at, ISO);
    assert.equal(job.updated_at, job.created_at);
    assert.equal(job.queued_at, null);
    assert.equal(job.started_at, null);
    assert.equal(job.completed_at, null);
    for (
      const field of [
        "id",
        "kind",
        "owner",
        "status",
        "progress",
        "stage",
        "message",
        "eta_seconds",
        "created_at",
        "queued_at",
        "started_at",
        "updated_at",
        "completed_at",
        "result",
        "error",
        "metadata",
        "last_sequence",
      ]
    ) {
      assert.ok(field in job, `job has ${field}`);
    }
    const origin = server.url;
    const wsOrigin = origin.replace(/^http/, "ws");
    assert.equal(urls.ws, `${wsOrigin}/ws/jobs/${job.id}`);
    assert.equal(urls.sse, `${origin}/jobs/${job.id}/events`);
    assert.equal(typeof urls.status, "string");
    assert.ok(urls.status.startsWith(origin));
    assert.ok(urls.status.includes(job.id));
    assert.equal(reply.headers.get("location"), `/jobs/${job.id}`);

    const again = await http(server.url, "POST", "/jobs", {});
    assert.equal(again.status, 201);
    assert.match(again.json.job.id, UUID);
    assert.notEqual(again.json.job.id, job.id);
  });
});

Deno.test("POST /jobs creates a job without any body", async () => {
  await withServer({}, async (server) => {
    const reply = await http(server.url, "POST", "/jobs");
    assert.equal(reply.status, 201, reply.text);
    assert.match(reply.json.job.id, UUID);
    assert.equal(reply.json.job.kind, null);
    assert.deepEqual(reply.json.job.metadata, {});
  });
});

Deno.test("POST /jobs keeps a client id that matches the id pattern", async () => {
  await withServer({}, async (server) => {
    const ids = ["a", "Z9", "build-42", "ci.run_7:step-3", "0", "x".repeat(128)];
    for (const id of ids) {
      const reply = await http(server.url, "POST", "/jobs", { id });
      assert.equal(reply.status, 201, `${id}: ${reply.text}`);
      assert.equal(reply.json.job.id, id);
      assert.equal(decodeURIComponent(reply.headers.get("location") ?? ""), `/jobs/${id}`);
      const got = await http(server.url, "GET", `/jobs/${id}`);
      assert.equal(got.status, 200);
      assert.equal(got.json.id, id);
    }
  });
});

Deno.test("POST /jobs refuses an id outside the pattern with 422", async () => {
  await withServer({}, async (server) => {
    const bad = ["", "-leading", ".dot", "_under", ":colon", "has space", "slash/id", "ü", "a?b"];
    bad.push("x".repeat(129));
    for (const id of bad) {
      const reply = await http(server.url, "POST", "/jobs", { id });
      assertError(reply, 422, "validation_error");
      assert.ok(Array.isArray(reply.json.error.details), reply.text);
      assert.ok(
        reply.json.error.details.some((d: { path: string }) => d.path === "id"),
        `${JSON.stringify(id)}: ${reply.text}`,
      );
    }
    const wrongType = await http(server.url, "POST", "/jobs", { id: 42 });
    assertError(wrongType, 422, "validation_error");
    const list = await http(server.url, "GET", "/jobs");
    assert.deepEqual(list.json.jobs, []);
  });
});

Deno.test("POST /jobs answers 409 job_exists for a duplicate id and keeps the first job", async () => {
  await withServer({}, async (server) => {
    await createJob(server.url, { id: "dup-1", kind: "first" });
    await publish(server.url, "dup-1", logEvent("kept"));
    const reply = await http(server.url, "POST", "/jobs", { id: "dup-1", kind: "second" });
    assertError(reply, 409, "job_exists");
    const job = await http(server.url, "GET", "/jobs/dup-1");
    assert.equal(job.json.kind, "first");
    assert.equal(job.json.last_sequence, 1);
  });
});

Deno.test("POST /jobs refuses an unknown body field and wrong field types with 422", async () => {
  await withServer({}, async (server) => {
    const unknown = await http(server.url, "POST", "/jobs", { kind: "x", colour: "red" });
    assertError(unknown, 422, "validation_error");
    assert.ok(Array.isArray(unknown.json.error.details));
    assert.ok(unknown.json.error.details.length > 0);
    for (
      const body of [{ kind: 5 }, { metadata: "text" }, { metadata: [1, 2] }, [1, 2], "text", 7]
    ) {
      const reply = await http(server.url, "POST", "/jobs", JSON.stringify(body));
      assertError(reply, 422, "validation_error");
    }
    const list = await http(server.url, "GET", "/jobs");
    assert.deepEqual(list.json.jobs, []);
  });
});

Deno.test("POST /jobs answers 400 for malformed JSON and 415 for a non-JSON media type", async () => {
  await withServer({}, async (server) => {
    assertError(await http(server.url, "POST", "/jobs", "{kind:"), 400, "malformed_json");
    assertError(
      await http(server.url, "POST", "/jobs", "{}", { "content-type": "text/html" }),
      415,
      "unsupported_media_type",
    );
    const list = await http(server.url, "GET", "/jobs");
    assert.deepEqual(list.json.jobs, []);
  });
});

Deno.test("GET /jobs lists jobs newest first", async () => {
  await withServer({}, async (server) => {
    const created: string[] = [];
    for (let i = 0; i < 4; i++) {
      created.push(await createJob(server.url));
      await nextMillisecond();
    }
    const reply = await http(server.url, "GET", "/jobs");
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json.jobs.map((j: { id: string }) => j.id), created.toReversed());
    assert.equal(reply.json.next_cursor, null);
  });
});

Deno.test("GET /jobs lists jobs created within the same millisecond in creation order", async () => {
  await withServer({}, async (server) => {
    // Ids sort the opposite way to creation order, so a tie on created_at broken by id shows.
    const created: string[] = [];
    for (let i = 0; i < 20; i++) {
      created.push(await createJob(server.url, { id: `burst-${String(99 - i).padStart(2, "0")}` }));
    }
    const reply = await http(server.url, "GET", "/jobs?limit=50");
    assert.deepEqual(reply.json.jobs.map((j: { id: string }) => j.id), created.toReversed());
  });
});

Deno.test("GET /jobs filters by status, including status aliases", async () => {
  await withServer({}, async (server) => {
    const pending = await createJob(server.url);
    const running = await createJob(server.url);
    const done = await createJob(server.url);
    const queued = await createJob(server.url);
    await publish(server.url, running, { type: "status", data: { status: "running" } });
    await publish(server.url, done, { type: "status", data: { status: "running" } });
    await publish(server.url, done, { type: "status", data: { status: "completed" } });
    await publish(server.url, queued, { type: "status", data: { status: "queued" } });

    const ids = async (query: string) => {
      const reply = await http(server.url, "GET", `/jobs?${query}`);
      assert.equal(reply.status, 200, `${query}: ${reply.text}`);
      return reply.json.jobs.map((j: { id: string }) => j.id).sort();
    };
    assert.deepEqual(await ids("status=pending"), [pending]);
    assert.deepEqual(await ids("status=running"), [running]);
    assert.deepEqual(await ids("status=IN_PROGRESS"), [running]);
    assert.deepEqual(await ids("status=processing"), [running]);
    assert.deepEqual(await ids("status=completed"), [done]);
    assert.deepEqual(await ids("status=processed"), [done]);
    assert.deepEqual(await ids("status=QUEUED"), [queued]);
    assert.deepEqual(await ids("status=failed"), []);
    assertError(await http(server.url, "GET", "/jobs?status=sleeping"), 422, "invalid_query");
  });
});

Deno.test("GET /jobs filters by kind and by owner", async () => {
  await withServer({}, async (server) => {
    const build = await createJob(server.url, { kind: "build" });
    const deploy = await createJob(server.url, { kind: "deploy" });
    const alice = await createJob(server.url, { kind: "build", owner: "alice" });
    const bob = await createJob(server.url, { owner: "bob" });
    const ids = async (query: string) => {
      const reply = await http(server.url, "GET", `/jobs?${query}`);
      assert.equal(reply.status, 200, reply.text);
      return reply.json.jobs.map((j: { id: string }) => j.id).sort();
    };
    assert.deepEqual(await ids("kind=build"), [build, alice].sort());
    assert.deepEqual(await ids("kind=deploy"), [deploy]);
    assert.deepEqual(await ids("kind=nothing"), []);
    assert.deepEqual(await ids("owner=alice"), [alice]);
    assert.deepEqual(await ids("owner=bob"), [bob]);
    assert.deepEqual(await ids("owner=alice&kind=deploy"), []);
    assert.deepEqual(await ids("owner=alice&kind=build"), [alice]);
  });
});

Deno.test("GET /jobs pages 7 jobs with limit=3 as 3+3+1 without overlap", async () => {
  await withServer({}, async (server) => {
    const created = new Set<string>();
    for (let i = 0; i < 7; i++) created.add(await createJob(server.url, { kind: "paged" }));
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null
        ? "limit=3"
        : `limit=3&cursor=${encodeURIComponent(cursor)}`;
      const reply = await http(server.url, "GET", `/jobs?${query}`);
      assert.equal(reply.status, 200, reply.text);
      pages.push(reply.json.jobs.map((j: { id: string }) => j.id));
      cursor = reply.json.next_cursor;
      assert.ok(pages.length <= 3, "pagination must end after 3 pages");
    } while (cursor !== null);
    assert.deepEqual(pages.map((p) => p.length), [3, 3, 1]);
    const all = pages.flat();
    assert.equal(new Set(all).size, 7);
    assert.deepEqual(new Set(all), created);

    const unpaged = await http(server.url, "GET", "/jobs?limit=50");
    assert.deepEqual(unpaged.json.jobs.map((j: { id: string }) => j.id), all);
  });
});

Deno.test("GET /jobs pages with a filter keep the filter on every page", async () => {
  await withServer({}, async (server) => {
    for (let i = 0; i < 5; i++) {
      await createJob(server.url, { kind: "a" });
      await createJob(server.url, { kind: "b" });
    }
    const first = await http(server.url, "GET", "/jobs?kind=a&limit=3");
    assert.equal(first.json.jobs.length, 3);
    assert.equal(typeof first.json.next_cursor, "string");
    const second = await http(
      server.url,
      "GET",
      `/jobs?kind=a&limit=3&cursor=${encodeURIComponent(first.json.next_cursor)}`,
    );
    assert.equal(second.json.jobs.length, 2);
    assert.equal(second.json.next_cursor, null);
    for (const job of [...first.json.jobs, ...second.json.jobs]) assert.equal(job.kind, "a");
  });
});

Deno.test("GET /jobs refuses a bad cursor or limit with 422 invalid_query", async () => {
  await withServer({}, async (server) => {
    await createJob(server.url);
    for (
      const query of [
        "cursor=not-a-cursor",
        `cursor=${btoa("[1,2,3]")}`,
        "cursor=%25%25%25",
        "limit=0",
        "limit=abc",
        "limit=-1",
        "limit=501",
      ]
    ) {
      const reply = await http(server.url, "GET", `/jobs?${query}`);
      assertError(reply, 422, "invalid_query");
    }
  });
});

Deno.test("GET /jobs omits result but reports has_result", async () => {
  await withServer({}, async (server) => {
    const withResult = await createJob(server.url);
    const without = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${withResult}/start`);
    const done = await http(server.url, "POST", `/jobs/${withResult}/complete`, {
      result: { words: 1200 },
    });
    assert.equal(done.status, 201, done.text);
    const reply = await http(server.url, "GET", "/jobs");
    assert.equal(reply.json.jobs.length, 2);
    for (const job of reply.json.jobs) {
      assert.ok(!("result" in job), `list item of ${job.id} has no result`);
      assert.equal(job.has_result, job.id === withResult);
    }
    assert.ok(reply.json.jobs.some((j: { id: string }) => j.id === without));
    const full = await http(server.url, "GET", `/jobs/${withResult}`);
    assert.deepEqual(full.json.result, { words: 1200 });
    assert.equal(full.json.has_result, true);
  });
});

Deno.test("GET /jobs/:id answers 404 job_not_found for an unknown id", async () => {
  await withServer({}, async (server) => {
    assertError(await http(server.url, "GET", "/jobs/never-made"), 404, "job_not_found");
    assertError(await http(server.url, "GET", "/jobs/-bad-id"), 404, "job_not_found");
  });
});

Deno.test("GET /jobs/:id shows has_result and the timestamps the status machine sets", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { kind: "report" });
    const created = (await http(server.url, "GET", `/jobs/${id}`)).json;
    assert.equal(created.status, "pending");
    assert.equal(created.has_result, false);
    assert.equal(created.queued_at, null);
    assert.equal(created.started_at, null);
    assert.equal(created.completed_at, null);

    await publish(server.url, id, { type: "status", data: { status: "queued" } });
    const queued = (await http(server.url, "GET", `/jobs/${id}`)).json;
    assert.equal(queued.status, "queued");
    assert.match(queued.queued_at, ISO);
    assert.ok(queued.queued_at >= created.created_at);
    assert.equal(queued.started_at, null);

    await publish(server.url, id, { type: "status", data: { status: "running" } });
    const running = (await http(server.url, "GET", `/jobs/${id}`)).json;
    assert.equal(running.status, "running");
    assert.equal(running.queued_at, queued.queued_at);
    assert.match(running.started_at, ISO);
    assert.ok(running.started_at >= running.queued_at);
    assert.equal(running.completed_at, null);

    await publish(server.url, id, { type: "result", data: { results: [1, 2, 3] } });
    await publish(server.url, id, { type: "status", data: { status: "completed" } });
    const completed = (await http(server.url, "GET", `/jobs/${id}`)).json;
    assert.equal(completed.status, "completed");
    assert.equal(completed.has_result, true);
    assert.deepEqual(completed.result, [1, 2, 3]);
    assert.equal(completed.progress, 100);
    assert.equal(completed.queued_at, queued.queued_at);
    assert.equal(completed.started_at, running.started_at);
    assert.match(completed.completed_at, ISO);
    assert.ok(completed.completed_at >= completed.started_at);
    assert.equal(completed.updated_at, completed.completed_at);
    assert.equal(completed.last_sequence, 4);
  });
});

Deno.test("GET /jobs/:id leaves queued_at null when a job goes straight to running", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, { type: "status", data: { status: "running" } });
    const job = (await http(server.url, "GET", `/jobs/${id}`)).json;
    assert.equal(job.status, "running");
    assert.equal(job.queued_at, null);
    assert.match(job.started_at, ISO);
  });
});

/**
 * A running job and a `wait=terminal` request on it, once the server holds the request: the
 * waiter counts as a watcher then, so what the test does next happens during the wait.
 */
async function heldWait(base: string): Promise<{ id: string; waiting: Promise<Reply> }> {
  const id = await createJob(base);
  await http(base, "POST", `/jobs/${id}/start`);
  const waiting = http(base, "GET", `/jobs/${id}?wait=terminal&timeout=30`);
  await waitFor(
    async () => Number((await http(base, "GET", `/jobs/${id}`)).headers.get("x-watchers")) >= 1,
    5000,
    "the wait to register",
  );
  return { id, waiting };
}

Deno.test("GET /jobs/:id?wait=terminal answers when the job completes from another request", async () => {
  await withServer({}, async (server) => {
    const { id, waiting } = await heldWait(server.url);
    await publish(server.url, id, logEvent("not terminal"));
    const done = await http(server.url, "POST", `/jobs/${id}/complete`, { result: { ok: true } });
    assert.equal(done.status, 201, done.text);
    const reply = await waiting;
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.headers.get("x-wait-result"), "terminal");
    assert.equal(reply.json.status, "completed");
    assert.deepEqual(reply.json.result, { ok: true });
    assert.equal(reply.json.has_result, true);
    assert.equal(reply.json.last_sequence, 4);
  });
});

Deno.test("GET /jobs/:id?wait=terminal answers 410 job_gone when the job is deleted meanwhile", async () => {
  await withServer({}, async (server) => {
    const { id, waiting } = await heldWait(server.url);
    assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
    const reply = await waiting;
    assert.equal(reply.status, 410, reply.text);
    assert.equal(reply.json.error.code, "job_gone");
  });
});

Deno.test("GET /jobs/:id?wait=terminal answers at once for a job that already ended", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/fail`, { error: "disk full" });
    const reply = await http(server.url, "GET", `/jobs/${id}?wait=terminal&timeout=30`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get("x-wait-result"), "terminal");
    assert.equal(reply.json.status, "failed");
    assert.equal(reply.json.error.error, "disk full");
  });
});

Deno.test("GET /jobs/:id?wait=terminal answers with x-wait-result timeout when the job does not end", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    const reply = await http(server.url, "GET", `/jobs/${id}?wait=terminal&timeout=1`);
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.headers.get("x-wait-result"), "timeout");
    assert.equal(reply.json.status, "running");
    assert.equal(reply.json.id, id);
  });
});

Deno.test("GET /jobs/:id refuses a bad wait or timeout with 422 invalid_query", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    for (const query of ["wait=forever", "wait=terminal&timeout=abc", "wait=terminal&timeout=-1"]) {
      assertError(await http(server.url, "GET", `/jobs/${id}?${query}`), 422, "invalid_query");
    }
  });
});

Deno.test("DELETE /jobs/:id removes the job: then GET, publish and delete answer 410 job_gone", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const deleted = await http(server.url, "DELETE", `/jobs/${id}`);
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.json.id, id);
    assert.equal(deleted.json.deleted, true);

    const gone = await http(server.url, "GET", `/jobs/${id}`);
    assertError(gone, 410, "job_gone");
    assert.equal(gone.json.error.message, `Job ${id} was deleted or purged`);
    assertError(await http(server.url, "GET", `/jobs/${id}/events`), 410, "job_gone");
    assertError(
      await http(server.url, "POST", `/jobs/${id}/events`, logEvent(3)),
      410,
      "job_gone",
    );
    assertError(await http(server.url, "POST", `/jobs/${id}/start`), 410, "job_gone");
    assertError(await http(server.url, "DELETE", `/jobs/${id}`), 410, "job_gone");
    const list = await http(server.url, "GET", "/jobs");
    assert.ok(!list.json.jobs.some((j: { id: string }) => j.id === id));
  });
});

Deno.test("DELETE /jobs/:id answers 404 job_not_found for an unknown job", async () => {
  await withServer({}, async (server) => {
    assertError(await http(server.url, "DELETE", "/jobs/no-such-job"), 404, "job_not_found");
  });
});

Deno.test("a deleted job id can be created again with sequences starting at 1", async () => {
  await withServer({}, async (server) => {
    await createJob(server.url, { id: "reused", kind: "old" });
    await publish(server.url, "reused", logEvent("old 1"), logEvent("old 2"), logEvent("old 3"));
    const keyed = await http(server.url, "POST", "/jobs/reused/events", logEvent("keyed"), {
      "idempotency-key": "k-1",
    });
    assert.deepEqual(keyed.json.sequences, [4]);
    assert.equal((await http(server.url, "DELETE", "/jobs/reused")).status, 200);

    const again = await http(server.url, "POST", "/jobs", { id: "reused", kind: "new" });
    assert.equal(again.status, 201, again.text);
    assert.equal(again.json.job.kind, "new");
    assert.equal(again.json.job.last_sequence, 0);
    assert.equal(again.json.job.status, "pending");

    const page = await http(server.url, "GET", "/jobs/reused/events?since=0");
    assert.equal(page.status, 200);
    assert.deepEqual(page.json.events, []);

    assert.deepEqual(await publish(server.url, "reused", logEvent("new 1")), [1]);
    const rekeyed = await http(server.url, "POST", "/jobs/reused/events", logEvent("new 2"), {
      "idempotency-key": "k-1",
    });
    assert.equal(rekeyed.status, 201, rekeyed.text);
    assert.deepEqual(rekeyed.json.sequences, [2]);
    assert.equal(rekeyed.json.replayed, false);
    const events = (await http(server.url, "GET", "/jobs/reused/events?since=0")).json.events;
    assert.deepEqual(events.map((e: { data: { line: string } }) => e.data.line), [
      "new 1",
      "new 2",
    ]);
    const job = (await http(server.url, "GET", "/jobs/reused")).json;
    assert.equal(job.kind, "new");
    assert.equal(job.last_sequence, 2);
  });
});

Deno.test("a request the database refuses (locked past its wait) answers 503 with Retry-After, not 500", async () => {
  await withServer({}, async (server) => {
    await createJob(server.url, { id: "before" });
    // Another process holds the write lock longer than the server waits for it.
    const other = new DatabaseSync(join(server.dataDir, "jobwire.db"));
    other.exec("BEGIN EXCLUSIVE");
    try {
      const create = await http(server.url, "POST", "/jobs", { id: "during" });
      assertError(create, 503, "unavailable");
      assert.equal(create.headers.get("retry-after"), "1");
      assert.match(create.json.error.message, /database/);
      const remove = await http(server.url, "DELETE", "/jobs/before");
      assertError(remove, 503, "unavailable");
      // An operator sees them counted as the database's refusals, not as 500s.
      const metrics = (await http(server.url, "GET", "/metrics")).text;
      assert.match(metrics, /^jobwire_storage_errors_total 2$/m);
      assert.match(metrics, /^jobwire_server_errors_total 0$/m);
      assert.match(metrics, /^jobwire_lock_waits_total \d+$/m);
    } finally {
      other.exec("COMMIT");
      other.close();
    }
    assert.equal((await http(server.url, "POST", "/jobs", { id: "during" })).status, 201);
    assert.equal((await http(server.url, "DELETE", "/jobs/before")).status, 200);
  });
});

Deno.test("a create or delete waiting for a lock another process holds blocks no other request, and goes through once it is let go", async () => {
  await withServer({}, async (server) => {
    await createJob(server.url, { id: "old" });
    const other = new DatabaseSync(join(server.dataDir, "jobwire.db"));
    other.exec("BEGIN EXCLUSIVE");
    let released = false;
    try {
      const order: string[] = [];
      const create = http(server.url, "POST", "/jobs", { id: "waited" }).then((reply) => {
        order.push("create");
        return reply;
      });
      const remove = http(server.url, "DELETE", "/jobs/old").then((reply) => {
        order.push("delete");
        return reply;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Served meanwhile, on the same thread: the waits above hold nothing up.
      const read = await http(server.url, "GET", "/jobs/old");
      assert.equal(read.status, 200);
      order.push("read");
      other.exec("COMMIT");
      released = true;
      assert.equal((await create).status, 201);
      assert.equal((await remove).status, 200);
      assert.equal(order[0], "read");
      assert.equal((await http(server.url, "GET", "/jobs/old")).status, 410);
    } finally {
      if (!released) other.exec("COMMIT");
      other.close();
    }
  });
});

Deno.test("API answers are kept by no cache, and the events URL varies by Accept", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    for (const path of [`/jobs/${id}`, "/jobs", `/jobs/${id}/events`, "/jobs/nope"]) {
      const reply = await http(server.url, "GET", path);
      assert.equal(reply.headers.get("cache-control"), "no-store", path);
    }
    const page = await http(server.url, "GET", `/jobs/${id}/events`);
    assert.match(page.headers.get("vary") ?? "", /\bAccept\b/);
    const sse = await fetch(`${server.url}/jobs/${id}/events?close_on_finish=1`, {
      headers: { accept: "text/event-stream" },
    });
    assert.match(sse.headers.get("vary") ?? "", /\bAccept\b/);
    assert.match(sse.headers.get("cache-control") ?? "", /no-cache/);
    await sse.body?.cancel();
    // Beside the CORS headers of an allowed page, which vary by Origin too.
    const dash = "http://dash.example";
    await withServer({ "allowed-origins": dash }, async (other) => {
      const otherId = await createJob(other.url);
      const cross = await http(other.url, "GET", `/jobs/${otherId}/events`, undefined, {
        origin: dash,
      });
      assert.equal(cross.status, 200);
      assert.match(cross.headers.get("vary") ?? "", /\bAccept\b/);
      assert.match(cross.headers.get("vary") ?? "", /\bOrigin\b/);
    });
    // The status page's own files keep what they say.
    const index = await fetch(`${server.url}/`);
    assert.notEqual(index.headers.get("cache-control"), "no-store");
    await index.body?.cancel();
  });
});

Deno.test("POST /jobs takes no body as an empty object, and refuses a body that is no object", async () => {
  await withServer({}, async (server) => {
    const empty = await fetch(`${server.url}/jobs`, { method: "POST" });
    assert.equal(empty.status, 201, await empty.text());
    for (const body of ["null", "[]", "3", '"x"']) {
      const reply = await fetch(`${server.url}/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(reply.status, 422, body);
      assert.equal((await reply.json()).error.code, "validation_error");
    }
  });
});

Deno.test("a create retried with its Idempotency-Key answers the job it made, not a second one", async () => {
  await withServer({}, async (server) => {
    const body = { kind: "export", metadata: { rows: 10 } };
    const key = { "idempotency-key": "create-export-7" };
    const first = await http(server.url, "POST", "/jobs", body, key);
    assert.equal(first.status, 201, first.text);
    assert.equal(first.headers.get("idempotent-replayed"), null);
    const id = first.json.job.id as string;
    await publish(server.url, id, logEvent("started"));
    const retry = await http(server.url, "POST", "/jobs", body, key);
    assert.equal(retry.status, 201, retry.text);
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(retry.json.job.id, id);
    assert.equal(retry.json.job.last_sequence, 1, "the job as it is now");
    assert.equal(retry.headers.get("location"), `/jobs/${id}`);
    // The key with another body is refused, and another key makes another job.
    const other = await http(server.url, "POST", "/jobs", { kind: "import" }, key);
    assert.equal(other.status, 422, other.text);
    assert.equal(other.json.error.code, "idempotency_key_reused");
    const second = await http(server.url, "POST", "/jobs", body, {
      "idempotency-key": "create-export-8",
    });
    assert.equal(second.status, 201);
    assert.notEqual(second.json.job.id, id);
    const listed = (await http(server.url, "GET", "/jobs?kind=export")).json.jobs;
    assert.equal(listed.length, 2);
    // A key that is no key is refused; an id given with a key is the id.
    const bad = await http(server.url, "POST", "/jobs", body, { "idempotency-key": "a b" });
    assert.equal(bad.status, 422, bad.text);
    const named = await http(server.url, "POST", "/jobs", { id: "named" }, key);
    assert.equal(named.json.job.id, "named");
    assert.equal((await http(server.url, "POST", "/jobs", { id: "named" }, key)).status, 409);
    // The job a key made, deleted since: a retry is told so, and makes no other.
    assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
    const late = await http(server.url, "POST", "/jobs", body, key);
    assert.equal(late.status, 410, late.text);
    assert.equal(late.json.error.code, "job_gone");
    assert.match(late.json.error.message, new RegExp(id));
    assert.equal((await http(server.url, "GET", "/jobs?kind=export")).json.jobs.length, 1);
  });
});

Deno.test("a create's Idempotency-Key is the caller's own: another caller's same key makes its own job", async () => {
  await withServer(AUTH, async (server) => {
    const alice = bearer(await tokenFor("alice", "read write"));
    const bob = bearer(await tokenFor("bob", "read write"));
    const key = { "idempotency-key": "order-17" };
    const first = await http(server.url, "POST", "/jobs", {}, { ...alice, ...key });
    assert.equal(first.status, 201, first.text);
    const other = await http(server.url, "POST", "/jobs", {}, { ...bob, ...key });
    assert.equal(other.status, 201, other.text);
    assert.equal(other.headers.get("idempotent-replayed"), null);
    assert.notEqual(other.json.job.id, first.json.job.id);
    assert.equal(other.json.job.owner, "bob");
    // Ids are not made of the key: none can be taken ahead of its caller.
    assert.match(first.json.job.id, /^[0-9a-f-]{36}$/);
    const again = await http(server.url, "POST", "/jobs", {}, { ...alice, ...key });
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.json.job.id, first.json.job.id);
  });
});
