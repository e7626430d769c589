/**
 * Token verification over HTTP and WebSocket: missing, forged, unsigned, expired,
 * not-yet-valid, garbage, wrong audience/issuer, algorithm confusion with external public
 * keys (PEM, JWK, JWKS), and the three places a token may travel.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair } from "jose";
import { http, waitFor } from "../_helpers/clients.ts";
import { runMain, spawnServer, type TestServer, withServer } from "../_helpers/server.ts";
import {
  AUTH,
  bearer,
  mint,
  nowSeconds,
  OTHER_SECRET,
  SECRET,
  tokenFor,
  unsignedToken,
} from "../_helpers/tokens.ts";
import {
  assertUnauthorized,
  createJobAs,
  expectStreamRefused,
  expectWsOpen,
  expectWsRefused,
  lastSequence,
} from "./_support.ts";

const ADMIN = { sub: "admin", scope: "admin" };

/**
 * Expects `token` to be refused everywhere it can travel: HTTP 401 with WWW-Authenticate
 * and `code` (header and query), WebSocket 1008 with `reason` (query and header), SSE 401.
 */
async function expectRefused(
  server: TestServer,
  jobId: string,
  token: string,
  code: string,
  reason: string,
): Promise<void> {
  const q = encodeURIComponent(token);
  assertUnauthorized(await http(server.url, "GET", "/jobs", undefined, bearer(token)), code);
  assertUnauthorized(await http(server.url, "GET", `/jobs?token=${q}`), code);
  assertUnauthorized(
    await http(server.url, "GET", `/jobs/${jobId}`, undefined, { cookie: `jobwire_token=${q}` }),
    code,
  );
  assertUnauthorized(
    await http(server.url, "POST", "/jobs", { kind: "forged" }, bearer(token)),
    code,
  );
  await expectWsRefused(`${server.url}/ws/jobs/${jobId}?token=${q}`, 1008, reason);
  await expectWsRefused(`${server.url}/ws/jobs/${jobId}`, 1008, reason, bearer(token));
  await expectWsRefused(`${server.url}/ws?jobs=${jobId}&token=${q}`, 1008, reason);
  await expectStreamRefused(`${server.url}/jobs/${jobId}/events?token=${q}`, 401, code);
}

/** Expects `token` to be accepted: GET /jobs 200 and a WebSocket that opens on the job. */
async function expectAccepted(server: TestServer, jobId: string, token: string): Promise<void> {
  const reply = await http(server.url, "GET", `/jobs/${jobId}`, undefined, bearer(token));
  assert.equal(reply.status, 200, reply.text);
  const ws = await expectWsOpen(
    `${server.url}/ws/jobs/${jobId}?token=${encodeURIComponent(token)}`,
  );
  await ws.close();
}

Deno.test("no token: 401 with a challenge over HTTP, 1008 'authentication required' over WebSocket", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    for (const path of ["/jobs", `/jobs/${id}`, `/jobs/${id}/events`, "/stats"]) {
      const reply = await http(server.url, "GET", path);
      assertUnauthorized(reply, "unauthorized");
      assert.equal(reply.headers.get("www-authenticate"), 'Bearer realm="jobwire"');
    }
    for (
      const [path, body] of [
        ["/jobs", { kind: "k" }],
        [`/jobs/${id}/events`, { type: "log", data: { line: "x" } }],
        [`/jobs/${id}/complete`, {}],
        ["/tickets", { job_id: id }],
      ] as const
    ) {
      assertUnauthorized(await http(server.url, "POST", path, body), "unauthorized");
    }
    assertUnauthorized(await http(server.url, "DELETE", `/jobs/${id}`), "unauthorized");
    await expectWsRefused(`${server.url}/ws/jobs/${id}`, 1008, "authentication required");
    await expectWsRefused(`${server.url}/ws?jobs=${id}`, 1008, "authentication required");
    await expectWsRefused(`${server.url}/ws?all=1`, 1008, "authentication required");
    await expectStreamRefused(`${server.url}/jobs/${id}/events`, 401, "unauthorized");
    await expectStreamRefused(`${server.url}/jobs/${id}/events`, 401, "unauthorized", "ndjson");
    await expectStreamRefused(`${server.url}/events?jobs=${id}`, 401, "unauthorized");
    // Not a bearer scheme: still no credentials.
    assertUnauthorized(
      await http(server.url, "GET", "/jobs", undefined, {
        authorization: `Basic ${btoa("admin:admin")}`,
      }),
      "unauthorized",
    );
    // Nothing was created by the refused POSTs.
    const list = await http(server.url, "GET", "/jobs", undefined, bearer(await mint(ADMIN)));
    assert.deepEqual(list.json.jobs.map((j: { id: string }) => j.id), [id]);
  });
});

Deno.test("a token sent without its Bearer scheme: the 401 says how to send it", async () => {
  await withServer(AUTH, async (server) => {
    const token = await mint(ADMIN);
    const bare = await http(server.url, "GET", "/jobs", undefined, { authorization: token });
    assertUnauthorized(bare, "unauthorized");
    assert.match(bare.json.error.message, /the Authorization header must be Bearer <token>/);
    const none = await http(server.url, "GET", "/jobs");
    assert.equal(none.json.error.message, "Authentication required: send a bearer token");
    const good = await http(server.url, "GET", "/jobs", undefined, {
      authorization: `Bearer ${token}`,
    });
    assert.equal(good.status, 200);
  });
});

Deno.test("unauthenticated writes are answered 401 before their body is looked at", async () => {
  await withServer(AUTH, async (server) => {
    const admin = await mint(ADMIN);
    const id = await createJobAs(server.url, admin);
    const invalid: [string, unknown][] = [
      ["/jobs", { unknown_field: true }],
      [`/jobs/${id}/events`, {}],
      [`/jobs/${id}/events`, "not json"],
      [`/jobs/${id}/fail`, {}],
      [`/jobs/${id}/log`, { lines: [] }],
      [`/jobs/${id}/start`, { message: 5 }],
      [`/jobs/${id}/progress`, { progress: "lots" }],
      ["/tickets", {}],
    ];
    const wrong: string[] = [];
    for (const [path, body] of invalid) {
      const reply = await http(server.url, "POST", path, body);
      if (reply.status !== 401 || reply.headers.get("www-authenticate") === null) {
        wrong.push(`POST ${path} ${JSON.stringify(body)} -> ${reply.status} ${reply.text}`);
      }
    }
    assert.deepEqual(wrong, [], `answered without authenticating first:\n${wrong.join("\n")}`);
    assert.equal(await lastSequence(server.url, admin, id), 0);
  });
});

Deno.test("a token signed with another secret is refused (invalid token)", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    const forged = await mint(ADMIN, { key: OTHER_SECRET });
    await expectRefused(server, id, forged, "invalid_token", "invalid token");
    // The same claims with the right secret pass: the signature alone made the difference.
    await expectAccepted(server, id, await mint(ADMIN));
    // A valid token whose payload was swapped (privilege escalation) keeps a bad signature.
    const reader = await tokenFor("mallory", "read");
    const [header, , signature] = reader.split(".");
    const escalated = `${header}.${
      (await mint({ sub: "mallory", scope: "admin" })).split(".")[1]
    }.${signature}`;
    await expectRefused(server, id, escalated, "invalid_token", "invalid token");
  });
});

Deno.test("alg none tokens are refused, whatever the case of 'none' and with or without a signature", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    for (const alg of ["none", "None", "NONE", "nOnE"]) {
      await expectRefused(server, id, unsignedToken(ADMIN, alg), "invalid_token", "invalid token");
    }
    // An unsigned header in front of a real signature.
    const real = (await mint(ADMIN)).split(".");
    const withSignature = `${unsignedToken(ADMIN)}${real[2]}`;
    await expectRefused(server, id, withSignature, "invalid_token", "invalid token");
  });
});

Deno.test("an expired token is refused with token_expired / 'token expired'", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    const expired = await mint(ADMIN, { exp: nowSeconds() - 60 });
    await expectRefused(server, id, expired, "token_expired", "token expired");
    const reply = await http(server.url, "GET", "/jobs", undefined, bearer(expired));
    assert.match(reply.headers.get("www-authenticate") ?? "", /error="invalid_token"/);
  });
});

Deno.test("a token whose sub is not text the store keeps as sent is refused, so no job is made someone else's", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    for (const sub of ["alice\u0000evil", "\ud800", 12, ["alice"]]) {
      const token = await mint({ sub, scope: "read write" } as Record<string, unknown>);
      await expectRefused(server, id, token, "invalid_token", "invalid token");
    }
    // The same claims with a plain subject pass, and the job is theirs.
    const alice = await mint({ sub: "alice", scope: "read write" });
    await expectAccepted(server, await createJobAs(server.url, alice), alice);
  });
});

Deno.test("a token that is not yet valid (nbf in the future) is refused", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    const early = await mint(ADMIN, { nbf: nowSeconds() + 3600 });
    await expectRefused(server, id, early, "invalid_token", "invalid token");
    // Asked again (a cache must not have remembered it as valid).
    assertUnauthorized(await http(server.url, "GET", "/jobs", undefined, bearer(early)));
    // nbf in the past is fine.
    await expectAccepted(server, id, await mint(ADMIN, { nbf: nowSeconds() - 10 }));
  });
});

Deno.test("a minute of leeway for an issuer's clock ahead (nbf), none past exp", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    await expectAccepted(server, id, await mint(ADMIN, { nbf: nowSeconds() + 30 }));
    await expectRefused(
      server,
      id,
      await mint(ADMIN, { nbf: nowSeconds() + 90 }),
      "invalid_token",
      "invalid token",
    );
    const justExpired = await mint(ADMIN, { exp: nowSeconds() - 2 });
    await expectRefused(server, id, justExpired, "token_expired", "token expired");
  });
});

Deno.test("garbage tokens are refused as invalid, never a 500", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    const garbage = [
      "garbage",
      "a.b.c",
      "a.b",
      "....",
      "eyJhbGciOiJIUzI1NiJ9",
      "eyJhbGciOiJIUzI1NiJ9.e30",
      "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
      `${btoa("{not json")}.e30.sig`,
      "%E2%82%AC.x.y",
      "x".repeat(5000),
    ];
    for (const token of garbage) {
      await expectRefused(server, id, token, "invalid_token", "invalid token");
    }
    // A token without `exp` would never expire: refused.
    const noExp = await mint(ADMIN, { exp: null });
    await expectRefused(server, id, noExp, "invalid_token", "invalid token");
    // Signed, but expiring past any date a server can tell (it broke /auth/session).
    const never = await mint(ADMIN, { exp: 1e300 });
    await expectRefused(server, id, never, "invalid_token", "invalid token");
    const session = await http(server.url, "GET", "/auth/session", undefined, bearer(never));
    assert.equal(session.status, 200, session.text);
    assert.equal(session.json.signed_in, false);
  });
});

Deno.test("a jobwire_token cookie that is not valid percent-encoding is refused with 401, not a 500", async () => {
  await withServer(AUTH, async (server) => {
    const id = await createJobAs(server.url, await mint(ADMIN));
    for (const cookie of ["jobwire_token=%ZZ", "jobwire_token=abc%", "jobwire_token=%E0%A4%A"]) {
      const reply = await http(server.url, "GET", `/jobs/${id}`, undefined, { cookie });
      assertUnauthorized(reply);
      const ws = await http(server.url, "GET", "/healthz", undefined, { cookie });
      assert.equal(ws.status, 200, `an open route with ${cookie}: ${ws.text}`);
      await expectWsRefused(`${server.url}/ws/jobs/${id}`, 1008, undefined, { cookie });
    }
  });
});

Deno.test("with --jwt-audience and --jwt-issuer, tokens with a wrong or missing aud/iss are refused", async () => {
  const iss = "https://issuer.example";
  const aud = "jobwire-api";
  await withServer({ ...AUTH, "jwt-issuer": iss, "jwt-audience": aud }, async (server) => {
    const good = await mint(ADMIN, { iss, aud });
    const id = await createJobAs(server.url, good);
    await expectAccepted(server, id, good);
    await expectAccepted(server, id, await mint(ADMIN, { iss, aud: ["other", aud] }));
    const bad = {
      "wrong audience": await mint(ADMIN, { iss, aud: "another-api" }),
      "wrong issuer": await mint(ADMIN, { iss: "https://evil.example", aud }),
      "no audience": await mint(ADMIN, { iss }),
      "no issuer": await mint(ADMIN, { aud }),
      "neither": await mint(ADMIN),
    };
    for (const [what, token] of Object.entries(bad)) {
      try {
        await expectRefused(server, id, token, "invalid_token", "invalid token");
      } catch (error) {
        throw new Error(`${what}: ${(error as Error).message}`);
      }
    }
  });
});

/** Writes `text` to a fresh temp file and returns its path (and the directory to remove). */
async function keyFile(name: string, text: string): Promise<{ path: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-keys-" });
  const path = join(dir, name);
  await Deno.writeTextFile(path, text);
  return { path, dir };
}

Deno.test("RS256 public key (PEM): RS256 tokens accepted, HS256 signed with the PEM text refused", async () => {
  const rsa = await generateKeyPair("RS256");
  const other = await generateKeyPair("RS256");
  const pem = await exportSPKI(rsa.publicKey);
  const file = await keyFile("public.pem", pem + "\n");
  try {
    await withServer({ ...AUTH, "jwt-public-key": file.path }, async (server) => {
      const rs256 = await mint(ADMIN, { key: rsa.privateKey, alg: "RS256" });
      const id = await createJobAs(server.url, rs256);
      await expectAccepted(server, id, rs256);
      // Algorithm confusion: the public key text used as an HMAC secret.
      for (const text of [pem, pem + "\n", pem.trim()]) {
        const confused = await mint(ADMIN, { key: text, alg: "HS256" });
        await expectRefused(server, id, confused, "invalid_token", "invalid token");
      }
      for (const alg of ["HS384", "HS512"]) {
        const confused = await mint(ADMIN, { key: pem, alg });
        await expectRefused(server, id, confused, "invalid_token", "invalid token");
      }
      // Signed by another RSA key, or unsigned, against the external key.
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: other.privateKey, alg: "RS256" }),
        "invalid_token",
        "invalid token",
      );
      await expectRefused(server, id, unsignedToken(ADMIN), "invalid_token", "invalid token");
      // An expired RS256 token says so.
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: rsa.privateKey, alg: "RS256", exp: nowSeconds() - 60 }),
        "token_expired",
        "token expired",
      );
      // The server's own HS256 secret still signs valid tokens.
      await expectAccepted(server, id, await mint(ADMIN, { key: SECRET }));
    });
  } finally {
    await Deno.remove(file.dir, { recursive: true });
  }
});

Deno.test("ES256 public key as a JWK file: ES256 accepted; RS256, HS256-with-key-text and alg none refused", async () => {
  const ec = await generateKeyPair("ES256");
  const rsa = await generateKeyPair("RS256");
  const jwkText = JSON.stringify(await exportJWK(ec.publicKey));
  const file = await keyFile("public.jwk.json", jwkText);
  try {
    await withServer({ ...AUTH, "jwt-public-key": file.path }, async (server) => {
      const es256 = await mint(ADMIN, { key: ec.privateKey, alg: "ES256" });
      const id = await createJobAs(server.url, es256);
      await expectAccepted(server, id, es256);
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: rsa.privateKey, alg: "RS256" }),
        "invalid_token",
        "invalid token",
      );
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: jwkText, alg: "HS256" }),
        "invalid_token",
        "invalid token",
      );
      await expectRefused(server, id, unsignedToken(ADMIN), "invalid_token", "invalid token");
    });
  } finally {
    await Deno.remove(file.dir, { recursive: true });
  }
});

Deno.test("EdDSA public key in a JWKS file: EdDSA accepted (with and without kid), others refused", async () => {
  const ed = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const stranger = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const jwks = { keys: [{ ...(await exportJWK(ed.publicKey)), kid: "k1", alg: "EdDSA" }] };
  const jwksText = JSON.stringify(jwks);
  const file = await keyFile("jwks.json", jwksText);
  try {
    await withServer({ ...AUTH, "jwt-public-key": file.path }, async (server) => {
      const eddsa = await mint(ADMIN, { key: ed.privateKey, alg: "EdDSA", kid: "k1" });
      const id = await createJobAs(server.url, eddsa);
      await expectAccepted(server, id, eddsa);
      await expectAccepted(
        server,
        id,
        await mint(ADMIN, { key: ed.privateKey, alg: "EdDSA" }),
      );
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: stranger.privateKey, alg: "EdDSA", kid: "k1" }),
        "invalid_token",
        "invalid token",
      );
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: jwksText, alg: "HS256", kid: "k1" }),
        "invalid_token",
        "invalid token",
      );
      await expectRefused(server, id, unsignedToken(ADMIN), "invalid_token", "invalid token");
    });
  } finally {
    await Deno.remove(file.dir, { recursive: true });
  }
});

Deno.test("a JWKS file with two keys of one type verifies tokens without kid by either key", async () => {
  const first = await generateKeyPair("RS256");
  const second = await generateKeyPair("RS256");
  const stranger = await generateKeyPair("RS256");
  const jwks = {
    keys: [
      { ...(await exportJWK(first.publicKey)), kid: "a" },
      { ...(await exportJWK(second.publicKey)), kid: "b" },
    ],
  };
  const file = await keyFile("jwks.json", JSON.stringify(jwks));
  try {
    await withServer({ ...AUTH, "jwt-public-key": file.path }, async (server) => {
      const byFirst = await mint(ADMIN, { key: first.privateKey, alg: "RS256" });
      const id = await createJobAs(server.url, byFirst);
      await expectAccepted(server, id, byFirst);
      await expectAccepted(server, id, await mint(ADMIN, { key: second.privateKey, alg: "RS256" }));
      await expectAccepted(
        server,
        id,
        await mint(ADMIN, { key: second.privateKey, alg: "RS256", kid: "b" }),
      );
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: stranger.privateKey, alg: "RS256" }),
        "invalid_token",
        "invalid token",
      );
      // A kid names the key: the other key's signature under it is refused.
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: second.privateKey, alg: "RS256", kid: "a" }),
        "invalid_token",
        "invalid token",
      );
    });
  } finally {
    await Deno.remove(file.dir, { recursive: true });
  }
});

Deno.test("a key file whose key does not fit its alg is refused at start in one line, as a JWK or in a JWKS", async () => {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const mislabelled = { ...(await exportJWK(rsa.publicKey)), alg: "ES256", kid: "bad" };
  const dir = await Deno.makeTempDir({ prefix: "jobwire-keys-" });
  try {
    const cases = [
      ["key.jwk", mislabelled, /key\.jwk is not a usable ES256 public key/],
      ["set.json", { keys: [mislabelled] }, /set\.json key "bad" is not a usable ES256 public key/],
    ] as const;
    for (const [name, content, message] of cases) {
      const path = join(dir, name);
      await Deno.writeTextFile(path, JSON.stringify(content));
      const out = await runMain([
        "serve",
        "--port",
        "0",
        "--data-dir",
        join(dir, "data"),
        "--jwt-public-key",
        path,
      ]);
      assert.notEqual(out.code, 0, out.stdout);
      assert.match(out.stderr, message);
      assert.doesNotMatch(out.stderr, /^\s+at /m, "no stack trace");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--jwks-url: RS256 tokens verified with keys fetched from the URL; key-text HS256 refused", async () => {
  const rsa = await generateKeyPair("RS256");
  const jwks = { keys: [{ ...(await exportJWK(rsa.publicKey)), kid: "remote-1", alg: "RS256" }] };
  const jwksServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json(jwks),
  );
  try {
    const url = `http://127.0.0.1:${jwksServer.addr.port}/.well-known/jwks.json`;
    await withServer({ ...AUTH, "jwks-url": url }, async (server) => {
      const rs256 = await mint(ADMIN, { key: rsa.privateKey, alg: "RS256", kid: "remote-1" });
      const id = await createJobAs(server.url, rs256);
      await expectAccepted(server, id, rs256);
      await expectRefused(
        server,
        id,
        await mint(ADMIN, { key: JSON.stringify(jwks), alg: "HS256", kid: "remote-1" }),
        "invalid_token",
        "invalid token",
      );
      await expectRefused(server, id, unsignedToken(ADMIN), "invalid_token", "invalid token");
    });
  } finally {
    await jwksServer.shutdown();
  }
});

Deno.test("--jwks-url: a key set out of reach is said in the log; a key added to the set is taken within seconds", async () => {
  const first = await generateKeyPair("RS256");
  const second = await generateKeyPair("RS256");
  const keys = [{ ...(await exportJWK(first.publicKey)), kid: "k1", alg: "RS256" }];
  let up = false;
  const jwksServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => up ? Response.json({ keys }) : new Response("down", { status: 503 }),
  );
  const url = `http://127.0.0.1:${jwksServer.addr.port}/jwks.json`;
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-jwks-" });
  const server = await spawnServer([
    "--port",
    "0",
    "--data-dir",
    dataDir,
    "--workers",
    "1",
    "--jwks-url",
    url,
  ]);
  try {
    const token = await mint(ADMIN, { key: first.privateKey, alg: "RS256", kid: "k1" });
    assertUnauthorized(await http(server.url, "GET", "/jobs", undefined, bearer(token)));
    await waitFor(() => /WARN cannot fetch the key set/.test(server.output()), 5000, "a warning");
    assert.ok(server.output().includes(url), server.output());
    up = true;
    await waitFor(
      async () => (await http(server.url, "GET", "/jobs", undefined, bearer(token))).status === 200,
      10_000,
      "the key set back",
    );
    // Rotation: a key the set did not have when last fetched.
    keys.push({ ...(await exportJWK(second.publicKey)), kid: "k2", alg: "RS256" });
    const rotated = await mint(ADMIN, { key: second.privateKey, alg: "RS256", kid: "k2" });
    await waitFor(
      async () =>
        (await http(server.url, "GET", "/jobs", undefined, bearer(rotated))).status === 200,
      15_000,
      "the new key taken",
    );
  } finally {
    await server.stop();
    await jwksServer.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a token works from the Authorization header, ?token= and the jobwire_token cookie, over HTTP and WebSocket", async () => {
  await withServer(AUTH, async (server) => {
    const token = await mint({ sub: "alice", scope: "read write" });
    const q = encodeURIComponent(token);
    const viaHeader = await http(server.url, "POST", "/jobs", { kind: "a" }, bearer(token));
    assert.equal(viaHeader.status, 201, viaHeader.text);
    assert.equal(viaHeader.json.job.owner, "alice");
    const id = viaHeader.json.job.id;
    const viaLowerScheme = await http(server.url, "GET", `/jobs/${id}`, undefined, {
      authorization: `bearer ${token}`,
    });
    assert.equal(viaLowerScheme.status, 200, viaLowerScheme.text);
    const viaQuery = await http(server.url, "GET", `/jobs/${id}?token=${q}`);
    assert.equal(viaQuery.status, 200, viaQuery.text);
    const viaCookie = await http(server.url, "GET", `/jobs/${id}`, undefined, {
      cookie: `theme=dark; jobwire_token=${token}; other=1`,
    });
    assert.equal(viaCookie.status, 200, viaCookie.text);
    const published = await http(
      server.url,
      "POST",
      `/jobs/${id}/events?token=${q}`,
      { type: "log", data: { line: "via query" } },
    );
    assert.equal(published.status, 201, published.text);

    for (
      const [what, url, headers] of [
        ["query", `${server.url}/ws/jobs/${id}?token=${q}`, {}],
        ["header", `${server.url}/ws/jobs/${id}`, bearer(token)],
        ["cookie", `${server.url}/ws/jobs/${id}`, { cookie: `jobwire_token=${token}` }],
      ] as const
    ) {
      const ws = await expectWsOpen(url, headers).catch((error) => {
        throw new Error(`${what}: ${error.message}`);
      });
      try {
        const replayed = await ws.next((m) => m.sequence === 1);
        assert.equal(replayed.data.line, "via query");
      } finally {
        await ws.close();
      }
    }
  });
});
