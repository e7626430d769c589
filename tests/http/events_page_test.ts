import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createJob, http, logEvent, publish, type Reply, waitFor } from "../_helpers/clients.ts";
import { startTestServer, withChildServer, withServer } from "../_helpers/server.ts";
import { MAX_PAGE_CHARS } from "../../src/http/routes/events.ts";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Asserts the JSON error shape with `status` and `code`. */
function assertError(reply: Reply, status: number, code: string): void {
  assert.equal(
    reply.status,
    status,
    `expected ${status} ${code}, got ${reply.status} ${reply.text}`,
  );
  assert.match(reply.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(reply.json?.error?.code, code, reply.text);
  assert.equal(typeof reply.json.error.message, "string");
}

/** Long-polls that actually waited, from `/metrics`. */
async function longPolls(base: string): Promise<number> {
  const text = (await http(base, "GET", "/metrics")).text;
  const line = text.split("\n").find((l) => l.startsWith("jobwire_long_polls_total "));
  assert.ok(line !== undefined, "jobwire_long_polls_total present");
  return Number(line.split(" ")[1]);
}

/** Resolves once a waiter is registered on the job (it counts as a watcher). */
async function waiterRegistered(base: string, id: string): Promise<void> {
  await waitFor(
    async () => {
      const probe = await http(base, "GET", `/jobs/${id}`);
      return Number(probe.headers.get("x-watchers")) >= 1;
    },
    5000,
    "the long-poll to register",
  );
}

Deno.test("events page pages with since and limit", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, ...Array.from({ length: 5 }, (_, i) => logEvent(i + 1)));

    const first = await http(server.url, "GET", `/jobs/${id}/events?since=0&limit=2`);
    assert.equal(first.status, 200, first.text);
    assert.match(first.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(first.json.job_id, id);
    assert.deepEqual(first.json.events.map((e: { sequence: number }) => e.sequence), [1, 2]);
    assert.equal(first.json.next_since, 2);
    assert.equal(first.json.has_more, true);
    assert.equal(first.json.last_sequence, 5);
    assert.equal(first.json.first_available, 1);
    assert.equal(first.json.truncated, false);
    assert.equal(first.json.status, "pending");

    const second = await http(server.url, "GET", `/jobs/${id}/events?since=2&limit=2`);
    assert.deepEqual(second.json.events.map((e: { sequence: number }) => e.sequence), [3, 4]);
    assert.equal(second.json.next_since, 4);
    assert.equal(second.json.has_more, true);

    const third = await http(server.url, "GET", `/jobs/${id}/events?since=4&limit=2`);
    assert.deepEqual(third.json.events.map((e: { sequence: number }) => e.sequence), [5]);
    assert.equal(third.json.next_since, 5);
    assert.equal(third.json.has_more, false);
    assert.equal(third.json.truncated, false);

    const end = await http(server.url, "GET", `/jobs/${id}/events?since=5`);
    assert.deepEqual(end.json.events, []);
    assert.equal(end.json.next_since, 5);
    assert.equal(end.json.has_more, false);
    assert.equal(end.json.truncated, false);
  });
});

Deno.test("events page stops at about 4 MiB of events and says there is more", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    // 200 events of 60,000 characters: 12 MB in all, three or four pages at the cap.
    const big = (n: number) => ({ type: "log", data: { line: `${n}:${"x".repeat(60_000)}` } });
    for (let n = 0; n < 200; n += 10) {
      await publish(server.url, id, ...Array.from({ length: 10 }, (_, k) => big(n + k + 1)));
    }
    const seen: number[] = [];
    let since = 0;
    for (let pages = 1;; pages++) {
      const page = await http(server.url, "GET", `/jobs/${id}/events?since=${since}&limit=1000`);
      assert.equal(page.status, 200);
      assert.ok(page.text.length < MAX_PAGE_CHARS + 100_000, `page of ${page.text.length}`);
      seen.push(...page.json.events.map((e: { sequence: number }) => e.sequence));
      since = page.json.next_since;
      if (!page.json.has_more) {
        assert.ok(pages >= 3, `${pages} pages`);
        break;
      }
    }
    assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => i + 1));
  });
});

Deno.test("events page without since starts at the first event and follows next_since to the end", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, ...Array.from({ length: 7 }, (_, i) => logEvent(i + 1)));
    const all = await http(server.url, "GET", `/jobs/${id}/events`);
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.json.events.map((e: { sequence: number }) => e.sequence),
      [1, 2, 3, 4, 5, 6, 7],
    );
    const seen: number[] = [];
    let since = 0;
    for (let guard = 0; guard < 10; guard++) {
      const page = await http(server.url, "GET", `/jobs/${id}/events?since=${since}&limit=3`);
      seen.push(...page.json.events.map((e: { sequence: number }) => e.sequence));
      since = page.json.next_since;
      if (!page.json.has_more) break;
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
  });
});

Deno.test("events page holds full envelopes", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(
      server.url,
      id,
      { type: "status", data: { status: "running" } },
      { type: "progress", data: { progress: 45.5, stage: "MCMC" } },
      { type: "training_progress", data: { epoch: 2, loss: 0.5 } },
    );
    const page = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    assert.equal(page.json.events.length, 3);
    for (const event of page.json.events) {
      assert.deepEqual(Object.keys(event), ["type", "job_id", "sequence", "timestamp", "data"]);
      assert.equal(event.job_id, id);
      assert.match(event.timestamp, ISO);
      assert.equal(typeof event.data, "object");
    }
    const [s, p, c] = page.json.events;
    assert.deepEqual([s.type, s.sequence, s.data.status], ["status", 1, "running"]);
    assert.deepEqual([p.type, p.data.progress, p.data.percentage, p.data.stage], [
      "progress",
      45.5,
      "45.5%",
      "MCMC",
    ]);
    assert.deepEqual([c.type, c.data], ["training_progress", { epoch: 2, loss: 0.5 }]);
    assert.equal(page.json.status, "running");
  });
});

Deno.test("events page long-poll returns the event published while it waits", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("old"));
    const waiting = http(server.url, "GET", `/jobs/${id}/events?since=1&wait=5`);
    await waiterRegistered(server.url, id);
    await publish(server.url, id, logEvent("fresh"));
    const reply = await waiting;
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.json.events.length, 1);
    assert.equal(reply.json.events[0].sequence, 2);
    assert.equal(reply.json.events[0].data.line, "fresh");
    assert.equal(reply.json.next_since, 2);
    assert.equal(reply.json.last_sequence, 2);
    assert.equal(reply.json.has_more, false);
    assert.equal(await longPolls(server.url), 1);
  });
});

Deno.test("events page long-poll with nothing published returns an empty list after the wait", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("only"));
    const reply = await http(server.url, "GET", `/jobs/${id}/events?since=1&wait=1`);
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(reply.json.events, []);
    assert.equal(reply.json.next_since, 1);
    assert.equal(reply.json.has_more, false);
    assert.equal(reply.json.truncated, false);
    assert.equal(await longPolls(server.url), 1);
  });
});

Deno.test("events page long-poll does not wait when events are already there", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const reply = await http(server.url, "GET", `/jobs/${id}/events?since=0&wait=30`);
    assert.deepEqual(reply.json.events.map((e: { sequence: number }) => e.sequence), [1, 2]);
    assert.equal(await longPolls(server.url), 0);
  });
});

Deno.test("events page long-poll does not wait on a finished job", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await http(server.url, "POST", `/jobs/${id}/start`);
    await http(server.url, "POST", `/jobs/${id}/complete`);
    const reply = await http(server.url, "GET", `/jobs/${id}/events?since=2&wait=30`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json.events, []);
    assert.equal(reply.json.status, "completed");
    assert.equal(await longPolls(server.url), 0);
  });
});

Deno.test("events page with since beyond the last sequence is truncated and does not wait", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2));
    const reply = await http(server.url, "GET", `/jobs/${id}/events?since=10&wait=30`);
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(reply.json.events, []);
    assert.equal(reply.json.truncated, true);
    assert.equal(reply.json.last_sequence, 2);
    assert.equal(reply.json.first_available, 1);
    // Following next_since goes on from where the job is, not from past its end.
    assert.equal(reply.json.next_since, 2);
    assert.equal(await longPolls(server.url), 0);
  });
});

Deno.test("events page starts at the first retained event past the per-job cap and says truncated", async () => {
  await withServer({ "max-events-per-job": 5 }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, ...Array.from({ length: 8 }, (_, i) => logEvent(i + 1)));
    const page = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    assert.equal(page.status, 200, page.text);
    assert.deepEqual(
      page.json.events.map((e: { sequence: number }) => e.sequence),
      [4, 5, 6, 7, 8],
    );
    assert.equal(page.json.first_available, 4);
    assert.equal(page.json.truncated, true);
    assert.equal(page.json.last_sequence, 8);
    assert.equal(page.json.next_since, 8);

    const fromRetained = await http(server.url, "GET", `/jobs/${id}/events?since=3`);
    assert.equal(fromRetained.json.truncated, false);
    assert.deepEqual(
      fromRetained.json.events.map((e: { sequence: number }) => e.sequence),
      [4, 5, 6, 7, 8],
    );
    const job = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(job.json.last_sequence, 8);
  });
});

Deno.test("events page answers 404 for an unknown job and 410 for a deleted one", async () => {
  await withServer({}, async (server) => {
    assertError(await http(server.url, "GET", "/jobs/never/events"), 404, "job_not_found");
    assertError(await http(server.url, "GET", "/jobs/never/events?wait=1"), 404, "job_not_found");
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
    assertError(await http(server.url, "GET", `/jobs/${id}/events`), 410, "job_gone");
    assertError(
      await http(server.url, "GET", `/jobs/${id}/events?since=0&wait=1`),
      410,
      "job_gone",
    );
  });
});

Deno.test("events page long-poll ends when the job is deleted while it waits", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const waiting = http(server.url, "GET", `/jobs/${id}/events?since=0&wait=30`);
    await waiterRegistered(server.url, id);
    assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
    const reply = await waiting;
    assert.equal(reply.status, 410, reply.text);
    assert.equal(reply.json.error.code, "job_gone");
    assert.match(reply.json.error.message, /deleted while waiting/);
  });
});

Deno.test("a long-poll or wait=terminal the server's shutdown ends answers 503 with Retry-After, not 410", async () => {
  const server = await startTestServer();
  const id = await createJob(server.url);
  await http(server.url, "POST", `/jobs/${id}/start`);
  const poll = http(server.url, "GET", `/jobs/${id}/events?since=1&wait=30`);
  const wait = http(server.url, "GET", `/jobs/${id}?wait=terminal&timeout=30`);
  await waitFor(
    async () =>
      Number((await http(server.url, "GET", `/jobs/${id}`)).headers.get("x-watchers")) >= 2,
    5000,
    "both waits to register",
  );
  const closing = server.close();
  for (const reply of await Promise.all([poll, wait])) {
    assert.equal(reply.status, 503, reply.text);
    assert.equal(reply.json.error.code, "unavailable");
    assert.equal(reply.headers.get("retry-after"), "1");
  }
  await closing;
});

Deno.test("events page refuses a bad query with 422 invalid_query", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    for (
      const query of [
        "limit=0",
        "limit=abc",
        "limit=-5",
        "limit=1001",
        "wait=999",
        "wait=-1",
        "wait=1.5",
        "since=abc",
        "since=-1",
        "format=xml",
        "format=snapshot",
      ]
    ) {
      const reply = await http(server.url, "GET", `/jobs/${id}/events?${query}`);
      assertError(reply, 422, "invalid_query");
      assert.ok(Array.isArray(reply.json.error.details), `${query}: ${reply.text}`);
    }
    const snapshot = await http(server.url, "GET", `/jobs/${id}/events?format=snapshot`);
    assert.match(
      snapshot.text,
      /format=snapshot needs a stream: ask for one with Accept: text\/event-stream/,
    );
    for (const format of ["json", "envelope"]) {
      const page = await http(server.url, "GET", `/jobs/${id}/events?format=${format}`);
      assert.equal(page.status, 200, page.text);
      assert.deepEqual(page.json.events.map((e: { sequence: number }) => e.sequence), [1]);
    }
  });
});

Deno.test("a long-poll whose client goes away stops waiting, and answered ones leave no warning", async () => {
  await withChildServer(2, [], async (server) => {
    const id = await createJob(server.url);
    // Answered: an event arrives while it waits.
    const answered = http(server.url, "GET", `/jobs/${id}/events?since=0&wait=20`);
    await waiterRegistered(server.url, id);
    await publish(server.url, id, logEvent(1));
    assert.deepEqual((await answered).json.events.map((e: { sequence: number }) => e.sequence), [
      1,
    ]);
    // Abandoned: the client closes the connection while the server still waits.
    const gone = new AbortController();
    const abandoned = fetch(`${server.url}/jobs/${id}?wait=terminal&timeout=30`, {
      signal: gone.signal,
    }).catch((error) => error);
    await waiterRegistered(server.url, id);
    gone.abort();
    assert.equal((await abandoned).name, "AbortError");
    await waitFor(
      async () =>
        Number((await http(server.url, "GET", `/jobs/${id}`)).headers.get("x-watchers")) === 0,
      5000,
      "the server to drop the abandoned long-poll",
    );
    assert.doesNotMatch(server.output(), /legacy|ERROR/, server.output());
  });
});

Deno.test("a page of events the database lost says they are lost and goes on from the job's end, and marks the server unhealthy", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, ...Array.from({ length: 6 }, (_, i) => logEvent(i)));
    // As a damaged file: the job keeps 1-6, and rows 3-6 cannot be read.
    const other = new DatabaseSync(join(server.dataDir, "jobwire.db"));
    try {
      other.prepare("DELETE FROM events WHERE job_id = ? AND sequence >= 3").run(id);
    } finally {
      other.close();
    }
    const fine = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    assert.equal(fine.status, 200);
    assert.deepEqual(fine.json.events.map((e: { sequence: number }) => e.sequence), [1, 2]);
    // Not an empty page with more to come, which a client would ask for again for ever.
    const lost = await http(server.url, "GET", `/jobs/${id}/events?since=2`);
    assert.equal(lost.status, 200, lost.text);
    assert.deepEqual(lost.json.events, []);
    assert.equal(lost.json.truncated, true);
    assert.equal(lost.json.has_more, false);
    assert.equal(lost.json.next_since, 6);
    assert.equal((await http(server.url, "GET", "/healthz")).status, 503);
    assert.match(
      (await http(server.url, "GET", "/metrics")).text,
      /jobwire_storage_errors_total 1\b/,
    );
    // At the job's end, an empty page is what there is.
    const end = await http(server.url, "GET", `/jobs/${id}/events?since=6`);
    assert.equal(end.status, 200);
    assert.equal(end.json.has_more, false);
  });
});
