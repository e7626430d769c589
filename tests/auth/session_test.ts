/**
 * `GET /auth/session`: what the status page asks first. It always answers 200, telling
 * whether sign-in is needed and who the caller is, whichever way the token came.
 */
import assert from "node:assert/strict";
import { http } from "../_helpers/clients.ts";
import { runMain, startTestServer, withServer } from "../_helpers/server.ts";
import { AUTH, bearer, mint, tokenFor } from "../_helpers/tokens.ts";

Deno.test("auth/session says no sign-in is needed on a --no-auth server", async () => {
  await withServer({}, async (server) => {
    const reply = await http(server.url, "GET", "/auth/session");
    assert.equal(reply.status, 200);
    assert.equal(reply.json.auth, false);
    assert.equal(reply.json.signed_in, true);
    assert.equal(reply.headers.get("cache-control"), "no-store");
  });
});

Deno.test("auth/session answers 200 with the reason when the caller has no valid token", async () => {
  await withServer(AUTH, async (server) => {
    const none = await http(server.url, "GET", "/auth/session");
    assert.equal(none.status, 200);
    assert.deepEqual(none.json, {
      auth: true,
      signed_in: false,
      sub: null,
      scopes: [],
      expires_at: null,
      failure: "authentication_required",
    });
    const forged = await http(server.url, "GET", "/auth/session", undefined, bearer("x.y.z"));
    assert.equal(forged.status, 200);
    assert.equal(forged.json.failure, "invalid_token");
    const old = await mint({ sub: "ann", scope: "read" }, {
      exp: Math.floor(Date.now() / 1000) - 60,
    });
    const expired = await http(server.url, "GET", "/auth/session", undefined, bearer(old));
    assert.equal(expired.json.failure, "token_expired");
    assert.equal(expired.json.signed_in, false);
  });
});

Deno.test("auth/session names the caller of a bearer token, a ?token= and the login cookie", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-session-" });
  const added = await runMain([
    "user",
    "add",
    "alice",
    "--scope",
    "read write",
    "--data-dir",
    dataDir,
  ], {
    env: { JOBWIRE_PASSWORD: "alice-password" },
  });
  assert.equal(added.code, 0, added.stderr);
  const server = await startTestServer({ ...AUTH }, { dataDir });
  try {
    const token = await tokenFor("ops", "admin");
    const viaHeader = await http(server.url, "GET", "/auth/session", undefined, bearer(token));
    assert.equal(viaHeader.json.signed_in, true);
    assert.equal(viaHeader.json.sub, "ops");
    assert.deepEqual(viaHeader.json.scopes, ["admin"]);
    assert.ok(Date.parse(viaHeader.json.expires_at) > Date.now());
    assert.equal(viaHeader.json.failure, null);
    const viaQuery = await http(server.url, "GET", `/auth/session?token=${token}`);
    assert.equal(viaQuery.json.sub, "ops");

    const login = await http(server.url, "POST", "/auth/login", {
      username: "alice",
      password: "alice-password",
      cookie: true,
    });
    assert.equal(login.status, 200, login.text);
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0]!;
    const viaCookie = await http(server.url, "GET", "/auth/session", undefined, { cookie });
    assert.equal(viaCookie.json.sub, "alice");
    assert.deepEqual([...viaCookie.json.scopes].sort(), ["read", "write"]);
    const out = await http(server.url, "POST", "/auth/logout", {}, { cookie });
    const cleared = (out.headers.get("set-cookie") ?? "").split(";")[0]!;
    const after = await http(server.url, "GET", "/auth/session", undefined, { cookie: cleared });
    assert.equal(after.json.signed_in, false);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("auth/cookie makes the bearer token the HttpOnly cookie, for the token's lifetime and an hour", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("ops", "read");
    const reply = await http(server.url, "POST", "/auth/cookie", {}, bearer(token));
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.json.signed_in, true);
    assert.equal(reply.json.sub, "ops");
    const cookie = reply.headers.get("set-cookie") ?? "";
    assert.match(cookie, new RegExp(`^jobwire_token=${token.replaceAll(".", "\\.")};`));
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Strict/);
    const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)?.[1]);
    // tokenFor's tokens live an hour.
    assert.ok(maxAge > 3600 && maxAge <= 7200, `Max-Age ${maxAge}`);
    const viaCookie = await http(server.url, "GET", "/auth/session", undefined, {
      cookie: cookie.split(";")[0]!,
    });
    assert.equal(viaCookie.json.sub, "ops");
    // A page must hold the token: no token, or one only in a cookie, makes no cookie.
    assert.equal((await http(server.url, "POST", "/auth/cookie", {})).status, 401);
    const cookieOnly = await http(server.url, "POST", "/auth/cookie", {}, {
      cookie: cookie.split(";")[0]!,
    });
    assert.equal(cookieOnly.status, 422, cookieOnly.text);
    assert.equal(cookieOnly.headers.get("set-cookie"), null);
  });
  await withServer({}, async (server) => {
    const open = await http(server.url, "POST", "/auth/cookie", {});
    assert.equal(open.status, 400);
    assert.equal(open.json.error.code, "auth_disabled");
  });
});

Deno.test("the sign-in cookie is the status page's: a page of another origin, even an allowed one, gets no session of it", async () => {
  const allowed = "http://dash.example";
  await withServer({ ...AUTH, "allowed-origins": allowed }, async (server) => {
    const token = await tokenFor("ops", "admin");
    const cookie = `jobwire_token=${token}`;
    const own = `http://127.0.0.1:${server.port}`;
    // The status page itself (same origin, or no Origin at all) is signed in.
    for (const headers of [{ cookie }, { cookie, origin: own }]) {
      const reply = await http(server.url, "GET", "/jobs", undefined, headers);
      assert.equal(reply.status, 200, reply.text);
    }
    // An allowed page is not: neither reading, nor a simple POST a browser sends unasked.
    const read = await http(server.url, "GET", "/jobs", undefined, { cookie, origin: allowed });
    assert.equal(read.status, 401, read.text);
    const session = await http(server.url, "GET", "/auth/session", undefined, {
      cookie,
      origin: allowed,
    });
    assert.equal(session.json.signed_in, false);
    const write = await fetch(`${server.url}/jobs`, {
      method: "POST",
      headers: { cookie, origin: allowed, "content-type": "text/plain" },
      body: JSON.stringify({ id: "planted", owner: "someone" }),
    });
    assert.equal(write.status, 401, await write.text());
    assert.equal(
      (await http(server.url, "GET", "/jobs/planted", undefined, bearer(token))).status,
      404,
    );
    // Nor a WebSocket, which a browser opens with the cookie whatever the page's origin.
    const first = (origin: string) =>
      new Promise<string>((resolve) => {
        // Deno's WebSocket takes headers, as a browser sends them; its types do not say so.
        const options = { headers: { cookie, origin } } as unknown as string[];
        const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws?all=1`, options);
        socket.onmessage = (e) => {
          resolve(`message ${JSON.parse(e.data).type}`);
          socket.close();
        };
        socket.onclose = (e) => resolve(`close ${e.code} ${e.reason}`);
      });
    assert.equal(await first(own), "message connection");
    assert.match(await first(allowed), /^close 1008 /);
    // With its own token, the allowed page is served.
    const withToken = await http(server.url, "GET", "/jobs", undefined, {
      origin: allowed,
      ...bearer(token),
    });
    assert.equal(withToken.status, 200, withToken.text);
  });
});

Deno.test("answers that hold a token or ticket are kept by no cache", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-session-" });
  const added = await runMain(["user", "add", "bob", "--scope", "read", "--data-dir", dataDir], {
    env: { JOBWIRE_PASSWORD: "bob-password-1" },
  });
  assert.equal(added.code, 0, added.stderr);
  const server = await startTestServer({ ...AUTH }, { dataDir });
  try {
    const login = await http(server.url, "POST", "/auth/login", {
      username: "bob",
      password: "bob-password-1",
    });
    assert.equal(login.status, 200, login.text);
    const token = await tokenFor("ops", "admin");
    const job = await http(server.url, "POST", "/jobs", {}, bearer(token));
    const ticket = await http(
      server.url,
      "POST",
      "/tickets",
      { job_id: job.json.job.id },
      bearer(token),
    );
    assert.equal(ticket.status, 201, ticket.text);
    const cookie = await http(server.url, "POST", "/auth/cookie", {}, bearer(token));
    for (const reply of [login, ticket, cookie]) {
      assert.equal(reply.headers.get("cache-control"), "no-store");
    }
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
