/**
 * Stream tickets: `POST /tickets {job_id}` returns a single-use ticket for one job's
 * stream, bound to the Origin that asked for it and valid for `--ticket-ttl`.
 */
import assert from "node:assert/strict";
import { http } from "../_helpers/clients.ts";
import { type TestServer, withServer } from "../_helpers/server.ts";
import { AUTH, bearer, mint, nowSeconds, tokenFor } from "../_helpers/tokens.ts";
import {
  assertForbidden,
  assertUnauthorized,
  call,
  createJobAs,
  expectStreamRefused,
  expectWsOpen,
  expectWsRefused,
  openStream,
  publishAs,
} from "./_support.ts";

const GOOD = "http://good.example";
const OTHER = "http://other.example";

/** Asks for a ticket as `token`; asserts the 201 and its shape; returns the ticket. */
async function ticketFor(
  server: TestServer,
  token: string,
  jobId: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const reply = await call(server.url, token, "POST", "/tickets", { job_id: jobId }, headers);
  assert.equal(reply.status, 201, reply.text);
  assert.equal(reply.json.job_id, jobId);
  assert.equal(typeof reply.json.ticket, "string");
  assert.ok(reply.json.ticket.length >= 16, "a ticket must be long enough not to be guessed");
  assert.equal(typeof reply.json.expires_in, "number");
  assert.ok(!reply.json.ticket.includes(token), "the ticket is not the token");
  return reply.json.ticket;
}

const ws = (server: TestServer, jobId: string, ticket: string) =>
  `${server.url}/ws/jobs/${jobId}?ticket=${encodeURIComponent(ticket)}`;
const sse = (server: TestServer, jobId: string, ticket: string) =>
  `${server.url}/jobs/${jobId}/events?ticket=${encodeURIComponent(ticket)}`;

Deno.test("a ticket opens one WebSocket once; the second use closes 1008", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    await publishAs(server.url, alice, id, "before");
    const created = await call(server.url, alice, "POST", "/tickets", { job_id: id });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.expires_in, 30);
    const ticket = created.json.ticket as string;
    const first = await expectWsOpen(ws(server, id, ticket));
    try {
      const replayed = await first.next((m) => m.sequence === 1);
      assert.equal(replayed.data.line, "before");
      await publishAs(server.url, alice, id, "live");
      assert.equal((await first.next((m) => m.sequence === 2)).data.line, "live");
      await expectWsRefused(ws(server, id, ticket), 1008, /invalid|ticket/);
      // Also refused on the other transports once used.
      await expectStreamRefused(sse(server, id, ticket), 401);
    } finally {
      await first.close();
    }
    // A made-up ticket is refused.
    await expectWsRefused(ws(server, id, "made-up-ticket-000000000000"), 1008);
  });
});

Deno.test("a ticket opens one SSE stream once; the second use answers 401", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const ticket = await ticketFor(server, alice, id);
    const first = await openStream(sse(server, id, ticket), "sse");
    assert.equal(first.status, 200, first.text);
    try {
      await first.stream!.next((m) => m.json.type === "connection");
      const again = await expectStreamRefused(sse(server, id, ticket), 401, "invalid_token");
      assert.ok(again.status === 401);
      await expectWsRefused(ws(server, id, ticket), 1008);
    } finally {
      await first.stream!.close();
    }
    // NDJSON works with a ticket too.
    const nd = await openStream(sse(server, id, await ticketFor(server, alice, id)), "ndjson");
    assert.equal(nd.status, 200, nd.text);
    await nd.stream!.close();
  });
});

Deno.test("a ticket is only for its job: another job, several jobs or all=1 are refused", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const other = await createJobAs(server.url, alice);
    await expectWsRefused(ws(server, other, await ticketFor(server, alice, id)), 1008, "forbidden");
    await expectStreamRefused(
      sse(server, other, await ticketFor(server, alice, id)),
      403,
      "forbidden",
    );
    const t1 = await ticketFor(server, alice, id);
    await expectWsRefused(`${server.url}/ws?jobs=${id},${other}&ticket=${t1}`, 1008, "forbidden");
    const t2 = await ticketFor(server, alice, id);
    await expectWsRefused(`${server.url}/ws?all=1&ticket=${t2}`, 1008, "forbidden");
    const t3 = await ticketFor(server, alice, id);
    await expectStreamRefused(`${server.url}/events?all=1&ticket=${t3}`, 403, "forbidden");
    // A ticket is not a token for the rest of the API.
    const t4 = await ticketFor(server, alice, id);
    assertUnauthorized(await http(server.url, "GET", `/jobs/${id}?ticket=${t4}`));
    assertUnauthorized(await http(server.url, "GET", `/jobs?ticket=${t4}`));
    assertUnauthorized(await http(server.url, "GET", `/jobs?token=${t4}`));
    assertUnauthorized(
      await http(server.url, "POST", `/jobs/${id}/events?ticket=${t4}`, {
        type: "log",
        data: { line: "x" },
      }),
    );
  });
});

Deno.test("a socket opened with a ticket cannot subscribe to other jobs, even of the same owner", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const sibling = await createJobAs(server.url, alice);
    await publishAs(server.url, alice, sibling, "sibling secret");
    const socket = await expectWsOpen(ws(server, id, await ticketFor(server, alice, id)));
    try {
      socket.send({ type: "subscribe", job_id: sibling });
      const answer = await socket.next((m) => m.job_id === sibling);
      assert.equal(
        answer.type,
        "error",
        `the ticket reached job ${sibling}: ${JSON.stringify(answer)}`,
      );
      assert.equal(answer.data.code, "forbidden");
      await publishAs(server.url, alice, sibling, "sibling later");
      await publishAs(server.url, alice, id, "own");
      await socket.next((m) => m.data?.line === "own");
      assert.ok(!JSON.stringify(socket.messages).includes("sibling"), "sibling events leaked");
    } finally {
      await socket.close();
    }
  });
});

Deno.test("an expired ticket is refused", async () => {
  await withServer({ ...AUTH, "ticket-ttl": "1s" }, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const forWs = await ticketFor(server, alice, id);
    const forSse = await ticketFor(server, alice, id);
    const issued = Date.now();
    // The ticket lives 1 s; wait until that has certainly passed.
    await new Promise((r) => setTimeout(r, Math.max(0, issued + 1200 - Date.now())));
    await expectWsRefused(ws(server, id, forWs), 1008);
    await expectStreamRefused(sse(server, id, forSse), 401);
    // A fresh one still works.
    const fresh = await expectWsOpen(ws(server, id, await ticketFor(server, alice, id)));
    await fresh.close();
  });
});

Deno.test("a ticket is bound to the Origin that asked for it", async () => {
  await withServer({ ...AUTH, "allowed-origins": `${GOOD},${OTHER}` }, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const issue = () => ticketFor(server, alice, id, { origin: GOOD });
    // Used from another (allowed) origin: refused.
    await expectWsRefused(ws(server, id, await issue()), 1008, "forbidden", { origin: OTHER });
    await expectStreamRefused(sse(server, id, await issue()), 403, "forbidden", "sse", {
      origin: OTHER,
    });
    // Used without an Origin (outside the browser that asked for it): refused.
    await expectWsRefused(ws(server, id, await issue()), 1008, "forbidden");
    // Used from the same origin: accepted.
    const same = await expectWsOpen(ws(server, id, await issue()), { origin: GOOD });
    await same.close();
    const sameSse = await openStream(sse(server, id, await issue()), "sse", { origin: GOOD });
    assert.equal(sameSse.status, 200, sameSse.text);
    await sameSse.stream!.close();
    // Issued to the server's own page and used by its EventSource, which sends no Origin
    // on a same-origin GET: accepted.
    const own = await ticketFor(server, alice, id, { origin: server.url });
    const ownSse = await openStream(sse(server, id, own), "sse");
    assert.equal(ownSse.status, 200, ownSse.text);
    await ownSse.stream!.close();
  });
});

Deno.test("creating a ticket needs authentication and read access to the job", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read write");
    const id = await createJobAs(server.url, alice);
    assertUnauthorized(await http(server.url, "POST", "/tickets", { job_id: id }), "unauthorized");
    assertUnauthorized(
      await http(server.url, "POST", "/tickets", { job_id: id }, bearer("not-a-token")),
      "invalid_token",
    );
    assertForbidden(await call(server.url, bob, "POST", "/tickets", { job_id: id }));
    // Read access is enough: a reader named in the jobs claim, or read:all.
    await ticketFor(server, await tokenFor("carol", "read", { jobs: [id] }), id);
    await ticketFor(server, await tokenFor("auditor", "read:all"), id);
    const unknown = await call(server.url, alice, "POST", "/tickets", { job_id: "no-such-job" });
    assert.equal(unknown.status, 404, unknown.text);
    // A ticket of bob's own job does not open alice's.
    const bobsJob = await createJobAs(server.url, bob);
    await expectWsRefused(ws(server, id, await ticketFor(server, bob, bobsJob)), 1008, "forbidden");
  });
});

Deno.test("a ticket is for the job it was issued for, not one made again later under its id", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read write");
    const made = await call(server.url, alice, "POST", "/jobs", { id: "reuse-x" });
    assert.equal(made.status, 201, made.text);
    const ticket = await ticketFor(server, alice, "reuse-x");
    const socket = await expectWsOpen(
      `${server.url}/ws?jobs=reuse-x&ticket=${encodeURIComponent(ticket)}`,
    );
    try {
      assert.equal((await socket.next((m) => m.type === "subscribed")).data.job.owner, "alice");
      assert.equal((await call(server.url, alice, "DELETE", "/jobs/reuse-x")).status, 200);
      const again = await call(server.url, bob, "POST", "/jobs", { id: "reuse-x" });
      assert.equal(again.status, 201, again.text);
      await publishAs(server.url, bob, "reuse-x", "bob's own line");
      socket.send({ type: "subscribe", job_id: "reuse-x", since: 0 });
      const answer = await socket.next((m) =>
        m.type === "subscribed" || (m.type === "error" && m.data.code === "forbidden")
      );
      assert.equal(answer.type, "error", JSON.stringify(answer));
      assert.equal(answer.data.code, "forbidden");
      assert.ok(!JSON.stringify(socket.messages).includes("bob"), "bob's job reached the ticket");
    } finally {
      await socket.close();
    }
  });
});

Deno.test("a ticket of a token that was then revoked (signed out) is refused", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write", { jti: "alice-session-1" });
    const id = await createJobAs(server.url, alice);
    const forWs = await ticketFor(server, alice, id);
    const forSse = await ticketFor(server, alice, id);
    const out = await call(server.url, alice, "POST", "/auth/logout");
    assert.equal(out.json.revoked, true, out.text);
    await expectWsRefused(ws(server, id, forWs), 1008);
    await expectStreamRefused(sse(server, id, forSse), 401);
  });
});

Deno.test("a request refused as not acceptable (406) does not use up its ticket", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const ticket = await ticketFor(server, alice, id);
    const refused = await fetch(sse(server, id, ticket), { headers: { accept: "*/*;q=0" } });
    assert.equal(refused.status, 406);
    await refused.body?.cancel();
    const opened = await fetch(sse(server, id, ticket), {
      headers: { accept: "text/event-stream" },
    });
    assert.equal(opened.status, 200);
    await opened.body?.cancel();
  });
});

Deno.test("a HEAD request or a query refused (422) does not use up its ticket", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const ticket = await ticketFor(server, alice, id);
    const sseHeaders = { accept: "text/event-stream" };
    const head = await fetch(sse(server, id, ticket), { method: "HEAD", headers: sseHeaders });
    assert.equal(head.status, 200);
    assert.match(head.headers.get("content-type") ?? "", /^text\/event-stream/);
    await head.body?.cancel();
    const badSince = await fetch(`${sse(server, id, ticket)}&since=abc`, { headers: sseHeaders });
    assert.equal(badSince.status, 422);
    await badSince.body?.cancel();
    const badPage = await fetch(`${sse(server, id, ticket)}&limit=0`, {
      headers: { accept: "application/json" },
    });
    assert.equal(badPage.status, 422);
    await badPage.body?.cancel();
    const many = `${server.url}/events?jobs=${id}&ticket=${encodeURIComponent(ticket)}`;
    const badMany = await fetch(`${many}&since=x:y`, { headers: sseHeaders });
    assert.equal(badMany.status, 422);
    await badMany.body?.cancel();
    // Still unused: it opens the stream, once.
    const opened = await fetch(sse(server, id, ticket), { headers: sseHeaders });
    assert.equal(opened.status, 200);
    await opened.body?.cancel();
    await expectStreamRefused(sse(server, id, ticket), 401, "invalid_token");
  });
});

Deno.test("a ticket's expires_in says when it ends with its token, when that comes first", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const soon = await mint({ sub: "alice", scope: "read" }, { exp: nowSeconds() + 10 });
    const reply = await call(server.url, soon, "POST", "/tickets", { job_id: id });
    assert.equal(reply.status, 201, reply.text);
    assert.ok(reply.json.expires_in <= 10, `expires_in ${reply.json.expires_in}`);
    assert.ok(reply.json.expires_in >= 8, `expires_in ${reply.json.expires_in}`);
  });
});
