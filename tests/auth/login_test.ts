/**
 * Users and sign-in: `main.ts user add|list|remove`, `POST /auth/login` (tokens, cookie,
 * wrong passwords, lockout), and `main.ts token` minting tokens the server accepts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { http } from "../_helpers/clients.ts";
import {
  MAIN,
  runMain,
  SERVER_PERMISSIONS,
  spawnServer,
  startTestServer,
  type TestServer,
  withServer,
} from "../_helpers/server.ts";
import { AUTH, bearer, claimsOf, tokenFor } from "../_helpers/tokens.ts";
import { findPython } from "../_helpers/python.ts";
import {
  assertForbidden,
  assertUnauthorized,
  call,
  createJobAs,
  expectStreamRefused,
  expectWsRefused,
  openStream,
} from "./_support.ts";

/** The tests' own secret, so that `tokenFor` mints tokens the server accepts. */
const AUTH_SECRET = { "jwt-secret": AUTH["jwt-secret"] };

const ALICE_PASSWORD = "correct horse battery staple";
const BOB_PASSWORD = "b0b-s3cret-pass";

/** Runs `main.ts user …` on `dataDir`; asserts the exit code. */
async function user(
  dataDir: string,
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
  expectCode = 0,
): Promise<string> {
  const out = await runMain(["user", ...args, "--data-dir", dataDir], options);
  assert.equal(out.code, expectCode, `user ${args.join(" ")}: ${out.stdout}${out.stderr}`);
  return out.stdout + out.stderr;
}

function login(server: TestServer, body: unknown, headers: Record<string, string> = {}) {
  return http(server.url, "POST", "/auth/login", body, headers);
}

/** A data directory with alice (read write, password from the environment) and bob (stdin). */
async function usersDir(): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-users-" });
  const added = await user(dataDir, ["add", "alice", "--scope", "read write"], {
    env: { JOBWIRE_PASSWORD: ALICE_PASSWORD },
  });
  assert.match(added, /alice/);
  await user(dataDir, ["add", "bob", "--scope", "read"], { stdin: `${BOB_PASSWORD}\n` });
  return dataDir;
}

Deno.test("user add (password from JOBWIRE_PASSWORD and from stdin), login, and the token's powers", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false }, { dataDir });
  try {
    const listed = await user(dataDir, ["list"]);
    assert.match(listed, /^alice\s+read write/m);
    assert.match(listed, /^bob\s+read/m);
    assert.ok(!listed.includes(ALICE_PASSWORD) && !listed.includes(BOB_PASSWORD));

    const reply = await login(server, { username: "alice", password: ALICE_PASSWORD });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.json.token_type, "bearer");
    assert.equal(reply.json.expires_in, 3600);
    assert.equal(reply.headers.get("set-cookie"), null, "no cookie unless asked");
    const token = reply.json.access_token as string;
    const claims = claimsOf(token);
    assert.equal(claims.sub, "alice");
    assert.deepEqual(String(claims.scope).split(" ").sort(), ["read", "write"]);
    assert.ok(typeof claims.exp === "number" && claims.exp * 1000 > Date.now());
    // The token works, and jobs it creates belong to alice.
    const created = await call(server.url, token, "POST", "/jobs", { kind: "login-test" });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.job.owner, "alice");
    const list = await call(server.url, token, "GET", "/jobs");
    assert.deepEqual(list.json.jobs.map((j: { id: string }) => j.id), [created.json.job.id]);
    assertForbidden(await call(server.url, token, "GET", "/stats"));

    // bob has only read: he signs in but may not create jobs, nor see alice's.
    const bob = await login(server, { username: "bob", password: BOB_PASSWORD });
    assert.equal(bob.status, 200, bob.text);
    assertForbidden(await call(server.url, bob.json.access_token, "POST", "/jobs", {}));
    assertForbidden(
      await call(server.url, bob.json.access_token, "GET", `/jobs/${created.json.job.id}`),
    );

    // A user added while the server runs can sign in at once.
    await user(dataDir, ["add", "carol"], { env: { JOBWIRE_PASSWORD: "carol-password" } });
    const carol = await login(server, { username: "carol", password: "carol-password" });
    assert.equal(carol.status, 200, carol.text);
    assert.deepEqual(String(claimsOf(carol.json.access_token).scope).split(" ").sort(), [
      "read",
      "write",
    ]);

    // Passwords are not stored in the clear.
    for (const file of ["jobwire.db", "jobwire.db-wal"]) {
      const bytes = await Deno.readFile(join(dataDir, file)).catch(() => new Uint8Array());
      const text = new TextDecoder("latin1").decode(bytes);
      assert.ok(!text.includes(ALICE_PASSWORD), `${file} holds alice's password`);
      assert.ok(!text.includes(BOB_PASSWORD), `${file} holds bob's password`);
    }
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("user add refuses short passwords and unknown scopes", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-users-" });
  try {
    await user(dataDir, ["add", "shorty"], { env: { JOBWIRE_PASSWORD: "short" } }, 2);
    await user(dataDir, ["add", "dan", "--scope", "root"], {
      env: { JOBWIRE_PASSWORD: "long-enough-password" },
    }, 2);
    assert.doesNotMatch(await user(dataDir, ["list"]), /shorty|dan/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("wrong password and unknown user answer 401 invalid_credentials; bad bodies 4xx", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false }, { dataDir });
  try {
    const wrong = await login(server, { username: "alice", password: "not the password" });
    assert.equal(wrong.status, 401, wrong.text);
    assert.equal(wrong.json.error.code, "invalid_credentials");
    assert.equal(wrong.headers.get("www-authenticate"), 'Bearer realm="jobwire"');
    assert.equal(wrong.json.access_token, undefined);
    const unknown = await login(server, { username: "mallory", password: ALICE_PASSWORD });
    assert.equal(unknown.status, 401, unknown.text);
    assert.equal(unknown.json.error.code, "invalid_credentials");
    // The same message for both: the answer does not tell which users exist.
    assert.equal(unknown.json.error.message, wrong.json.error.message);
    for (const body of [{}, { username: "alice" }, { username: "alice", password: 5 }, "x"]) {
      const reply = await login(server, body);
      assert.ok(
        reply.status >= 400 && reply.status < 500,
        `${JSON.stringify(body)}: ${reply.status}`,
      );
      assert.equal(typeof reply.json?.error?.code, "string");
    }
    // Still able to sign in afterwards (two failures are below the lockout).
    assert.equal(
      (await login(server, { username: "alice", password: ALICE_PASSWORD })).status,
      200,
    );
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("five failed sign-ins lock the user out (429 with Retry-After), even with the right password", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false }, { dataDir });
  try {
    for (let i = 0; i < 5; i++) {
      const reply = await login(server, { username: "alice", password: `wrong-${i}` });
      assert.equal(reply.status, 401, `attempt ${i + 1}: ${reply.text}`);
    }
    for (const password of ["wrong-again", ALICE_PASSWORD]) {
      const locked = await login(server, { username: "alice", password });
      assert.equal(locked.status, 429, locked.text);
      assert.equal(locked.json.error.code, "rate_limited");
      const retry = Number(locked.headers.get("retry-after"));
      assert.ok(
        Number.isInteger(retry) && retry >= 1,
        `Retry-After ${locked.headers.get("retry-after")}`,
      );
      assert.equal(locked.json.access_token, undefined);
    }
    // The lockout is per user: bob still signs in.
    assert.equal((await login(server, { username: "bob", password: BOB_PASSWORD })).status, 200);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("sign-ins sent in parallel are counted before their passwords are checked", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false, "limits-exempt-ips": "none" }, {
    dataDir,
  });
  try {
    // Thirty guesses at once, the last one right: at most five passwords are checked.
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        login(server, {
          username: "alice",
          password: i === 29 ? ALICE_PASSWORD : `wrong-${i}`,
        })),
    );
    const statuses = replies.map((r) => r.status);
    const checked = statuses.filter((s) => s !== 429).length;
    assert.ok(checked <= 5, `passwords checked: ${checked} (${statuses.join(",")})`);
    assert.ok(statuses.every((s) => s === 401 || s === 429), statuses.join(","));
    assert.equal(
      (await login(server, { username: "alice", password: ALICE_PASSWORD })).status,
      429,
    );
    // A right password does not count against the address: bob signs in twenty times.
    for (let i = 0; i < 20; i++) {
      const bob = await login(server, { username: "bob", password: BOB_PASSWORD });
      assert.equal(bob.status, 200, `sign-in ${i + 1}: ${bob.text}`);
    }
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("twenty failed sign-ins from one counted address lock that address out; loopback is exempt by default", async () => {
  const dataDir = await usersDir();
  try {
    for (const exempt of ["none", "loopback"]) {
      const server = await startTestServer({ "no-auth": false, "limits-exempt-ips": exempt }, {
        dataDir,
      });
      try {
        // Spread over many user names, so no single user reaches its own limit.
        for (let i = 0; i < 20; i++) {
          const username = `guess-${exempt}-${i}`;
          const reply = await login(server, { username, password: "password1" });
          assert.equal(reply.status, 401, `attempt ${i + 1}: ${reply.text}`);
        }
        const next = await login(server, { username: "alice", password: ALICE_PASSWORD });
        if (exempt === "none") {
          assert.equal(next.status, 429, next.text);
          assert.ok(Number(next.headers.get("retry-after")) >= 1);
        } else {
          // Behind a proxy on the same host, others' failures must not lock alice out.
          assert.equal(next.status, 200, next.text);
          for (let i = 0; i < 5; i++) await login(server, { username: "bob", password: "wrong-1" });
          const bob = await login(server, { username: "bob", password: BOB_PASSWORD });
          assert.equal(bob.status, 429, "the per-user lockout still holds: " + bob.text);
        }
      } finally {
        await server.close();
      }
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("login with cookie: true sets an HttpOnly jobwire_token cookie that authenticates; logout clears it", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false }, { dataDir });
  try {
    const reply = await login(server, {
      username: "alice",
      password: ALICE_PASSWORD,
      cookie: true,
    });
    assert.equal(reply.status, 200, reply.text);
    const setCookie = reply.headers.get("set-cookie") ?? "";
    assert.match(setCookie, /^jobwire_token=[^;]+/);
    assert.match(setCookie, /;\s*HttpOnly/i);
    assert.match(setCookie, /;\s*SameSite=(Strict|Lax)/i);
    assert.match(setCookie, /;\s*Path=\//i);
    // Kept an hour past the token, as /auth/cookie's is, so the page can say it expired.
    assert.equal(Number(/Max-Age=(\d+)/.exec(setCookie)?.[1]), reply.json.expires_in + 3600);
    const cookie = setCookie.split(";")[0]!;
    assert.equal(cookie, `jobwire_token=${reply.json.access_token}`);
    const withCookie = await http(server.url, "POST", "/jobs", { kind: "cookie" }, { cookie });
    assert.equal(withCookie.status, 201, withCookie.text);
    assert.equal(withCookie.json.job.owner, "alice");
    assertUnauthorized(await http(server.url, "GET", "/jobs"));
    const logout = await http(server.url, "POST", "/auth/logout", undefined, { cookie });
    assert.equal(logout.status, 200, logout.text);
    assert.match(logout.headers.get("set-cookie") ?? "", /^jobwire_token=;.*Max-Age=0/i);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("user remove: the user can no longer sign in, nor use the tokens it got; removing an unknown user fails", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false }, { dataDir });
  try {
    const signedIn = await login(server, { username: "alice", password: ALICE_PASSWORD });
    assert.equal(signedIn.status, 200);
    const token = signedIn.json.access_token as string;
    assert.equal((await call(server.url, token, "GET", "/jobs")).status, 200);
    // A stream and a ticket of hers, opened before she is removed.
    const job = await call(server.url, token, "POST", "/jobs", {});
    const id = job.json.job.id as string;
    const stream = await openStream(`${server.url}/jobs/${id}/events`, "sse", bearer(token));
    assert.equal(stream.status, 200, stream.text);
    const ticket = await call(server.url, token, "POST", "/tickets", { job_id: id });
    assert.equal(ticket.status, 201, ticket.text);
    // And a wait for the job's end, for up to 10 minutes.
    const waiting = call(server.url, token, "GET", `/jobs/${id}?wait=terminal&timeout=600`);
    assert.match(await user(dataDir, ["remove", "alice"]), /alice/);
    // The stream and the wait end within a few seconds, and the ticket is refused.
    const end = await stream.stream!.next((m) => m.event === "error", 10_000);
    assert.equal(end.json.data.error, "token revoked");
    const removedAt = Date.now();
    assertUnauthorized(await waiting, "invalid_token");
    assert.ok(Date.now() - removedAt < 10_000, "the wait ended with the stream");
    await expectStreamRefused(
      `${server.url}/jobs/${id}/events?ticket=${encodeURIComponent(ticket.json.ticket)}`,
      401,
    );
    assert.doesNotMatch(await user(dataDir, ["list"]), /^alice/m);
    const after = await login(server, { username: "alice", password: ALICE_PASSWORD });
    assert.equal(after.status, 401, after.text);
    assertUnauthorized(await call(server.url, token, "GET", "/jobs"), "invalid_token");
    // Added again, alice signs in anew; the token of the removed alice stays refused.
    await new Promise((r) => setTimeout(r, 1100)); // iat has whole seconds
    await user(dataDir, ["add", "alice"], { env: { JOBWIRE_PASSWORD: ALICE_PASSWORD } });
    assertUnauthorized(await call(server.url, token, "GET", "/jobs"), "invalid_token");
    const again = await login(server, { username: "alice", password: ALICE_PASSWORD });
    assert.equal((await call(server.url, again.json.access_token, "GET", "/jobs")).status, 200);
    await user(dataDir, ["remove", "nobody-here"], {}, 1);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a new password or scopes for a user end the tokens it got by signing in before", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false }, { dataDir });
  try {
    const before = await login(server, { username: "alice", password: ALICE_PASSWORD });
    const token = before.json.access_token as string;
    assert.equal((await call(server.url, token, "GET", "/jobs")).status, 200);
    // Changed within the same second as the sign-in: the token says which credentials it
    // was given for, so it is still told apart.
    const changed = "another long passphrase";
    await user(dataDir, ["add", "alice", "--scope", "read"], {
      env: { JOBWIRE_PASSWORD: changed },
    });
    assertUnauthorized(await call(server.url, token, "GET", "/jobs"), "invalid_token");
    const after = await login(server, { username: "alice", password: changed });
    assert.equal(after.status, 200, after.text);
    assert.equal((await call(server.url, after.json.access_token, "GET", "/jobs")).status, 200);
    // bob, whose account did not change, keeps his token.
    const bob = await login(server, { username: "bob", password: BOB_PASSWORD });
    assert.equal((await call(server.url, bob.json.access_token, "GET", "/jobs")).status, 200);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("main.ts token mints tokens with the server's key and the given sub, scope, jobs and ttl", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-mint-" });
  const server = await startTestServer({ "no-auth": false }, { dataDir });
  try {
    const admin = await runMain([
      "token",
      "--sub",
      "root",
      "--scope",
      "admin",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(admin.code, 0, admin.stderr);
    const adminToken = admin.stdout.trim();
    const id = await createJobAs(server.url, adminToken, { owner: "someone-else" });

    const out = await runMain([
      "token",
      "--sub",
      "bob",
      "--scope",
      "read",
      "--jobs",
      `${id},other`,
      "--ttl",
      "10m",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(out.code, 0, out.stderr);
    const token = out.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = claimsOf(token);
    assert.equal(claims.sub, "bob");
    assert.equal(claims.scope, "read");
    assert.deepEqual(claims.jobs, [id, "other"]);
    const ttl = claims.exp! - claims.iat!;
    assert.equal(ttl, 600);
    // Accepted by the running server: reads the granted job, may not write.
    const read = await http(server.url, "GET", `/jobs/${id}`, undefined, bearer(token));
    assert.equal(read.status, 200, read.text);
    assertForbidden(await call(server.url, token, "POST", "/jobs", {}));
    // Without --jobs the read token sees nothing of someone else's.
    const plain = await runMain([
      "token",
      "--sub",
      "bob",
      "--scope",
      "read",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assertForbidden(await call(server.url, plain.stdout.trim(), "GET", `/jobs/${id}`));
    // Bad input is refused.
    const badScope = await runMain([
      "token",
      "--sub",
      "x",
      "--scope",
      "superuser",
      "--data-dir",
      dataDir,
    ]);
    assert.notEqual(badScope.code, 0);
    assert.equal(badScope.stdout.trim(), "");
    const noSub = await runMain(["token", "--scope", "read", "--data-dir", dataDir]);
    assert.notEqual(noSub.code, 0);
    const stray = await runMain([
      "token",
      "--sub",
      "x",
      "--scope",
      "read",
      "extra",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /token takes no arguments, got "extra"/);
    const forever = await runMain([
      "token",
      "--sub",
      "x",
      "--scope",
      "read",
      "--ttl",
      "200000000d",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(forever.code, 2);
    assert.match(forever.stderr, /--ttl: expected .*at most 3650d/);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("token and user commands on a data directory no server has used say so, and make no database", async () => {
  const parent = await Deno.makeTempDir({ prefix: "jobwire-typo-" });
  try {
    const typo = join(parent, "dta");
    const listed = await runMain(["user", "list", "--data-dir", typo]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stderr, /no database in .*dta \(no server has used it yet\)/);
    const removed = await runMain(["user", "remove", "alice", "--data-dir", typo]);
    assert.equal(removed.code, 1);
    await assert.rejects(Deno.stat(typo), Deno.errors.NotFound);
    const extra = await runMain(["user", "add", "dave", "extra", "--data-dir", typo]);
    assert.equal(extra.code, 2);
    assert.match(extra.stderr, /user add got an extra argument "extra"/);
    // A token made with a secret of its own says which server it works on.
    const minted = await runMain(["token", "--sub", "x", "--scope", "read", "--data-dir", typo]);
    assert.equal(minted.code, 0, minted.stderr);
    assert.match(
      minted.stderr,
      /made a new secret in .*dta\/jwt-secret: the token works on a server started with --data-dir .*dta/,
    );
    const again = await runMain(["token", "--sub", "x", "--scope", "read", "--data-dir", typo]);
    assert.equal(again.stderr, "", "the second token uses the secret made by the first");
    // A user added where no server has been says where it went; the next one says nothing.
    const other = join(parent, "dat");
    const env = { JOBWIRE_PASSWORD: "a long enough password" };
    const added = await runMain(["user", "add", "eve", "--data-dir", other], { env });
    assert.equal(added.code, 0, added.stderr);
    assert.match(
      added.stderr,
      /made a new database in .*dat: the user signs in on a server started with --data-dir .*dat/,
    );
    const next = await runMain(["user", "add", "fay", "--data-dir", other], { env });
    assert.equal(next.stderr, "");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a usage error of user or token leaves no database and no secret behind", async () => {
  const parent = await Deno.makeTempDir({ prefix: "jobwire-usage-" });
  try {
    const dir = join(parent, "data");
    const cases: [string[], RegExp][] = [
      [["user", "add"], /user add needs a NAME/],
      [["user", "add", "no spaces allowed"], /user add needs a NAME of letters/],
      [["user", "add", "carol", "--scope", "read bogus"], /Unknown scope "bogus"/],
      [["user", "addd", "bob"], /Unknown user action "addd": use add, remove or list/],
      [["user", "remove"], /user remove needs a NAME/],
      [["token", "--sub", "a", "--scope", "read bogus"], /Unknown scope "bogus"/],
    ];
    for (const [args, message] of cases) {
      const out = await runMain([...args, "--data-dir", dir], {
        env: { JOBWIRE_PASSWORD: "long-enough-password" },
      });
      assert.equal(out.code, 2, `${args.join(" ")}: ${out.stderr}`);
      assert.match(out.stderr, message);
      assert.doesNotMatch(out.stderr, /made a new secret/);
      await assert.rejects(Deno.stat(dir), Deno.errors.NotFound, args.join(" "));
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test({
  name:
    "a password typed at the prompt is taken as UTF-8, and backspace takes back a whole character",
  ignore: findPython() === undefined,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-prompt-" });
    try {
      // A terminal: python's pty runs `user add` and types "pässwört12ä", a backspace, "3".
      const script = `
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
def drain(seconds):
    end = time.time() + seconds
    out = b""
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
            if b"Password:" in out:
                return out, False
    return out, False
out, ended = drain(30)
for piece in ["pässwört12ä".encode(), b"\\x7f", b"3\\r"]:
    os.write(fd, piece)
    time.sleep(0.05)
rest, _ = drain(30)
_, status = os.waitpid(pid, 0)
sys.stdout.write((out + rest).decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
`;
      const out = await new Deno.Command(findPython()!, {
        args: [
          "-c",
          script,
          Deno.execPath(),
          "run",
          ...SERVER_PERMISSIONS,
          MAIN,
          "user",
          "add",
          "uma",
          "--scope",
          "read",
          "--data-dir",
          dataDir,
        ],
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const shown = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, shown + new TextDecoder().decode(out.stderr));
      assert.match(shown, /Added user uma/);
      // The typed characters are not echoed.
      assert.doesNotMatch(shown, /ässw|ört/);
      const server = await startTestServer({ ...AUTH }, { dataDir });
      try {
        const right = await http(server.url, "POST", "/auth/login", {
          username: "uma",
          password: "pässwört123",
        });
        assert.equal(right.status, 200, right.text);
      } finally {
        await server.close();
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test("main.ts token signs with JOBWIRE_JWT_SECRET when the server uses that secret", async () => {
  const secret = "shared-secret-for-token-command-42";
  await withServer({ "no-auth": false, "jwt-secret": secret }, async (server) => {
    const out = await runMain([
      "token",
      "--sub",
      "ci",
      "--scope",
      "write",
      "--data-dir",
      server.dataDir,
    ], {
      env: { JOBWIRE_JWT_SECRET: secret },
    });
    assert.equal(out.code, 0, out.stderr);
    const created = await call(server.url, out.stdout.trim(), "POST", "/jobs", {});
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.job.owner, "ci");
  });
});

Deno.test("with --no-auth, /auth/login answers 400 auth_disabled", async () => {
  await withServer({}, async (server) => {
    const reply = await http(server.url, "POST", "/auth/login", {
      username: "alice",
      password: ALICE_PASSWORD,
    });
    assert.equal(reply.status, 400, reply.text);
    assert.equal(reply.json.error.code, "auth_disabled");
  });
});

Deno.test("signing out revokes the sign-in's token, also after a restart; other tokens keep working", async () => {
  const dataDir = await usersDir();
  let server = await startTestServer({ "no-auth": false, ...AUTH_SECRET }, { dataDir });
  try {
    const first = await login(server, { username: "alice", password: ALICE_PASSWORD });
    const second = await login(server, { username: "alice", password: ALICE_PASSWORD });
    const token = first.json.access_token as string;
    assert.equal(typeof claimsOf(token).jti, "string");
    assert.notEqual(claimsOf(token).jti, claimsOf(second.json.access_token).jti);
    const id = await createJobAs(server.url, token);
    assert.equal((await call(server.url, token, "GET", `/jobs/${id}`)).status, 200);

    const out = await http(server.url, "POST", "/auth/logout", undefined, bearer(token));
    assert.equal(out.status, 200, out.text);
    assert.deepEqual(out.json, { signed_out: true, revoked: true });
    // The token is refused everywhere from now on, with a reason.
    const refused = await call(server.url, token, "GET", `/jobs/${id}`);
    assert.equal(refused.status, 401, refused.text);
    assert.equal(refused.json.error.code, "invalid_token");
    assert.match(refused.json.error.message, /revoked/);
    assert.match(refused.headers.get("www-authenticate") ?? "", /revoked/);
    assertUnauthorized(await call(server.url, token, "POST", `/jobs/${id}/log`, { message: "x" }));
    await expectWsRefused(`${server.url}/ws/jobs/${id}?token=${token}`, 1008, "invalid token");
    const session = await http(server.url, "GET", "/auth/session", undefined, bearer(token));
    assert.equal(session.json.signed_in, false);
    assert.equal(session.json.failure, "token_revoked");
    // Signing out one sign-in leaves the other, and a token without an id, alone.
    const other = second.json.access_token as string;
    assert.equal((await call(server.url, other, "GET", `/jobs/${id}`)).status, 200);
    const minted = await tokenFor("alice", "read write");
    const mintedOut = await http(server.url, "POST", "/auth/logout", undefined, bearer(minted));
    assert.deepEqual(mintedOut.json, { signed_out: true, revoked: false });
    assert.equal((await call(server.url, minted, "GET", `/jobs/${id}`)).status, 200);

    // The revocation is kept in the database.
    await server.close();
    server = await startTestServer({ "no-auth": false, ...AUTH_SECRET }, { dataDir });
    assert.equal((await call(server.url, token, "GET", `/jobs/${id}`)).status, 401);
    assert.equal((await call(server.url, other, "GET", `/jobs/${id}`)).status, 200);
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a token signed out on one isolate is refused by the other, whose cache had it", async () => {
  const dataDir = await usersDir();
  const server = await spawnServer([
    "--port",
    "0",
    "--data-dir",
    dataDir,
    "--workers",
    "2",
    "--log-level",
    "error",
  ]);
  // A connection per request, so that requests land on either isolate.
  const fresh = async (token: string, method = "GET", path = "/jobs") => {
    const { hostname, port } = new URL(server.url);
    const conn = await Deno.connect({ hostname, port: Number(port) });
    try {
      const head = `${method} ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
        `Authorization: Bearer ${token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
      await conn.write(new TextEncoder().encode(head));
      const buffer = new Uint8Array(64);
      let text = "";
      while (text.length < 12) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
      return Number(text.slice(9, 12));
    } finally {
      conn.close();
    }
  };
  try {
    const reply = await http(server.url, "POST", "/auth/login", {
      username: "alice",
      password: ALICE_PASSWORD,
    });
    const token = reply.json.access_token as string;
    const before = await Promise.all(Array.from({ length: 16 }, () => fresh(token)));
    assert.deepEqual(before, Array(16).fill(200));
    assert.equal(await fresh(token, "POST", "/auth/logout"), 200);
    const after = await Promise.all(Array.from({ length: 16 }, () => fresh(token)));
    assert.deepEqual(after, Array(16).fill(401));
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("sign-in, sign-out and tickets waiting for a lock another process holds block no other request, and go through once it is let go", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false, ...AUTH_SECRET }, { dataDir });
  const other = new DatabaseSync(join(dataDir, "jobwire.db"));
  let locked = false;
  try {
    const signedIn = await login(server, { username: "alice", password: ALICE_PASSWORD });
    const leaving = signedIn.json.access_token as string;
    const alice = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, alice);
    const earlier = await call(server.url, alice, "POST", "/tickets", { job_id: id });
    assert.equal(earlier.status, 201, earlier.text);

    other.exec("BEGIN EXCLUSIVE");
    locked = true;
    const order: string[] = [];
    const noted = <T>(name: string, reply: Promise<T>) =>
      reply.then((value) => {
        order.push(name);
        return value;
      });
    const signIn = noted("login", login(server, { username: "bob", password: BOB_PASSWORD }));
    const signOut = noted(
      "logout",
      http(server.url, "POST", "/auth/logout", undefined, bearer(leaving)),
    );
    const ticket = noted("ticket", call(server.url, alice, "POST", "/tickets", { job_id: id }));
    const stream = noted(
      "stream",
      fetch(`${server.url}/jobs/${id}/events?ticket=${earlier.json.ticket}`, {
        headers: { accept: "text/event-stream" },
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Served meanwhile, on the same threads: the writes above hold nothing up.
    const read = await call(server.url, alice, "GET", `/jobs/${id}`);
    assert.equal(read.status, 200, read.text);
    order.push("read");
    other.exec("COMMIT");
    locked = false;
    assert.equal((await signIn).status, 200);
    assert.deepEqual((await signOut).json, { signed_out: true, revoked: true });
    assert.equal((await ticket).status, 201);
    const opened = await stream;
    assert.equal(opened.status, 200);
    await opened.body?.cancel();
    assert.equal(order[0], "read", `answered in the order ${order.join(", ")}`);
    // What they wrote is there: the signed-out token is refused, the used ticket too.
    assert.equal((await call(server.url, leaving, "GET", `/jobs/${id}`)).status, 401);
    const again = await fetch(`${server.url}/jobs/${id}/events?ticket=${earlier.json.ticket}`);
    assert.equal(again.status, 401);
    await again.body?.cancel();
  } finally {
    if (locked) other.exec("COMMIT");
    other.close();
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("sign-ins sent in parallel while another process holds the write lock still cannot get past the limit", async () => {
  const dataDir = await usersDir();
  const server = await startTestServer({ "no-auth": false, ...AUTH_SECRET }, { dataDir });
  const other = new DatabaseSync(join(dataDir, "jobwire.db"));
  try {
    other.exec("BEGIN EXCLUSIVE");
    const guesses = Array.from(
      { length: 30 },
      (_, i) => login(server, { username: "alice", password: `wrong guess ${i}` }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    other.exec("COMMIT");
    const statuses = (await Promise.all(guesses)).map((reply) => reply.status);
    // Five guesses are checked (and fail); the others are refused unchecked.
    assert.equal(statuses.filter((s) => s === 401).length, 5, statuses.join());
    assert.equal(statuses.filter((s) => s === 429).length, 25, statuses.join());
    const count = other.prepare("SELECT COUNT(*) AS n FROM login_failures WHERE key = ?")
      .get("user:alice") as { n: number };
    assert.equal(count.n, 5);
    // Over the limit already: refused on a read (429), not made to wait for the write lock
    // another process holds (503 once the wait is over).
    other.exec("BEGIN EXCLUSIVE");
    const locked = await login(server, { username: "alice", password: "one more guess" });
    other.exec("COMMIT");
    assert.equal(locked.status, 429, locked.text);
  } finally {
    if (other.isTransaction) other.exec("COMMIT");
    other.close();
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("sign-ins sent in parallel to both isolates check at most five passwords per user", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-users-" });
  const server = await spawnServer(["--port", "0", "--data-dir", dataDir, "--workers", "2"]);
  try {
    // Users that do not exist are counted as those that do (their sign-ins cost the same).
    const users = Array.from({ length: 10 }, (_, i) => `guessed-${i}`);
    const replies = await Promise.all(
      users.flatMap((username) =>
        Array.from(
          { length: 20 },
          (_, i) =>
            http(server.url, "POST", "/auth/login", { username, password: `wrong-${i}` })
              .then((reply) => ({ username, status: reply.status })),
        )
      ),
    );
    for (const username of users) {
      const statuses = replies.filter((r) => r.username === username).map((r) => r.status);
      assert.equal(statuses.filter((s) => s === 401).length, 5, `${username}: ${statuses}`);
      assert.equal(statuses.filter((s) => s === 429).length, 15, `${username}: ${statuses}`);
    }
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
