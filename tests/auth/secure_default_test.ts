/**
 * Secure by default, as a process: with no key and no `--no-auth` the server makes a
 * secret (mode 0600) in its data directory and prints an admin token and the status-page
 * URL; `--no-auth` warns; and no token, secret, ticket or password reaches the output.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { http } from "../_helpers/clients.ts";
import { type ChildServer, runMain, spawnServer } from "../_helpers/server.ts";
import {
  bearer,
  claimsOf,
  mint,
  nowSeconds,
  OTHER_SECRET,
  unsignedToken,
} from "../_helpers/tokens.ts";
import {
  assertForbidden,
  assertUnauthorized,
  call,
  createJobAs,
  expectStreamRefused,
  expectWsOpen,
  expectWsRefused,
  waitFor,
} from "./_support.ts";

/** Waits for the start lines that hand out the admin token; returns the token and page URL. */
async function startLines(server: ChildServer): Promise<{ token: string; page: string }> {
  return await waitFor(
    () => {
      const output = server.output();
      const token = /Admin token \(valid 24 h\): (\S+)/.exec(output)?.[1];
      const page = /Status page: (\S+)/.exec(output)?.[1];
      return token !== undefined && page !== undefined ? { token, page } : undefined;
    },
    10_000,
    "the admin token and status page lines",
  );
}

Deno.test("no key and no --no-auth: a 0600 secret in the data dir, an admin token and the status page URL printed; restarts keep the secret", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-secure-" });
  let server: ChildServer | undefined;
  try {
    server = await spawnServer(["--port", "0", "--data-dir", dataDir]);
    const { token, page } = await startLines(server);
    assert.equal(page, `${server.url}/#token=${token}`);
    const claims = claimsOf(token);
    assert.match(String(claims.scope), /\badmin\b/);
    assert.equal(claims.sub, "jobwire:admin");
    const ttl = claims.exp! - nowSeconds();
    assert.ok(ttl > 23 * 3600 && ttl <= 24 * 3600 + 60, `admin token lives ${ttl} s`);

    const secretPath = join(dataDir, "jwt-secret");
    const info = await Deno.stat(secretPath);
    assert.ok(info.isFile);
    assert.equal(info.mode! & 0o777, 0o600, `mode ${(info.mode! & 0o777).toString(8)}`);
    const secret = (await Deno.readTextFile(secretPath)).trim();
    assert.ok(secret.length >= 32, "a generated secret must be long");
    assert.ok(!server.output().includes(secret), "the secret itself must not be printed");

    // Locked without a token; the printed token is an admin's.
    assertUnauthorized(await http(server.url, "GET", "/jobs"), "unauthorized");
    await expectWsRefused(`${server.url}/ws?all=1`, 1008, "authentication required");
    const stats = await call(server.url, token, "GET", "/stats");
    assert.equal(stats.status, 200, stats.text);
    const id = await createJobAs(server.url, token, { owner: "someone" });
    // A token signed with any other secret is refused.
    assertUnauthorized(
      await call(
        server.url,
        await mint({ sub: "admin", scope: "admin" }, { key: OTHER_SECRET }),
        "GET",
        "/jobs",
      ),
    );
    await server.stop();
    server = undefined;

    // Restart on the same data directory: same secret, the first token still works.
    server = await spawnServer(["--port", "0", "--data-dir", dataDir]);
    const second = await startLines(server);
    assert.equal((await Deno.readTextFile(secretPath)).trim(), secret);
    assert.doesNotMatch(server.output(), /created now/);
    const reply = await call(server.url, token, "GET", `/jobs/${id}`);
    assert.equal(reply.status, 200, reply.text);
    const ws = await expectWsOpen(`${server.url}/ws/jobs/${id}?token=${token}`);
    await ws.close();
    assert.equal((await call(server.url, second.token, "GET", "/stats")).status, 200);
  } finally {
    await server?.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the data directory, database and secret are private, whoever makes the directory", async () => {
  const parent = await Deno.makeTempDir({ prefix: "jobwire-modes-" });
  const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;
  try {
    // Made first by the token command, then used by the server.
    const dataDir = join(parent, "made-by-token");
    const minted = await runMain(["token", "--data-dir", dataDir, "--sub", "a", "--scope", "read"]);
    assert.equal(minted.code, 0, minted.stderr);
    assert.equal(await modeOf(dataDir), 0o700);
    // A directory that exists already, readable by everyone: the files in it are still private.
    const shared = join(parent, "shared");
    await Deno.mkdir(shared, { mode: 0o755 });
    await Deno.chmod(shared, 0o755);
    for (const dir of [dataDir, shared]) {
      const server = await spawnServer(["--port", "0", "--data-dir", dir]);
      try {
        await startLines(server);
      } finally {
        await server.stop();
      }
      for (const file of ["jobwire.db", "jwt-secret", "jobwire.lock", "jobwire.pid"]) {
        assert.equal(await modeOf(join(dir, file)), 0o600, `${dir}/${file}`);
      }
      for await (const entry of Deno.readDir(dir)) {
        if (entry.name.startsWith("jobwire.db")) {
          assert.equal(await modeOf(join(dir, entry.name)), 0o600, entry.name);
        }
      }
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a secret others can read is made private at start, and a directory others can write is named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-loose-" });
  const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;
  try {
    await Deno.chmod(dir, 0o777);
    const secret = join(dir, "jwt-secret");
    await Deno.writeTextFile(secret, "a-secret-someone-else-could-read-0123456789\n");
    await Deno.chmod(secret, 0o644);
    const server = await spawnServer(["--port", "0", "--data-dir", dir]);
    try {
      await startLines(server);
    } finally {
      await server.stop();
    }
    assert.equal(await modeOf(secret), 0o600);
    const output = server.output();
    assert.match(
      output,
      /jwt-secret could be read by other users \(mode 644\): made it 0600; if someone else may have read it, delete it/,
    );
    assert.match(
      output,
      /the data directory .* is writable by other users \(mode 777\).*chmod 700 it/,
    );
    assert.equal(await modeOf(dir), 0o777, "the directory is its owner's to change");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--no-auth logs a warning at start, prints no admin token and lets requests in", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-open-" });
  const server = await spawnServer(["--port", "0", "--data-dir", dataDir, "--no-auth"]);
  try {
    const reply = await http(server.url, "GET", "/jobs");
    assert.equal(reply.status, 200, reply.text);
    const output = server.output();
    const warning = output.split("\n").find((line) => /^WARN\b.*auth/i.test(line));
    assert.ok(warning, `no warning line in:\n${output}`);
    assert.doesNotMatch(output, /Admin token/);
    await assert.rejects(Deno.stat(join(dataDir, "jwt-secret")), Deno.errors.NotFound);
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("tokens, the secret, tickets and passwords never appear in the server's output", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-leak-" });
  const secret = "leak-check-secret-5b1f0e7c9a2d4e6f";
  const server = await spawnServer(
    ["--port", "0", "--data-dir", dataDir, "--log-level", "debug"],
    { env: { JOBWIRE_JWT_SECRET: secret } },
  );
  const secrets: string[] = [secret];
  try {
    const base = server.url;
    const admin = await mint({ sub: "leaky", scope: "admin" }, { key: secret });
    const expired = await mint({ sub: "leaky", scope: "admin" }, {
      key: secret,
      exp: nowSeconds() - 60,
    });
    const forged = await mint({ sub: "leaky", scope: "admin" }, { key: OTHER_SECRET });
    const garbage = "garbage-token-3f9c2b7a1e";
    const password = "hunter2-leak-check-password";
    secrets.push(admin, expired, forged, garbage, password, unsignedToken({ sub: "x" }));

    // Successful requests, with the token in each place it may travel.
    const id = await createJobAs(base, admin);
    assert.equal((await http(base, "GET", `/jobs?token=${admin}`)).status, 200);
    assert.equal(
      (await http(base, "GET", "/jobs", undefined, { cookie: `jobwire_token=${admin}` })).status,
      200,
    );
    assert.equal(
      (await http(base, "POST", `/jobs/${id}/events?token=${admin}`, {
        type: "log",
        data: { line: "l" },
      })).status,
      201,
    );
    const open = await expectWsOpen(`${base}/ws/jobs/${id}?token=${admin}`);
    await open.close();
    // Failures of every kind.
    for (const bad of [expired, forged, garbage, unsignedToken({ sub: "x" })]) {
      assert.equal((await http(base, "GET", `/jobs?token=${encodeURIComponent(bad)}`)).status, 401);
      assert.equal((await http(base, "GET", "/jobs", undefined, bearer(bad))).status, 401);
      await expectWsRefused(`${base}/ws/jobs/${id}?token=${encodeURIComponent(bad)}`, 1008);
      await expectStreamRefused(`${base}/jobs/${id}/events?token=${encodeURIComponent(bad)}`, 401);
    }
    assert.equal((await http(base, "GET", `/no/such/route?token=${admin}`)).status, 404);
    assert.equal((await http(base, "GET", `/jobs/missing-job?token=${admin}`)).status, 404);
    assert.equal(
      (await http(base, "POST", `/jobs/${id}/events?token=${admin}`, "{broken")).status,
      400,
    );
    await expectWsRefused(`${base}/ws/jobs/missing-job?token=${admin}`, 4004);
    assert.equal((await http(base, "GET", `/ws/jobs/${id}?token=${admin}`)).status, 426);
    // Tickets: used once, then refused.
    const ticketReply = await call(base, admin, "POST", "/tickets", { job_id: id });
    assert.equal(ticketReply.status, 201, ticketReply.text);
    const ticket = ticketReply.json.ticket as string;
    secrets.push(ticket);
    const viaTicket = await expectWsOpen(
      `${base}/ws/jobs/${id}?ticket=${encodeURIComponent(ticket)}`,
    );
    await viaTicket.close();
    await expectWsRefused(`${base}/ws/jobs/${id}?ticket=${encodeURIComponent(ticket)}`, 1008);
    await expectStreamRefused(
      `${base}/jobs/${id}/events?ticket=${encodeURIComponent(ticket)}`,
      401,
    );
    // A failed sign-in (no such user) with a password.
    const signIn = await http(base, "POST", "/auth/login", { username: "leaky", password });
    assert.equal(signIn.status, 401);
    // A successful sign-in's token.
    await http(base, "POST", "/auth/logout", undefined, { cookie: `jobwire_token=${admin}` });
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  const output = server.output();
  assert.match(output, /listening on/);
  const leaked = secrets.filter((s) =>
    output.includes(s) || output.includes(encodeURIComponent(s))
  );
  assert.deepEqual(
    leaked.map((s) => s.slice(0, 12) + "…"),
    [],
    `secrets in the server output:\n${output}`,
  );
  // Not even a recognisable part of a token (its signature) or the secret.
  for (const s of secrets.filter((s) => s.split(".").length === 3 && s.split(".")[2] !== "")) {
    assert.ok(!output.includes(s.split(".")[2]!), "a token signature is in the output");
  }
});

Deno.test("a user named admin does not own the jobs of the admin token printed at start", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-secure-" });
  let server: ChildServer | undefined;
  try {
    server = await spawnServer(["--port", "0", "--data-dir", dataDir]);
    const { token } = await startLines(server);
    const id = await createJobAs(server.url, token, { kind: "deploy" });
    const added = await runMain(
      ["user", "add", "admin", "--scope", "read write", "--data-dir", dataDir],
      { env: { JOBWIRE_PASSWORD: "not-the-operator" } },
    );
    assert.equal(added.code, 0, added.stderr);
    const login = await http(server.url, "POST", "/auth/login", {
      username: "admin",
      password: "not-the-operator",
    });
    assert.equal(login.status, 200, login.text);
    const user = login.json.access_token as string;
    assert.equal(claimsOf(user).sub, "admin");
    assertForbidden(await call(server.url, user, "GET", `/jobs/${id}`));
    assertForbidden(await call(server.url, user, "DELETE", `/jobs/${id}`));
    const listed = await call(server.url, user, "GET", "/jobs");
    assert.deepEqual(listed.json.jobs, []);
  } finally {
    await server?.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
