/**
 * Abuse limits: the browser Origin allow-list and CORS, the publish rate per principal,
 * connection caps (per principal, per IP, in total), and size limits on WebSocket messages,
 * events and request bodies.
 */
import assert from "node:assert/strict";
import { http, logEvent } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { findPython } from "../_helpers/python.ts";
import { AUTH, bearer, tokenFor } from "../_helpers/tokens.ts";
import {
  call,
  closeOf,
  createJobAs,
  expectStreamRefused,
  expectWsOpen,
  expectWsRefused,
  lastSequence,
  openStream,
  type StreamOutcome,
  waitFor,
  Ws,
} from "./_support.ts";

const GOOD = "http://good.example";
const EVIL = "http://evil.example";

Deno.test("Origin allow-list: a WebSocket from a foreign Origin closes 1008 'origin not allowed', even with a valid token", async () => {
  await withServer({ ...AUTH, "allowed-origins": GOOD }, async (server) => {
    const token = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, token);
    const url = `${server.url}/ws/jobs/${id}?token=${token}`;
    await expectWsRefused(url, 1008, "origin not allowed", { origin: EVIL });
    await expectWsRefused(url, 1008, "origin not allowed", { origin: "null" });
    await expectWsRefused(`${server.url}/ws?all=1&token=${token}`, 1008, "origin not allowed", {
      origin: "http://good.example.evil.example",
    });
    // Allowed: the listed origin, the server's own origin, and no Origin at all.
    for (const headers of [{ origin: GOOD }, { origin: server.url }, {}]) {
      const ws = await expectWsOpen(url, headers);
      await ws.close();
    }
    // An incomplete handshake from a foreign Origin is refused as HTTP, never a 500.
    for (const connection of [undefined, "Upgrade"]) {
      const reply = await fetch(`${server.url}/jobs`, {
        headers: { upgrade: "websocket", origin: EVIL, ...(connection ? { connection } : {}) },
      });
      assert.equal(reply.status, 403, await reply.clone().text());
      assert.equal((await reply.json()).error.code, "origin_not_allowed");
    }
  });
});

Deno.test("Origin allow-list over HTTP: foreign Origin 403, allowed Origin gets CORS headers, preflight 204", async () => {
  await withServer({ ...AUTH, "allowed-origins": GOOD }, async (server) => {
    const token = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, token);
    const base = server.url;

    // SSE and NDJSON from a foreign origin are refused before streaming.
    const refused = await expectStreamRefused(
      `${base}/jobs/${id}/events`,
      403,
      "origin_not_allowed",
      "sse",
      { ...bearer(token), origin: EVIL },
    );
    assert.equal(refused.status, 403);
    await expectStreamRefused(
      `${base}/jobs/${id}/events`,
      403,
      "origin_not_allowed",
      "ndjson",
      { ...bearer(token), origin: EVIL },
    );
    // A cross-site write is refused and has no effect.
    const forged = await call(base, token, "POST", `/jobs/${id}/events`, logEvent("csrf"), {
      origin: EVIL,
    });
    assert.equal(forged.status, 403, forged.text);
    assert.equal(forged.json.error.code, "origin_not_allowed");
    assert.equal(forged.headers.get("access-control-allow-origin"), null);
    assert.equal(await lastSequence(base, token, id), 0);
    const read = await call(base, token, "GET", "/jobs", undefined, { origin: EVIL });
    assert.equal(read.status, 403);

    // The allowed origin: CORS headers on answers and streams.
    const list = await call(base, token, "GET", "/jobs", undefined, { origin: GOOD });
    assert.equal(list.status, 200, list.text);
    assert.equal(list.headers.get("access-control-allow-origin"), GOOD);
    assert.match(list.headers.get("vary") ?? "", /origin/i);
    const stream: StreamOutcome = await openStream(`${base}/jobs/${id}/events`, "sse", {
      ...bearer(token),
      origin: GOOD,
    });
    assert.equal(stream.status, 200, stream.text);
    try {
      assert.equal(stream.stream!.response.headers.get("access-control-allow-origin"), GOOD);
      await stream.stream!.next((m) => m.json.type === "connection");
    } finally {
      await stream.stream!.close();
    }
    // A 401 to an allowed origin still carries CORS headers (so the page can read it).
    const unauthorized = await http(base, "GET", "/jobs", undefined, { origin: GOOD });
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers.get("access-control-allow-origin"), GOOD);
    // So does the 401 of a write refused before its route, and the page may read why.
    for (const [method, path] of [["POST", "/jobs"], ["DELETE", `/jobs/${id}`]] as const) {
      const refused = await http(base, method, path, method === "POST" ? {} : undefined, {
        origin: GOOD,
      });
      assert.equal(refused.status, 401, refused.text);
      assert.equal(refused.headers.get("access-control-allow-origin"), GOOD, `${method} ${path}`);
      assert.match(refused.headers.get("access-control-expose-headers") ?? "", /www-authenticate/);
    }
    const foreign = await http(base, "POST", "/jobs", {}, { origin: EVIL });
    assert.equal(foreign.headers.get("access-control-allow-origin"), null);

    // Preflight from the allowed origin.
    const preflight = await fetch(`${base}/jobs/${id}/events`, {
      method: "OPTIONS",
      headers: {
        origin: GOOD,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    await preflight.body?.cancel();
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), GOOD);
    assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/i);
    // Headers a page adds for its own ends (tracing, request ids) pass the preflight too.
    const traced = await fetch(`${base}/jobs/${id}/events`, {
      method: "OPTIONS",
      headers: {
        origin: GOOD,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, X-Request-ID,sentry-trace, baggage",
      },
    });
    await traced.body?.cancel();
    assert.equal(traced.status, 204);
    const allowed = (traced.headers.get("access-control-allow-headers") ?? "").split(", ");
    for (
      const name of ["authorization", "content-type", "x-request-id", "sentry-trace", "baggage"]
    ) {
      assert.ok(allowed.includes(name), `${name} in ${allowed}`);
    }
    assert.match(traced.headers.get("vary") ?? "", /Access-Control-Request-Headers/);
    // Preflight from a foreign origin gets no permission.
    const evilPreflight = await fetch(`${base}/jobs`, {
      method: "OPTIONS",
      headers: { origin: EVIL, "access-control-request-method": "POST" },
    });
    await evilPreflight.body?.cancel();
    assert.ok(evilPreflight.status >= 400, `foreign preflight: ${evilPreflight.status}`);
    assert.equal(evilPreflight.headers.get("access-control-allow-origin"), null);

    // No Origin (a non-browser client): allowed, and no CORS headers needed.
    const plain = await call(base, token, "GET", "/jobs");
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("access-control-allow-origin"), null);
  });
});

Deno.test("publish rate: over the burst answers 429 with Retry-After, refused events are not stored, other principals unaffected", async () => {
  await withServer({ ...AUTH, "max-publish-rate": 50 }, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read write");
    const id = await createJobAs(server.url, alice);
    const bobsJob = await createJobAs(server.url, bob);
    // 40 batches of 10 events at once: 400 events against a burst of 100 at 50/s.
    const batch = { events: Array.from({ length: 10 }, (_, i) => logEvent(i)) };
    const replies = await Promise.all(
      Array.from(
        { length: 40 },
        () => call(server.url, alice, "POST", `/jobs/${id}/events`, batch),
      ),
    );
    const accepted = replies.filter((r) => r.status === 201);
    const limited = replies.filter((r) => r.status === 429);
    assert.equal(
      accepted.length + limited.length,
      replies.length,
      replies.map((r) => r.status).join(),
    );
    assert.ok(limited.length >= 20, `only ${limited.length} of 40 batches were limited`);
    assert.ok(accepted.length >= 1, "the burst lets the first batches through");
    for (const reply of limited) {
      assert.equal(reply.json.error.code, "rate_limited");
      const retry = reply.headers.get("retry-after");
      assert.ok(
        retry !== null && /^\d+$/.test(retry) && Number(retry) >= 1,
        `Retry-After ${retry}`,
      );
    }
    // Exactly the accepted events were stored.
    const stored = await lastSequence(server.url, alice, id);
    assert.equal(stored, accepted.length * 10);
    const page = await call(server.url, alice, "GET", `/jobs/${id}/events?limit=1000`);
    assert.equal(page.json.events.length, stored);
    // Single events are limited too, and another principal still publishes.
    let single = await call(server.url, alice, "POST", `/jobs/${id}/events`, logEvent("one"));
    for (let i = 0; i < 200 && single.status === 201; i++) {
      single = await call(server.url, alice, "POST", `/jobs/${id}/events`, logEvent("one"));
    }
    assert.equal(single.status, 429, single.text);
    const other = await call(server.url, bob, "POST", `/jobs/${bobsJob}/events`, logEvent("b"));
    assert.equal(other.status, 201, other.text);
  });
});

Deno.test("publish rate: a refused publish costs nothing", async () => {
  await withServer({ ...AUTH, "max-publish-rate": 5, "publish-burst": 10 }, async (server) => {
    const eve = await tokenFor("eve", "read write");
    const bob = await tokenFor("bob", "read write");
    const bobsJob = await createJobAs(server.url, bob);
    const ownJob = await createJobAs(server.url, eve);
    // Making a job took one of eve's ten: wait until the bucket is full again.
    await new Promise((r) => setTimeout(r, 400));
    const lines = { lines: Array.from({ length: 999 }, (_, i) => `line ${i}`) };
    const refused = await call(server.url, eve, "POST", `/jobs/${bobsJob}/log`, lines);
    assert.equal(refused.status, 403, refused.text);
    const finished = await call(server.url, eve, "POST", "/jobs/no-such-job/log", lines);
    assert.equal(finished.status, 404, finished.text);
    // The bucket is as full as before: ten events go through at once.
    for (let i = 0; i < 10; i++) {
      const own = await call(server.url, eve, "POST", `/jobs/${ownJob}/events`, logEvent(i));
      assert.equal(own.status, 201, `event ${i}: ${own.text}`);
    }
  });
});

Deno.test("publish rate: a retry with a stored Idempotency-Key is answered whatever the rate and costs nothing", async () => {
  // One event per second, ten at once: the test runs well inside the first seconds.
  await withServer({ ...AUTH, "max-publish-rate": 1, "publish-burst": 10 }, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const path = `/jobs/${id}/events`;
    const batch = { events: [logEvent("a"), logEvent("b")] };
    const send = (body: unknown, key?: string) =>
      call(
        server.url,
        alice,
        "POST",
        path,
        body,
        key === undefined ? {} : { "idempotency-key": key },
      );
    const first = await send(batch, "k1");
    assert.equal(first.status, 201, first.text);
    // Retries while the bucket has room are given back what they were charged ...
    for (let i = 0; i < 4; i++) {
      const retry = await send(batch, "k1");
      assert.equal(retry.status, 201, retry.text);
      assert.equal(retry.json.replayed, true);
    }
    // ... so the rest of the burst is still there: the job's creation, 2 events and 7 more.
    const rest = await send({ events: Array.from({ length: 7 }, (_, i) => logEvent(i)) });
    assert.equal(rest.status, 201, rest.text);
    // With the bucket empty, a retry is still answered, and new events are limited.
    const late = await send(batch, "k1");
    assert.equal(late.status, 201, late.text);
    assert.deepEqual(late.json.sequences, first.json.sequences);
    const limited = await send({ events: Array.from({ length: 5 }, (_, i) => logEvent(i)) });
    assert.equal(limited.status, 429, limited.text);
    // An unknown key is new events: limited too.
    assert.equal((await send(batch, "k2")).status, 429);
    // Stored: the first request's events once, and the 7.
    assert.equal(await lastSequence(server.url, alice, id), 2 + 7);
  });
});

Deno.test("connections per principal: the third WebSocket closes 1013 and the third SSE gets 429", async () => {
  await withServer({ ...AUTH, "max-connections-per-principal": 2 }, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read write");
    const id = await createJobAs(server.url, alice);
    const bobsJob = await createJobAs(server.url, bob);
    const url = `${server.url}/ws/jobs/${id}?token=${alice}`;
    const first = await expectWsOpen(url);
    const second = await expectWsOpen(url);
    try {
      await expectWsRefused(url, 1013);
      // At the limit, a job the principal may not read is still refused as forbidden.
      await expectWsRefused(`${server.url}/ws/jobs/${bobsJob}?token=${alice}`, 1008, "forbidden");
      await expectStreamRefused(
        `${server.url}/jobs/${bobsJob}/events`,
        403,
        "forbidden",
        "sse",
        bearer(alice),
      );
      const sse = await expectStreamRefused(
        `${server.url}/jobs/${id}/events`,
        429,
        "too_many_connections",
        "sse",
        bearer(alice),
      );
      assert.equal(sse.status, 429);
      // A long-poll counts as a stream too; the refusal says when to try again.
      const poll = await call(server.url, alice, "GET", `/jobs/${id}?wait=terminal&timeout=5`);
      assert.equal(poll.status, 429, poll.text);
      assert.equal(poll.json.error.code, "too_many_connections");
      assert.equal(poll.headers.get("retry-after"), "5");
      await expectStreamRefused(
        `${server.url}/events?jobs=${id}`,
        429,
        undefined,
        "ndjson",
        bearer(alice),
      );
      // Another principal is not affected.
      const bobs = await expectWsOpen(`${server.url}/ws/jobs/${bobsJob}?token=${bob}`);
      await bobs.close();
      // Closing one frees a slot.
      await first.close();
      const again = await waitFor(
        async () => {
          const ws = await Ws.connect(url);
          const message = await ws.next(() => true, 2000).catch(() => undefined);
          if (message?.type === "connection") return ws;
          await ws.close();
          return undefined;
        },
        5000,
        "a freed connection slot",
      );
      await again.close();
    } finally {
      await first.close();
      await second.close();
    }
  });
});

Deno.test("refused streams do not use up connection slots", async () => {
  await withServer({ ...AUTH, "max-connections-per-principal": 2 }, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read write");
    const id = await createJobAs(server.url, alice);
    const bobsJob = await createJobAs(server.url, bob);
    for (let i = 0; i < 3; i++) {
      await expectWsRefused(`${server.url}/ws/jobs/${bobsJob}?token=${alice}`, 1008, "forbidden");
      await expectWsRefused(`${server.url}/ws/jobs/no-such-job?token=${alice}`, 4004);
      await expectStreamRefused(
        `${server.url}/jobs/${bobsJob}/events`,
        403,
        "forbidden",
        "sse",
        bearer(alice),
      );
      await expectStreamRefused(
        `${server.url}/jobs/no-such-job/events`,
        404,
        undefined,
        "sse",
        bearer(alice),
      );
    }
    const first = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${alice}`);
    const second = await openStream(`${server.url}/jobs/${id}/events`, "sse", bearer(alice));
    try {
      assert.equal(second.status, 200, second.text);
    } finally {
      await first.close();
      await second.stream?.close();
    }
  });
});

Deno.test("connections per IP: with every address counted, streams of different principals from one address are capped", async () => {
  // Loopback clients are exempt by default; "none" counts them like any address.
  const counted = { "max-connections-per-ip": 2, "limits-exempt-ips": "none" };
  await withServer({ ...AUTH, ...counted }, async (server) => {
    const tokens = await Promise.all(["u1", "u2", "u3"].map((u) => tokenFor(u, "read:all write")));
    const id = await createJobAs(server.url, tokens[0]!);
    const first = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${tokens[0]}`);
    const second = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${tokens[1]}`);
    try {
      await expectWsRefused(`${server.url}/ws/jobs/${id}?token=${tokens[2]}`, 1013);
      await expectStreamRefused(
        `${server.url}/jobs/${id}/events`,
        429,
        undefined,
        "sse",
        bearer(tokens[2]!),
      );
    } finally {
      await first.close();
      await second.close();
    }
  });
});

Deno.test("by default loopback clients are not counted per address, and admin tokens are not limited per principal or rate", async () => {
  const limits = {
    "max-connections-per-ip": 2,
    "max-connections-per-principal": 2,
    "max-publish-rate": 50,
  };
  await withServer({ ...AUTH, ...limits }, async (server) => {
    const users = await Promise.all(["u1", "u2", "u3"].map((u) => tokenFor(u, "read:all write")));
    const admin = await tokenFor("operator", "admin");
    const id = await createJobAs(server.url, users[0]!);
    const open: Ws[] = [];
    try {
      // Three principals from one (loopback) address: the per-address cap of 2 does not apply.
      for (const token of users) {
        open.push(await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${token}`));
      }
      // A user's own per-principal cap still holds from loopback.
      open.push(await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${users[0]}`));
      await expectWsRefused(`${server.url}/ws/jobs/${id}?token=${users[0]}`, 1013);
      // The admin token opens past the per-principal cap.
      for (let i = 0; i < 3; i++) {
        open.push(await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${admin}`));
      }
      const sse = await openStream(`${server.url}/jobs/${id}/events`, "sse", bearer(admin));
      assert.equal(sse.status, 200, sse.text);
      await sse.stream?.close();
      // The admin publishes 400 events at once against a burst of 100 at 50/s: all accepted.
      const batch = { events: Array.from({ length: 10 }, (_, i) => logEvent(i)) };
      const replies = await Promise.all(
        Array.from(
          { length: 40 },
          () => call(server.url, admin, "POST", `/jobs/${id}/events`, batch),
        ),
      );
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([201]));
      assert.equal(await lastSequence(server.url, admin, id), 400);
      // A writer without admin is still held to the rate.
      const limited = await Promise.all(
        Array.from(
          { length: 40 },
          () => call(server.url, users[1]!, "POST", `/jobs/${id}/events`, batch),
        ),
      );
      assert.ok(limited.some((r) => r.status === 429), limited.map((r) => r.status).join());
    } finally {
      for (const ws of open) await ws.close();
    }
  });
});

Deno.test("without auth, limits count clients by address: loopback is exempt unless --limits-exempt-ips none", async () => {
  for (const exempt of ["loopback", "none"]) {
    const limits = { "max-connections-per-principal": 2, "limits-exempt-ips": exempt };
    await withServer(limits, async (server) => {
      const created = await call(server.url, undefined, "POST", "/jobs", {});
      assert.equal(created.status, 201, created.text);
      const url = `${server.url}/ws/jobs/${created.json.job.id}`;
      const first = await expectWsOpen(url);
      const second = await expectWsOpen(url);
      try {
        if (exempt === "none") {
          await expectWsRefused(url, 1013);
        } else {
          const third = await expectWsOpen(url);
          await third.close();
        }
      } finally {
        await first.close();
        await second.close();
      }
    });
  }
});

Deno.test("max-connections 1: a second stream is refused (WebSocket 1013, SSE 503)", async () => {
  await withServer({ ...AUTH, "max-connections": 1 }, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read:all");
    const id = await createJobAs(server.url, alice);
    const open = await openStream(`${server.url}/jobs/${id}/events`, "sse", bearer(alice));
    assert.equal(open.status, 200, open.text);
    try {
      await open.stream!.next((m) => m.json.type === "connection");
      const ws = await Ws.connect(`${server.url}/ws/jobs/${id}?token=${bob}`);
      const closed = await closeOf(ws);
      assert.equal(closed.code, 1013, JSON.stringify(closed));
      assert.equal(ws.messages.length, 0);
      await expectStreamRefused(
        `${server.url}/jobs/${id}/events`,
        503,
        "overloaded",
        "sse",
        bearer(bob),
      );
      await expectStreamRefused(
        `${server.url}/events?jobs=${id}`,
        503,
        "overloaded",
        "ndjson",
        bearer(bob),
      );
      // Plain requests are not streams and still work.
      assert.equal((await call(server.url, bob, "GET", `/jobs/${id}`)).status, 200);
    } finally {
      await open.stream!.close();
    }
  });
});

/** Asks for WebSocket upgrades and resets each connection (RST) right after the request. */
const RESET_BEFORE_101 = `
import base64, os, socket, struct, sys
port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\nUpgrade: websocket\\r\\n"
               f"Connection: Upgrade\\r\\nSec-WebSocket-Key: {key}\\r\\n"
               "Sec-WebSocket-Version: 13\\r\\n\\r\\n").encode())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
`;

const PYTHON = findPython();

Deno.test({
  name:
    "a WebSocket whose client resets just before the 101 gives its slot back (the runtime tells nothing of it)",
  ignore: PYTHON === undefined,
  async fn() {
    await withServer({ "max-connections": 3 }, async (server) => {
      assert.equal((await http(server.url, "POST", "/jobs", { id: "rst" })).status, 201);
      const reset = await new Deno.Command(PYTHON!, {
        args: ["-c", RESET_BEFORE_101, new URL(server.url).port, "/ws/jobs/rst", "3"],
      }).output();
      assert.ok(reset.success, new TextDecoder().decode(reset.stderr));
      // Given up on once they have not opened for 10 s (checked every second).
      await new Promise((r) => setTimeout(r, 11_500));
      const streams = await Promise.all(
        [1, 2, 3].map(() =>
          fetch(`${server.url}/jobs/rst/events`, { headers: { accept: "text/event-stream" } })
        ),
      );
      try {
        assert.deepEqual(streams.map((r) => r.status), [200, 200, 200]);
      } finally {
        await Promise.all(streams.map((r) => r.body?.cancel()));
      }
    });
  },
});

Deno.test("a WebSocket client message over 64 KiB closes the connection with 1009", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, token);
    const ws = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${token}`);
    try {
      // Just under the limit: answered normally.
      const padding = "p".repeat(60 * 1024);
      ws.send({ type: "ping", client_time: padding });
      const pong = await ws.next((m) => m.type === "pong");
      assert.equal(pong.data.client_time.length, padding.length);
      // Over the limit: closed.
      ws.send({ type: "ping", client_time: "x".repeat(64 * 1024 + 1) });
      const closed = await closeOf(ws);
      assert.equal(closed.code, 1009, JSON.stringify(closed));
    } finally {
      await ws.close();
    }
    // A binary message over the limit too.
    const binary = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${token}`);
    try {
      binary.socket.send(new Uint8Array(65 * 1024));
      assert.equal((await closeOf(binary)).code, 1009);
    } finally {
      await binary.close();
    }
    // The limit is in bytes: 30 000 three-byte characters (90 000 bytes of UTF-8) are over it.
    const wide = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${token}`);
    try {
      wide.send({ type: "ping", client_time: "\u20ac".repeat(30_000) });
      const closed = await closeOf(wide, 2000);
      assert.equal(closed.code, 1009, `a 90 000-byte message: ${JSON.stringify(closed)}`);
    } finally {
      await wide.close();
    }
  });
});

Deno.test("bodies over 1 MiB answer 413 (declared or streamed) and events over 64 KiB are refused; nothing stored", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, token);
    const big = JSON.stringify({ type: "log", data: { line: "y".repeat(1024 * 1024) } });
    const declared = await call(server.url, token, "POST", `/jobs/${id}/events`, big);
    assert.equal(declared.status, 413, declared.text);
    assert.equal(declared.json.error.code, "payload_too_large");
    const bigJob = await call(server.url, token, "POST", "/jobs", {
      metadata: { blob: "z".repeat(1100 * 1024) },
    });
    assert.equal(bigJob.status, 413, bigJob.text);
    // Streamed without Content-Length (chunked): cut off while reading.
    const bytes = new TextEncoder().encode(big);
    const streamed = await fetch(`${server.url}/jobs/${id}/events`, {
      method: "POST",
      headers: { ...bearer(token), "content-type": "application/json" },
      body: new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 64 * 1024) {
            controller.enqueue(bytes.slice(i, i + 64 * 1024));
          }
          controller.close();
        },
      }),
    });
    const streamedText = await streamed.text();
    assert.equal(streamed.status, 413, streamedText);
    // One event over 64 KiB in a body under 1 MiB.
    const largeEvent = await call(server.url, token, "POST", `/jobs/${id}/events`, {
      type: "log",
      data: { line: "e".repeat(70 * 1024) },
    });
    assert.equal(largeEvent.status, 413, largeEvent.text);
    assert.equal(await lastSequence(server.url, token, id), 0);
    const jobs = await call(server.url, token, "GET", "/jobs");
    assert.deepEqual(jobs.json.jobs.map((j: { id: string }) => j.id), [id]);
  });
});
