/**
 * Authorization by scope and ownership on every route and transport: lists, job reads,
 * publishing, deletion, SSE/NDJSON, the single-job and multi-job WebSockets, the `all=1`
 * firehose, and the operations routes.
 */
import assert from "node:assert/strict";
import { http } from "../_helpers/clients.ts";
import { type TestServer, withServer } from "../_helpers/server.ts";
import { AUTH, bearer, mint, tokenFor } from "../_helpers/tokens.ts";
import {
  assertForbidden,
  assertUnauthorized,
  call,
  createJobAs,
  expectStreamRefused,
  expectWsOpen,
  expectWsRefused,
  lastSequence,
  openStream,
  publishAs,
  Ws,
} from "./_support.ts";

/** Principals of the scope tests and two jobs: one of alice, one of bob. */
interface World {
  server: TestServer;
  alice: string;
  aliceReader: string;
  bob: string;
  /** read scope, no jobs of its own, bob's job granted by the `jobs` claim. */
  carol: string;
  readAll: string;
  writeAll: string;
  admin: string;
  /** A subject with no scope at all. */
  nobody: string;
  /** bob's job in a `jobs` claim, but no scope to read it with. */
  claimOnly: string;
  jobA: string;
  jobB: string;
}

async function world(server: TestServer): Promise<World> {
  const alice = await tokenFor("alice", "read write");
  const bob = await tokenFor("bob", "read write");
  const jobA = await createJobAs(server.url, alice, { id: "job-of-alice-7f3a" });
  const jobB = await createJobAs(server.url, bob, { id: "job-of-bob-91c2" });
  return {
    server,
    alice,
    aliceReader: await tokenFor("alice", "read"),
    bob,
    carol: await tokenFor("carol", "read", { jobs: [jobB] }),
    readAll: await tokenFor("auditor", "read:all"),
    writeAll: await tokenFor("operator", "write:all"),
    admin: await tokenFor("root", "admin"),
    nobody: await tokenFor("nobody", ""),
    claimOnly: await tokenFor("dave", "", { jobs: [jobB] }),
    jobA,
    jobB,
  };
}

function withWorld(fn: (w: World) => Promise<void>, overrides = {}): Promise<void> {
  return withServer({ ...AUTH, ...overrides }, async (server) => fn(await world(server)));
}

const ids = (reply: { json: { jobs: { id: string }[] } }) =>
  reply.json.jobs.map((j) => j.id).sort();

Deno.test("GET /jobs lists only the jobs the principal may see", async () => {
  await withWorld(async (w) => {
    const list = async (token: string, query = "") => {
      const reply = await call(w.server.url, token, "GET", `/jobs${query}`);
      assert.equal(reply.status, 200, reply.text);
      return ids(reply);
    };
    assert.deepEqual(await list(w.alice), [w.jobA]);
    assert.deepEqual(await list(w.aliceReader), [w.jobA]);
    assert.deepEqual(await list(w.bob), [w.jobB]);
    assert.deepEqual(await list(w.carol), [w.jobB]);
    assert.deepEqual(await list(w.readAll), [w.jobA, w.jobB].sort());
    assert.deepEqual(await list(w.writeAll), [w.jobA, w.jobB].sort());
    assert.deepEqual(await list(w.admin), [w.jobA, w.jobB].sort());
    assert.deepEqual(await list(w.nobody), []);
    // Filtering by another owner does not widen what is visible.
    assert.deepEqual(await list(w.alice, "?owner=bob"), []);
    assert.deepEqual(await list(w.readAll, "?owner=bob"), [w.jobB]);
    // A `jobs` claim given as a comma-separated string works like an array.
    const granted = await tokenFor("guest", "read", { jobs: `${w.jobA}, ${w.jobB}` });
    assert.deepEqual(await list(granted), [w.jobA, w.jobB].sort());
  });
});

Deno.test("GET /jobs/:id and its event page: owner, other user, jobs claim, read:all", async () => {
  await withWorld(async (w) => {
    const cases: [string, string, string, number][] = [
      ["alice", w.alice, w.jobA, 200],
      ["alice", w.alice, w.jobB, 403],
      ["alice (read)", w.aliceReader, w.jobA, 200],
      ["bob", w.bob, w.jobA, 403],
      ["carol (jobs claim)", w.carol, w.jobB, 200],
      ["carol (jobs claim)", w.carol, w.jobA, 403],
      ["read:all", w.readAll, w.jobA, 200],
      ["write:all", w.writeAll, w.jobB, 200],
      ["admin", w.admin, w.jobB, 200],
      ["no scope", w.nobody, w.jobA, 403],
      ["jobs claim without read", w.claimOnly, w.jobB, 403],
    ];
    for (const [who, token, job, status] of cases) {
      const paths = [`/jobs/${job}`, `/jobs/${job}/events`];
      // A long-poll is refused at once (an allowed one would wait for an event).
      if (status === 403) paths.push(`/jobs/${job}/events?wait=30`, `/jobs/${job}?wait=terminal`);
      for (const path of paths) {
        const reply = await call(w.server.url, token, "GET", path);
        assert.equal(reply.status, status, `${who} GET ${path}: ${reply.text}`);
        if (status === 403) {
          assertForbidden(reply);
          assert.ok(!reply.text.includes('"owner"'), "a refusal must not show the job");
        }
      }
    }
  });
});

Deno.test("publishing needs write on the job: write (own), write:all, admin; read scopes are refused", async () => {
  await withWorld(async (w) => {
    const cases: [string, string, string, number][] = [
      ["alice to own", w.alice, w.jobA, 201],
      ["alice to bob's", w.alice, w.jobB, 403],
      ["alice read-only to own", w.aliceReader, w.jobA, 403],
      ["carol (jobs claim) to granted", w.carol, w.jobB, 403],
      ["read:all", w.readAll, w.jobA, 403],
      ["no scope", w.nobody, w.jobA, 403],
      ["write:all to bob's", w.writeAll, w.jobB, 201],
      ["admin to alice's", w.admin, w.jobA, 201],
    ];
    const expected = new Map([[w.jobA, 0], [w.jobB, 0]]);
    for (const [who, token, job, status] of cases) {
      const reply = await publishAs(w.server.url, token, job, who);
      assert.equal(reply.status, status, `${who}: ${reply.text}`);
      if (status === 403) assertForbidden(reply);
      else expected.set(job, expected.get(job)! + 1);
      // The shortcuts are guarded the same way.
      const shortcut = await call(w.server.url, token, "POST", `/jobs/${job}/progress`, {
        progress: 10,
      });
      assert.equal(shortcut.status, status, `${who} progress: ${shortcut.text}`);
      if (status === 201) expected.set(job, expected.get(job)! + 1);
    }
    for (const path of ["log", "start", "complete", "fail", "cancel", "queue"]) {
      const body = path === "fail" ? { error: "x" } : path === "log" ? { line: "x" } : {};
      assertForbidden(await call(w.server.url, w.bob, "POST", `/jobs/${w.jobA}/${path}`, body));
    }
    // Refused events were not stored.
    assert.equal(await lastSequence(w.server.url, w.admin, w.jobA), expected.get(w.jobA));
    assert.equal(await lastSequence(w.server.url, w.admin, w.jobB), expected.get(w.jobB));
  });
});

Deno.test("creating jobs needs write; the owner is the token's sub; only an admin may set another owner", async () => {
  await withWorld(async (w) => {
    const create = (token: string, body: Record<string, unknown>) =>
      call(w.server.url, token, "POST", "/jobs", body);
    const own = await create(w.alice, { kind: "mine" });
    assert.equal(own.status, 201, own.text);
    assert.equal(own.json.job.owner, "alice");
    const ownExplicit = await create(w.alice, { owner: "alice" });
    assert.equal(ownExplicit.status, 201, ownExplicit.text);
    assertForbidden(await create(w.alice, { id: "stolen-1", owner: "bob" }));
    assertForbidden(await create(w.aliceReader, { id: "reader-1" }));
    assertForbidden(await create(w.readAll, { id: "auditor-1" }));
    assertForbidden(await create(w.carol, { id: "carol-1" }));
    assertForbidden(await create(w.nobody, { id: "nobody-1" }));
    const byWriteAll = await create(w.writeAll, { id: "operator-1" });
    assert.equal(byWriteAll.status, 201, byWriteAll.text);
    assert.equal(byWriteAll.json.job.owner, "operator");
    const forBob = await create(w.admin, { id: "admin-made-for-bob", owner: "bob" });
    assert.equal(forBob.status, 201, forBob.text);
    assert.equal(forBob.json.job.owner, "bob");
    // The job made for bob is bob's: he may publish, alice may not.
    assert.equal((await publishAs(w.server.url, w.bob, "admin-made-for-bob")).status, 201);
    assertForbidden(await publishAs(w.server.url, w.alice, "admin-made-for-bob"));
    // None of the refused jobs exist.
    for (const id of ["stolen-1", "reader-1", "auditor-1", "carol-1", "nobody-1"]) {
      const reply = await call(w.server.url, w.admin, "GET", `/jobs/${id}`);
      assert.equal(reply.status, 404, `${id}: ${reply.text}`);
    }
  });
});

Deno.test("DELETE needs write on the job", async () => {
  await withWorld(async (w) => {
    assertForbidden(await call(w.server.url, w.bob, "DELETE", `/jobs/${w.jobA}`));
    assertForbidden(await call(w.server.url, w.aliceReader, "DELETE", `/jobs/${w.jobA}`));
    assertForbidden(await call(w.server.url, w.readAll, "DELETE", `/jobs/${w.jobA}`));
    assertForbidden(await call(w.server.url, w.carol, "DELETE", `/jobs/${w.jobB}`));
    assert.equal((await call(w.server.url, w.admin, "GET", `/jobs/${w.jobA}`)).status, 200);
    assert.equal((await call(w.server.url, w.admin, "GET", `/jobs/${w.jobB}`)).status, 200);
    const own = await call(w.server.url, w.alice, "DELETE", `/jobs/${w.jobA}`);
    assert.equal(own.status, 200, own.text);
    const other = await call(w.server.url, w.writeAll, "DELETE", `/jobs/${w.jobB}`);
    assert.equal(other.status, 200, other.text);
  });
});

Deno.test("SSE and NDJSON streams answer 401/403 before streaming, and stream for allowed readers", async () => {
  await withWorld(async (w) => {
    await publishAs(w.server.url, w.bob, w.jobB, "bob's secret line");
    const base = w.server.url;
    for (const kind of ["sse", "ndjson"] as const) {
      await expectStreamRefused(`${base}/jobs/${w.jobB}/events`, 401, "unauthorized", kind);
      await expectStreamRefused(
        `${base}/jobs/${w.jobB}/events`,
        403,
        "forbidden",
        kind,
        bearer(w.alice),
      );
      await expectStreamRefused(
        `${base}/jobs/${w.jobA}/events`,
        403,
        "forbidden",
        kind,
        bearer(w.carol),
      );
      // Multi-job streams: one invisible job refuses the whole request.
      await expectStreamRefused(
        `${base}/events?jobs=${w.jobA},${w.jobB}`,
        403,
        "forbidden",
        kind,
        bearer(w.alice),
      );
      for (const token of [w.carol, w.bob, w.readAll, w.admin]) {
        const opened = await openStream(`${base}/jobs/${w.jobB}/events`, kind, bearer(token));
        assert.equal(opened.status, 200, opened.text);
        try {
          const line = await opened.stream!.next((m) =>
            (kind === "sse" ? m.json : m).data?.line === "bob's secret line"
          );
          assert.ok(line);
        } finally {
          await opened.stream!.close();
        }
      }
    }
  });
});

Deno.test("WebSocket on one job closes 1008 'forbidden' for a principal without read access", async () => {
  await withWorld(async (w) => {
    const ws = (job: string, token: string) =>
      `${w.server.url}/ws/jobs/${job}?token=${encodeURIComponent(token)}`;
    await expectWsRefused(ws(w.jobB, w.alice), 1008, "forbidden");
    await expectWsRefused(ws(w.jobA, w.bob), 1008, "forbidden");
    await expectWsRefused(ws(w.jobA, w.carol), 1008, "forbidden");
    await expectWsRefused(ws(w.jobA, w.nobody), 1008, "forbidden");
    for (const [job, token] of [[w.jobA, w.alice], [w.jobB, w.carol], [w.jobA, w.readAll]]) {
      const open = await expectWsOpen(ws(job!, token!));
      await open.close();
    }
  });
});

Deno.test("multi-job WebSocket: an invisible job gets an error message, visible ones stream", async () => {
  await withWorld(async (w) => {
    const ws = await Ws.connect(
      `${w.server.url}/ws?jobs=${w.jobA},${w.jobB}&token=${encodeURIComponent(w.alice)}`,
    );
    try {
      assert.ok(ws.opened);
      const refusal = await ws.find((m) => m.type === "error");
      assert.equal(refusal.job_id, w.jobB);
      assert.equal(refusal.data.code, "forbidden");
      await ws.find((m) => m.type === "subscribed" && m.job_id === w.jobA);
      await ws.next((m) => m.type === "error");
      // A later subscribe to the invisible job is refused the same way.
      ws.send({ type: "subscribe", job_id: w.jobB });
      const again = await ws.next((m) => m.type === "error");
      assert.equal(again.job_id, w.jobB);
      assert.equal(again.data.code, "forbidden");
      assert.equal((await publishAs(w.server.url, w.bob, w.jobB, "for bob only")).status, 201);
      assert.equal((await publishAs(w.server.url, w.alice, w.jobA, "for alice")).status, 201);
      const event = await ws.next((m) => m.sequence !== null && m.sequence !== undefined);
      assert.equal(event.job_id, w.jobA);
      assert.equal(event.data.line, "for alice");
      // Nothing of bob's job other than the refusals reached alice.
      const leaked = ws.messages.filter((m) => m.job_id === w.jobB && m.type !== "error");
      assert.deepEqual(leaked, []);
      assert.ok(!JSON.stringify(ws.messages).includes("for bob only"));
    } finally {
      await ws.close();
    }
  });
});

Deno.test("all=1 streams (WebSocket and SSE) carry only the principal's visible jobs", async () => {
  await withWorld(async (w) => {
    const base = w.server.url;
    const firehose = await Ws.connect(`${base}/ws?all=1&token=${encodeURIComponent(w.alice)}`);
    const sse = await openStream(`${base}/events?all=1`, "sse", bearer(w.alice));
    const auditor = await Ws.connect(`${base}/ws?all=1&token=${encodeURIComponent(w.readAll)}`);
    try {
      assert.ok(firehose.opened);
      assert.equal(sse.status, 200, sse.text);
      const hello = await firehose.next((m) => m.type === "connection");
      assert.deepEqual(hello.data.jobs.map((j: { id: string }) => j.id), [w.jobA]);
      // Bob creates a job and publishes to both of his; alice publishes to hers.
      const jobB2 = await createJobAs(base, w.bob, { id: "job-of-bob-second-5d0e" });
      assert.equal((await publishAs(base, w.bob, w.jobB, "bob 1")).status, 201);
      assert.equal((await publishAs(base, w.bob, jobB2, "bob 2")).status, 201);
      assert.equal((await call(base, w.bob, "DELETE", `/jobs/${jobB2}`)).status, 200);
      const jobA2 = await createJobAs(base, w.alice, { id: "job-of-alice-second-c4b1" });
      assert.equal((await publishAs(base, w.alice, w.jobA, "alice 1")).status, 201);
      assert.equal((await publishAs(base, w.alice, jobA2, "alice end")).status, 201);
      // The auditor (read:all) sees bob's events: they were published and fanned out.
      await auditor.next((m) => m.job_id === jobB2 && m.data?.line === "bob 2");
      await auditor.next((m) => m.job_id === jobB2 && m.type === "deleted");
      // Alice's streams reach her last event; bob's ids never appear on them.
      await firehose.next((m) => m.job_id === jobA2 && m.data?.line === "alice end");
      await sse.stream!.next((m) => m.json.job_id === jobA2 && m.json.data?.line === "alice end");
      const created = firehose.messages.filter((m) => m.type === "created").map((m) => m.job_id);
      assert.deepEqual(created, [jobA2]);
      for (
        const [name, text] of [
          ["websocket", JSON.stringify(firehose.messages)],
          ["sse", sse.stream!.raw],
        ]
      ) {
        for (const bobs of [w.jobB, jobB2, "bob 1", "bob 2"]) {
          assert.ok(!text!.includes(bobs), `${name} stream of alice carried ${bobs}`);
        }
      }
    } finally {
      await firehose.close();
      await auditor.close();
      await sse.stream?.close();
    }
  });
});

Deno.test("/stats needs admin; /healthz and /metrics are open and /metrics names no job", async () => {
  await withWorld(async (w) => {
    const base = w.server.url;
    // Give the metrics something to count, including a watched job.
    await publishAs(base, w.alice, w.jobA, "x");
    const watcher = await expectWsOpen(`${base}/ws/jobs/${w.jobA}?token=${w.alice}`);
    try {
      assertUnauthorized(await http(base, "GET", "/stats"), "unauthorized");
      for (const token of [w.alice, w.readAll, w.writeAll, w.carol]) {
        assertForbidden(await call(base, token, "GET", "/stats"));
      }
      const stats = await call(base, w.admin, "GET", "/stats");
      assert.equal(stats.status, 200, stats.text);
      assert.equal(stats.json.jobs.total, 2);
      const health = await http(base, "GET", "/healthz");
      assert.equal(health.status, 200, health.text);
      const metrics = await http(base, "GET", "/metrics");
      assert.equal(metrics.status, 200, metrics.text);
      assert.match(metrics.text, /jobwire_/);
      for (const id of [w.jobA, w.jobB, "job-of"]) {
        assert.ok(!metrics.text.includes(id), `/metrics names job ${id}`);
        assert.ok(!health.text.includes(id), `/healthz names job ${id}`);
      }
    } finally {
      await watcher.close();
    }
  });
});

Deno.test("a token without sub creates jobs only with write:all or admin: a job of no one's would be out of its reach", async () => {
  await withServer(AUTH, async (server) => {
    for (const claims of [{ scope: "write" }, { sub: "", scope: "read write" }]) {
      const token = await mint(claims);
      const reply = await call(server.url, token, "POST", "/jobs", { id: "orphan" });
      assertForbidden(reply);
      assert.match(reply.json.error.message, /no sub/);
    }
    assert.equal(
      (await call(server.url, await tokenFor("root", "admin"), "GET", "/jobs/orphan"))
        .status,
      404,
      "nothing was created",
    );
    // write:all reaches every job, its own unowned ones too.
    const operator = await mint({ scope: "write:all" });
    const made = await call(server.url, operator, "POST", "/jobs", { id: "unowned" });
    assert.equal(made.status, 201, made.text);
    assert.equal(made.json.job.owner, null);
    const logged = await call(server.url, operator, "POST", "/jobs/unowned/log", { line: "x" });
    assert.equal(logged.status, 201, logged.text);
  });
});
