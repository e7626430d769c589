/**
 * The server as a process: start-up with defaults and flags, configuration errors,
 * signals, and durability across restarts on the same data directory.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createJob, http, logEvent, publish, waitFor, WsClient } from "../_helpers/clients.ts";
import {
  runMain,
  SERVER_PERMISSIONS,
  spawnServer,
  startTestServer,
  withChildServer,
} from "../_helpers/server.ts";
import { concat } from "../_helpers/bytes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("deno task start passes its extra arguments to the server", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-task-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "start", "--port", "0", "--data-dir", dataDir, "--no-auth"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stdout) text += decoder.decode(chunk);
  })();
  const errors = (async () => {
    for await (const chunk of child.stderr) text += decoder.decode(chunk);
  })();
  try {
    const deadline = Date.now() + 20_000;
    let url: string | undefined;
    while (url === undefined && Date.now() < deadline) {
      url = /listening on (http:\/\/\S+)/.exec(text)?.[1];
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(url, `no listening line in:\n${text}`);
    const reply = await http(url, "GET", "/healthz");
    assert.equal(reply.status, 200);
    assert.ok(await Deno.stat(join(dataDir, "jobwire.db")));
    assert.match(text, /WARN running without authentication/);
  } finally {
    // `deno task` forwards the signal to the server it started.
    child.kill("SIGTERM");
    await child.status;
    await reading;
    await errors;
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("server starts with embedded defaults: SQLite under ./data of its working directory", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "jobwire-defaults-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...SERVER_PERMISSIONS, join(ROOT, "main.ts")],
    cwd,
    stdout: "piped",
    stderr: "piped",
    // Port 8080 may be taken on a shared machine; the environment variable overrides only it.
    env: { NO_COLOR: "1", JOBWIRE_PORT: "0" },
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stdout) text += decoder.decode(chunk);
  })();
  const errors = (async () => {
    for await (const chunk of child.stderr) text += decoder.decode(chunk);
  })();
  try {
    const deadline = Date.now() + 20_000;
    while (!/listening on/.test(text) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const line = text.split("\n").find((l) => l.includes("listening on"));
    assert.ok(line, text);
    assert.match(
      line,
      /^jobwire listening on http:\/\/127\.0\.0\.1:\d+ \(data: \.\/data, (\d+ isolates|1 isolate)\)$/,
    );
    assert.ok((await Deno.stat(join(cwd, "data", "jobwire.db"))).isFile);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
    await errors;
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a bad configuration value stops start-up with a message naming its source", async () => {
  const port = await runMain(["--port", "eighty"]);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /--port/);
  assert.match(port.stderr, /integer/);

  const env = await runMain(["--port", "0"], { env: { JOBWIRE_RETENTION: "forever" } });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /JOBWIRE_RETENTION/);

  const unknown = await runMain(["--prot", "80"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown option --prot/);

  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "jobwire.json");
    await Deno.writeTextFile(file, JSON.stringify({ replay_window: -4 }));
    const fromFile = await runMain(["--config", file, "--port", "0"]);
    assert.equal(fromFile.code, 2);
    assert.match(fromFile.stderr, /replay_window in .*jobwire\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--help lists every option with its environment variable", async () => {
  const help = await runMain(["--help"]);
  assert.equal(help.code, 0);
  for (
    const option of [
      "--host",
      "--port",
      "--data-dir",
      "--retention",
      "--replay-window",
      "--heartbeat",
      "--no-auth",
    ]
  ) {
    assert.ok(help.stdout.includes(option), option);
  }
  assert.match(help.stdout, /JOBWIRE_REPLAY_WINDOW/);
});

Deno.test("a restart on the same data directory keeps jobs and events, and sequences continue", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-restart-" });
  try {
    const first = await spawnServer(["--port", "0", "--data-dir", dataDir, "--no-auth"]);
    const id = await createJob(first.url, { id: "durable-1", kind: "etl" });
    await http(first.url, "POST", `/jobs/${id}/start`);
    await publish(first.url, id, logEvent(1), logEvent(2), {
      type: "progress",
      data: { progress: 40 },
    });
    const done = await createJob(first.url, { id: "durable-2" });
    await http(first.url, "POST", `/jobs/${done}/start`);
    await http(first.url, "POST", `/jobs/${done}/complete`, { result: { rows: 3 } });
    assert.equal((await first.stop("SIGTERM")).code, 0);

    const second = await spawnServer(["--port", "0", "--data-dir", dataDir, "--no-auth"]);
    try {
      const job = await http(second.url, "GET", `/jobs/${id}`);
      assert.equal(job.json.status, "running");
      assert.equal(job.json.progress, 40);
      assert.equal(job.json.last_sequence, 4);
      const finished = await http(second.url, "GET", `/jobs/${done}`);
      assert.deepEqual(finished.json.result, { rows: 3 });
      const page = await http(second.url, "GET", `/jobs/${id}/events?since=0`);
      assert.deepEqual(page.json.events.map((e: { sequence: number }) => e.sequence), [1, 2, 3, 4]);
      assert.deepEqual(await publish(second.url, id, logEvent(3)), [5]);
      const ws = await WsClient.connect(`${second.url}/ws/jobs/${id}?since=3`);
      try {
        await ws.next((m) => m.type === "connection");
        assert.deepEqual([(await ws.next()).sequence, (await ws.next()).sequence], [4, 5]);
      } finally {
        await ws.close();
      }
    } finally {
      await second.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} closes streams with 1001, keeps every acknowledged event and exits 0`, async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-signal-" });
    try {
      const server = await spawnServer(["--port", "0", "--data-dir", dataDir, "--no-auth"]);
      const id = await createJob(server.url);
      const ws = await WsClient.connect(`${server.url}/ws/jobs/${id}`);
      await ws.next((m) => m.type === "connection");
      // Publishes race the signal: whatever was acknowledged must survive it.
      const acknowledged: number[] = [];
      const publishing = Array.from({ length: 40 }, async (_, i) => {
        try {
          const reply = await http(server.url, "POST", `/jobs/${id}/events`, logEvent(i));
          if (reply.status === 201) acknowledged.push(...reply.json.sequences);
        } catch {
          // Refused once the server stopped accepting: not acknowledged.
        }
      });
      await new Promise((r) => setTimeout(r, 5));
      const status = await server.stop(signal);
      await Promise.all(publishing);
      assert.equal(status.code, 0, server.output());
      assert.equal((await ws.closed).code, 1001);

      const again = await spawnServer(["--port", "0", "--data-dir", dataDir, "--no-auth"]);
      try {
        const page = await http(again.url, "GET", `/jobs/${id}/events?since=0&limit=1000`);
        const stored = new Set(page.json.events.map((e: { sequence: number }) => e.sequence));
        for (const sequence of acknowledged) {
          assert.ok(stored.has(sequence), `acknowledged ${sequence} lost`);
        }
        assert.equal(page.json.last_sequence, stored.size);
      } finally {
        await again.stop();
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  });
}

/** The launcher's one child: the `deno serve` process of its isolates. */
async function isolatesProcess(launcher: number): Promise<number> {
  const children = new TextDecoder().decode(
    (await new Deno.Command("pgrep", { args: ["-P", String(launcher)] }).output()).stdout,
  ).trim().split(/\s+/).map(Number);
  assert.equal(children.length, 1, `children: ${children}`);
  return children[0]!;
}

Deno.test("isolates that end unexpectedly are started again, with every acknowledged event", async () => {
  await withChildServer(2, ["--log-level", "info"], async (server) => {
    const id = await createJob(server.url);
    const published = await publish(server.url, id, logEvent(1), logEvent(2));
    assert.deepEqual(published, [1, 2]);
    // The launcher's child is the `deno serve` process; SIGKILL stands for any end the
    // launcher did not ask for (the runtime stops serving for good without file descriptors).
    Deno.kill(await isolatesProcess(server.process.pid), "SIGKILL");
    await waitFor(() => server.output().includes("serving again"), 30_000, "the restart");
    assert.match(server.output(), /ended unexpectedly \(code \d+\): starting them again/);
    const health = await http(server.url, "GET", "/healthz");
    assert.equal(health.status, 200);
    assert.equal(health.json.isolates, 2);
    assert.deepEqual(await publish(server.url, id, logEvent(3)), [3]);
    const events = await http(server.url, "GET", `/jobs/${id}/events?since=0`);
    assert.deepEqual(events.json.events.map((e: { sequence: number }) => e.sequence), [1, 2, 3]);
    // A SIGTERM sent to the isolates' process rather than the launcher: they stop
    // gracefully, and the launcher says whom to signal to stop jobwire.
    const restarted = await isolatesProcess(server.process.pid);
    Deno.kill(restarted, "SIGTERM");
    await waitFor(
      () => server.output().split("serving again").length === 3,
      30_000,
      "the second restart",
    );
    assert.ok(
      server.output().includes(
        `WARN the server isolates stopped on a signal sent to their process (pid ${restarted}), not to this launcher (pid ${server.process.pid}, the one to signal to stop jobwire)`,
      ),
      server.output(),
    );
    assert.deepEqual(await publish(server.url, id, logEvent(4)), [4]);
    // Asked to stop, it stops for good.
    assert.equal((await server.stop("SIGTERM")).code, 0);
  });
});

Deno.test("SIGTERM sent the moment the listening line appears stops the server", async () => {
  // Two races once lost such a signal: the launcher printed the line before listening for
  // signals (it died with 143), and it reported ready while an isolate was still loading, which
  // then never saw the SIGTERM passed on and kept the process running.
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-early-signal-" });
  try {
    for (let round = 0; round < 5; round++) {
      const server = await spawnServer(["--port", "0", "--data-dir", dataDir]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = new Promise<"hung">((resolve) => {
        timer = setTimeout(() => resolve("hung"), 20_000);
      });
      const outcome = await Promise.race([server.stop("SIGTERM"), hung]);
      clearTimeout(timer);
      if (outcome === "hung") {
        server.process.kill("SIGKILL");
        await server.stop("SIGKILL");
        assert.fail(`round ${round}: the server ignored SIGTERM:\n${server.output()}`);
      }
      assert.equal(outcome.code, 0, server.output());
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a second server on a data directory in use is refused, naming the first's pid; the first keeps serving", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-lock-" });
  const first = await spawnServer(["--port", "0", "--data-dir", dir, "--no-auth"]);
  try {
    for (const workers of ["1", "2"]) {
      const second = await runMain([
        "--port",
        "0",
        "--data-dir",
        dir,
        "--no-auth",
        "--workers",
        workers,
      ]);
      assert.equal(second.code, 2, second.stderr);
      assert.match(second.stderr, /in use by another jobwire server \(pid \d+\)/);
      assert.doesNotMatch(second.stderr, /Uncaught| {4}at /);
    }
    assert.equal((await http(first.url, "GET", "/healthz")).status, 200);
  } finally {
    await first.stop();
  }
  // Once the first has stopped, the directory is free.
  const again = await spawnServer([
    "--port",
    "0",
    "--data-dir",
    dir,
    "--no-auth",
    "--workers",
    "1",
  ]);
  await again.stop();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a data directory that is a file is refused as a usage error, naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-file-" });
  const file = join(dir, "data");
  await Deno.writeTextFile(file, "not a directory\n");
  try {
    const run = await runMain(["--port", "0", "--data-dir", file, "--no-auth", "--workers", "1"]);
    assert.equal(run.code, 2, run.stderr);
    assert.ok(run.stderr.includes(`The data directory ${file} is a file, not a directory`));
    assert.doesNotMatch(run.stderr, /EEXIST|Uncaught| {4}at /);
    assert.equal(await Deno.readTextFile(file), "not a directory\n");
    // A directory to be made inside that file, and the subcommands that use the directory.
    const inside = join(file, "sub");
    for (
      const [args, message] of [
        [["--port", "0", "--data-dir", inside, "--no-auth"], `would be inside ${file}, which is`],
        [["token", "--sub", "x", "--scope", "read", "--data-dir", file], "is a file"],
        [["user", "list", "--data-dir", inside], `would be inside ${file}, which is`],
      ] as const
    ) {
      const refused = await runMain([...args]);
      assert.equal(refused.code, 2, `${args.join(" ")}: ${refused.stderr}`);
      assert.ok(refused.stderr.includes(message), refused.stderr);
      assert.doesNotMatch(refused.stderr, /EEXIST|ENOTDIR|Uncaught| {4}at /);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("start-up failures of the machine are one line, not a stack trace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-start-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await Deno.writeTextFile(join(dir, "jobwire.db"), "not a database\n".repeat(100));
    const notDb = await runMain(["--port", "0", "--data-dir", dir, "--no-auth"]);
    assert.equal(notDb.code, 1, notDb.stderr);
    assert.match(
      notDb.stderr,
      /^jobwire: cannot use the database: .*jobwire\.db: file is not a database\n$/m,
    );
    assert.doesNotMatch(notDb.stderr, /Uncaught| {4}at /);

    // A data directory that is a file: a usage error of its own (see above).
    for (const workers of ["1", "2"]) {
      const taken = await runMain([
        "--port",
        String(listener.addr.port),
        "--data-dir",
        join(dir, `taken-${workers}`),
        "--no-auth",
        "--workers",
        workers,
      ]);
      assert.equal(taken.code, 1, taken.stderr);
      assert.match(taken.stderr, /jobwire: cannot listen: the address is in use/);
      assert.doesNotMatch(taken.stderr, /Uncaught| {4}at /);
      // Found before the database is opened: one an older server still uses is not upgraded.
      await assert.rejects(
        Deno.stat(join(dir, `taken-${workers}`, "jobwire.db")),
        Deno.errors.NotFound,
        `workers ${workers}`,
      );
    }

    // A database from a newer jobwire, and a secret someone cut short: one line each.
    const newer = join(dir, "newer");
    await Deno.mkdir(newer);
    const db = new DatabaseSync(join(newer, "jobwire.db"));
    db.exec("PRAGMA user_version = 99");
    db.close();
    const short = join(dir, "short");
    await Deno.mkdir(short);
    await Deno.writeTextFile(join(short, "jwt-secret"), "short\n");
    for (const [data, message] of [[newer, /schema version 99 is newer/], [short, /too short/]]) {
      for (const workers of ["1", "2"]) {
        const refused = await runMain([
          "--port",
          "0",
          "--data-dir",
          data as string,
          "--workers",
          workers,
        ]);
        assert.equal(refused.code, 1, refused.stderr);
        assert.match(refused.stderr, message as RegExp);
        assert.doesNotMatch(refused.stderr, /Uncaught| {4}at /);
      }
    }

    const heartbeat = await runMain(["--heartbeat", "30d", "--data-dir", join(dir, "hb")]);
    assert.equal(heartbeat.code, 2);
    assert.match(heartbeat.stderr, /--heartbeat: expected a duration of at most 24d/);

    // A public key file that cannot be used: one line from the launcher, on any number of
    // isolates (each isolate used to print its own stack trace).
    for (const workers of ["1", "2"]) {
      for (const key of [join(dir, "missing.pem"), dir]) {
        const bad = await runMain([
          "--port",
          "0",
          "--data-dir",
          join(dir, `key-${workers}`),
          "--jwt-public-key",
          key,
          "--workers",
          workers,
        ]);
        assert.equal(bad.code, 2, bad.stderr);
        assert.match(bad.stderr, /^jobwire: Cannot read --jwt-public-key .*\n$/);
        assert.doesNotMatch(bad.stderr, /Uncaught| {4}at /);
      }
    }
    // Given in the environment, the message names the variable.
    const fromEnv = await runMain(
      ["--port", "0", "--data-dir", join(dir, "key-env"), "--workers", "1"],
      { env: { JOBWIRE_JWT_PUBLIC_KEY: join(dir, "missing.pem") } },
    );
    assert.equal(fromEnv.code, 2, fromEnv.stderr);
    assert.match(fromEnv.stderr, /^jobwire: Cannot read JOBWIRE_JWT_PUBLIC_KEY .*missing\.pem/);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an in-memory database serves on one isolate, with a warning", async () => {
  const server = await spawnServer([
    "--port",
    "0",
    "--data-dir",
    ":memory:",
    "--no-auth",
    "--workers",
    "2",
  ]);
  try {
    assert.match(server.output(), /serving with one isolate: an in-memory database/);
    await http(server.url, "POST", "/jobs", { id: "mem" });
    // Every request finds the job: there is one database, whichever connection asks.
    for (let i = 0; i < 8; i++) {
      const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
      try {
        const reply = await fetch(`${server.url}/jobs/mem`, { client } as RequestInit);
        assert.equal(reply.status, 200);
        await reply.body?.cancel();
      } finally {
        client.close();
      }
    }
  } finally {
    await server.stop();
  }
});

Deno.test("a publish whose body is still arriving when the server stops gets 503 with Retry-After, not 400", async () => {
  const server = await startTestServer({});
  let stopping: Promise<void> | undefined;
  try {
    const id = await createJob(server.url);
    const body = JSON.stringify(logEvent("slow"));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      const encoder = new TextEncoder();
      await conn.write(encoder.encode(
        `POST /jobs/${id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n` +
          body.slice(0, 10),
      ));
      await new Promise((resolve) => setTimeout(resolve, 200));
      stopping = server.shutdown();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await conn.write(encoder.encode(body.slice(10))).catch(() => {});
      const reply = await readAll(conn);
      assert.match(reply, /^HTTP\/1\.1 503 /, reply);
      assert.match(reply, /\r\nretry-after: 1\r\n/i, reply);
      assert.match(reply, /"code":"unavailable"/, reply);
    } finally {
      conn.close();
    }
  } finally {
    await (stopping ?? server.shutdown());
    await Deno.remove(server.dataDir, { recursive: true }).catch(() => {});
  }
});

/** What the peer sends until it closes the connection. */
async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  return new TextDecoder().decode(concat(chunks));
}

Deno.test("a database damaged in places fails the requests that touch them with 503, and /healthz on every isolate says so", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-damaged-" });
  try {
    const first = await startTestServer({}, { dataDir });
    const ids: string[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        const id = await createJob(first.url);
        ids.push(id);
        await publish(
          first.url,
          id,
          ...Array.from({ length: 20 }, () => logEvent("x".repeat(300))),
        );
      }
    } finally {
      await first.shutdown();
    }
    // Three pages in the middle of the file overwritten; the header and schema stay readable.
    const file = await Deno.open(join(dataDir, "jobwire.db"), { read: true, write: true });
    try {
      await file.seek(20480, Deno.SeekMode.Start);
      await file.write(new Uint8Array(12288).fill(0xff));
    } finally {
      file.close();
    }
    const second = await spawnServer([
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--no-auth",
      "--workers",
      "2",
    ]);
    // A connection per request: the kernel hands them to either isolate.
    const get = async (path: string) => {
      const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
      try {
        const init: RequestInit & { client: Deno.HttpClient } = { client };
        const reply = await fetch(`${second.url}${path}`, init);
        return { status: reply.status, json: await reply.json() };
      } finally {
        client.close();
      }
    };
    try {
      assert.equal((await get("/healthz")).status, 200);
      // Read until one request fails: one isolate sees the failure.
      let failed: { status: number; json: { error: { code: string } } } | undefined;
      for (const id of ids) {
        const reply = await get(`/jobs/${id}/events`);
        if (reply.status === 200) continue;
        failed = reply;
        break;
      }
      assert.ok(failed !== undefined, "some page of the damaged file is read");
      assert.equal(failed.status, 503, JSON.stringify(failed.json));
      assert.equal(failed.json.error.code, "unavailable");
      // Every isolate answers so, whichever saw the failure (once the word has gone round);
      // SQLite's own words stay in the log.
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (let i = 0; i < 8; i++) {
        const health = await get("/healthz");
        assert.equal(health.status, 503, JSON.stringify(health.json));
        assert.match(health.json.error.message, /damaged, unreadable, full or read-only/);
        assert.doesNotMatch(health.json.error.message, /malformed/);
      }
      assert.match(second.output(), /malformed/);
    } finally {
      await second.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a server of one isolate that runs out of file descriptors listens again once it can, instead of exiting", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-fds-" });
  const server = await spawnServer(
    ["--port", "0", "--data-dir", dataDir, "--workers", "1", "--no-auth"],
    { maxFiles: 120 },
  );
  try {
    const { hostname, port } = new URL(server.url);
    // Connections that send nothing, until the server can take no more.
    const held: Deno.Conn[] = [];
    for (let i = 0; i < 400; i++) {
      try {
        held.push(await Deno.connect({ hostname, port: Number(port) }));
      } catch {
        break;
      }
    }
    await waitFor(
      () => server.output().includes("stopped accepting connections"),
      10_000,
      "the server to run out of descriptors",
    );
    for (const conn of held) conn.close();
    await waitFor(
      async () => {
        try {
          const reply = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(1000) });
          await reply.body?.cancel();
          return reply.status === 200;
        } catch {
          return false;
        }
      },
      15_000,
      "the server to answer again",
    );
    assert.match(server.output(), /accepting connections again/);
    const id = await createJob(server.url);
    assert.deepEqual(await publish(server.url, id, logEvent(1)), [1]);
    assert.equal((await server.stop("SIGTERM")).code, 0);
  } finally {
    await server.stop("SIGKILL").catch(() => {});
    await Deno.remove(dataDir, { recursive: true });
  }
});
