/**
 * Open streams end when the token they were opened with expires: WebSocket close 1008
 * "token expired", SSE/NDJSON a last `error` event saying so.
 */
import assert from "node:assert/strict";
import { type ChildServer, spawnServer, withServer } from "../_helpers/server.ts";
import { AUTH, bearer, mint, nowSeconds, SECRET, tokenFor } from "../_helpers/tokens.ts";
import {
  assertUnauthorized,
  call,
  closeOf,
  createJobAs,
  expectWsOpen,
  openStream,
  publishAs,
  type Ws,
} from "./_support.ts";

Deno.test("streams opened with a token that expires in ~2 s are closed with 'token expired'", async () => {
  await withServer(AUTH, async (server) => {
    const lasting = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, lasting);
    // exp has a one-second resolution: this token expires 2 to 3 s from now.
    const exp = nowSeconds() + 3;
    const short = await mint({ sub: "alice", scope: "read write" }, { exp });
    const shortTicketOwner = await mint({ sub: "alice", scope: "read" }, { exp });

    const ws = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${short}`);
    const multi = await expectWsOpen(`${server.url}/ws?jobs=${id}`, bearer(short));
    const sse = await openStream(`${server.url}/jobs/${id}/events`, "sse", bearer(short));
    const ndjson = await openStream(`${server.url}/events?jobs=${id}`, "ndjson", bearer(short));
    const ticket = await call(server.url, shortTicketOwner, "POST", "/tickets", { job_id: id });
    assert.equal(ticket.status, 201, ticket.text);
    const viaTicket = await expectWsOpen(
      `${server.url}/ws/jobs/${id}?ticket=${encodeURIComponent(ticket.json.ticket)}`,
    );
    // A stream with a long-lived token is not affected.
    const keeper = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${lasting}`);
    try {
      assert.equal(sse.status, 200, sse.text);
      assert.equal(ndjson.status, 200, ndjson.text);
      // Live events flow while the token is valid.
      assert.equal((await publishAs(server.url, lasting, id, "while valid")).status, 201);
      await ws.next((m) => m.data?.line === "while valid");
      await sse.stream!.next((m) => m.json.data?.line === "while valid");

      const deadline = (exp + 4) * 1000 - Date.now();
      for (const [name, socket] of [["ws", ws], ["multi", multi], ["ticket", viaTicket]] as const) {
        const closed = await closeOf(socket, deadline);
        assert.equal(closed.code, 1008, `${name}: ${JSON.stringify(closed)}`);
        assert.equal(closed.reason, "token expired", name);
        // Not before the token's exp.
        assert.ok(Date.now() >= exp * 1000, `${name} closed before exp`);
      }
      const sseEnd = await sse.stream!.next((m) => m.event === "error", deadline);
      assert.equal(sseEnd.json.type, "error");
      assert.equal(sseEnd.json.data.error, "token expired");
      await sse.stream!.done;
      const ndEnd = await ndjson.stream!.next((m) => m.type === "error", deadline);
      assert.equal(ndEnd.data.error, "token expired");
      await ndjson.stream!.done;

      // The expired token is now refused outright; the long-lived stream still works.
      assertUnauthorized(
        await call(server.url, short, "GET", `/jobs/${id}`),
        "token_expired",
      );
      assert.equal((await publishAs(server.url, lasting, id, "after")).status, 201);
      await keeper.next((m) => m.data?.line === "after");
      assert.equal(keeper.socket.readyState, WebSocket.OPEN);
    } finally {
      await Promise.all([ws.close(), multi.close(), viaTicket.close(), keeper.close()]);
      await sse.stream?.close();
      await ndjson.stream?.close();
    }
  });
});

Deno.test("signing out closes the streams the token opened, on every isolate ('token revoked')", async () => {
  await withTwoIsolates(async (server) => {
    const sockets: Ws[] = [];
    try {
      const session = await tokenFor("alice", "read write", { jti: "alice-session-7" });
      const other = await tokenFor("alice", "read write", { jti: "alice-session-8" });
      const id = await createJobAs(server.url, other);
      // Eight sockets on their own connections: the kernel spreads them over both isolates.
      for (let i = 0; i < 8; i++) {
        sockets.push(await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${session}`));
      }
      const keeper = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${other}`);
      sockets.push(keeper);
      const out = await call(server.url, session, "POST", "/auth/logout");
      assert.equal(out.json.revoked, true, out.text);
      for (const socket of sockets.slice(0, 8)) {
        assert.deepEqual(await closeOf(socket), { code: 1008, reason: "token revoked" });
      }
      // Another token of the same user keeps its stream.
      assert.equal((await publishAs(server.url, other, id, "still here")).status, 201);
      await keeper.next((m) => m.data?.line === "still here");
    } finally {
      await Promise.all(sockets.map((socket) => socket.close()));
    }
  });
});

Deno.test("a long-poll ends with 401 when its token expires or is revoked while it waits, and returns nothing after", async () => {
  await withTwoIsolates(async (server) => {
    const lasting = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, lasting);
    const exp = nowSeconds() + 3;
    const short = await mint({ sub: "alice", scope: "read" }, { exp });
    const started = Date.now();
    const [page, end] = await Promise.all([
      call(server.url, short, "GET", `/jobs/${id}/events?since=0&wait=30`),
      call(server.url, short, "GET", `/jobs/${id}?wait=terminal&timeout=30`),
      // Published after the token expired: neither wait may hand it out.
      (async () => {
        await new Promise((resolve) => setTimeout(resolve, exp * 1000 + 200 - Date.now()));
        assert.equal((await publishAs(server.url, lasting, id, "after expiry")).status, 201);
      })(),
    ]);
    for (const reply of [page, end]) {
      assertUnauthorized(reply, "token_expired");
      assert.ok(!reply.text.includes("after expiry"), reply.text);
    }
    // Ended by the expiry, not by the 30 s wait.
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);

    // Revoked on another isolate (connections spread over both): the waits end at once.
    const session = await tokenFor("alice", "read write", { jti: "alice-poll-1" });
    const waits = Array.from({ length: 6 }, (_, i) =>
      call(
        server.url,
        session,
        "GET",
        i % 2 === 0 ? `/jobs/${id}/events?since=1&wait=30` : `/jobs/${id}?wait=terminal&timeout=30`,
      ));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const revokedAt = Date.now();
    const out = await call(server.url, session, "POST", "/auth/logout");
    assert.equal(out.json.revoked, true, out.text);
    for (const reply of await Promise.all(waits)) {
      assertUnauthorized(reply, "invalid_token");
      assert.match(reply.json.error.message, /revoked/);
    }
    assert.ok(Date.now() - revokedAt < 10_000, `took ${Date.now() - revokedAt} ms`);
  });
});

/** Runs `test` against a server of two isolates that signs with the tests' secret. */
async function withTwoIsolates(test: (server: ChildServer) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-expiry-" });
  const server = await spawnServer([
    "--port",
    "0",
    "--data-dir",
    dataDir,
    "--workers",
    "2",
    "--jwt-secret",
    SECRET,
  ]);
  try {
    await test(server);
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}
