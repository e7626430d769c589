import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { http, waitFor } from "../_helpers/clients.ts";
import { startTestServer, withServer } from "../_helpers/server.ts";
import {
  closedPort,
  denoScript,
  runCli,
  scriptDir,
  spawnMain,
  type StoredEvent,
  storedEvents,
  waitForStatus,
  withoutEstimates,
} from "../_helpers/cli.ts";

/**
 * A child that prints on both streams and, after each line, waits until the server has
 * stored what that line should produce, so the events are exactly known. It reads the
 * job from the JOBWIRE_* variables `run` gives it. Argument: ok | exit3 | signal.
 */
const SYNCED_CHILD = `
const server = Deno.env.get("JOBWIRE_SERVER");
const id = Deno.env.get("JOBWIRE_JOB_ID");
const utf8 = new TextEncoder();
const deadline = Date.now() + 20000;
async function stored(check) {
  for (;;) {
    const reply = await fetch(server + "/jobs/" + id + "/events?since=0&limit=1000");
    const page = await reply.json();
    if (reply.ok && check(page.events)) return;
    if (Date.now() > deadline) Deno.exit(99);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const line = (text) => (es) => es.some((e) => e.type === "log" && e.data.line === text);
const progress = (p) => (es) => es.some((e) => e.type === "progress" && e.data.progress === p);
Deno.stdout.writeSync(utf8.encode("step one\\n"));
await stored(line("step one"));
Deno.stderr.writeSync(utf8.encode("careful\\n"));
await stored(line("careful"));
Deno.stdout.writeSync(utf8.encode("50%\\n"));
await stored(progress(50));
Deno.stdout.writeSync(utf8.encode("3/4\\n"));
await stored(progress(75));
Deno.stdout.writeSync(utf8.encode("partial"));
if (Deno.args[0] === "exit3") Deno.exit(3);
if (Deno.args[0] === "signal") {
  Deno.kill(Deno.pid, "SIGTERM");
  await new Promise((r) => setTimeout(r, 10000));
}
`;

/** The events every run of SYNCED_CHILD stores before its end. */
const SYNCED_EVENTS = [
  { type: "status", data: { status: "running" } },
  { type: "log", data: { line: "step one", level: "info", source: "stdout" } },
  { type: "log", data: { line: "careful", level: "warning", source: "stderr" } },
  { type: "log", data: { line: "50%", level: "info", source: "stdout" } },
  { type: "progress", data: { progress: 50, message: "50%", percentage: "50%" } },
  { type: "log", data: { line: "3/4", level: "info", source: "stdout" } },
  {
    type: "progress",
    data: { progress: 75, current: 3, total: 4, message: "3/4", percentage: "75%" },
  },
  { type: "log", data: { line: "partial", level: "info", source: "stdout" } },
];

function shape(events: StoredEvent[]): { type: string; data: Record<string, unknown> }[] {
  return events.map(withoutEstimates).map(({ type, data }) => ({ type, data }));
}

async function runSynced(mode: string, expectedEnd: { type: string; data: unknown }[]) {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    try {
      const child = await scripts.write("child.js", SYNCED_CHILD);
      const argv = denoScript(child, mode);
      const out = await runCli([
        "run",
        "--server",
        server.url,
        "--id",
        `synced-${mode}`,
        "--",
        ...argv,
      ]);
      const events = await storedEvents(server.url, `synced-${mode}`);
      assert.deepEqual(shape(events), [...SYNCED_EVENTS, ...expectedEnd], out.stderr);
      assert.deepEqual(events.map((e) => e.sequence), events.map((_, i) => i + 1));
      assert.equal(out.stdout, "step one\n50%\n3/4\npartial", "stdout passes through unchanged");
      assert.match(out.stderr, /^careful$/m);
      assert.match(
        out.stderr,
        new RegExp(`^jobwire: job synced-${mode}: ${server.url}/#/jobs/synced-${mode}$`, "m"),
      );
      const job = await http(server.url, "GET", `/jobs/synced-${mode}`);
      assert.equal(job.json.kind, "command");
      assert.deepEqual(job.json.metadata.command, argv);
    } finally {
      await scripts.remove();
    }
  });
}

Deno.test("run publishes lines, progress and completion of a command that exits 0", async () => {
  await runSynced("ok", [
    { type: "result", data: { results: { exit_code: 0 } } },
    { type: "status", data: { status: "completed" } },
  ]);
});

Deno.test("run fails the job with the exit code of a command that exits 3, and exits 3", async () => {
  let code = -1;
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    try {
      const child = await scripts.write("child.js", SYNCED_CHILD);
      const out = await runCli([
        "run",
        "--server",
        server.url,
        "--id",
        "three",
        "--",
        ...denoScript(child, "exit3"),
      ]);
      code = out.code;
      const events = shape(await storedEvents(server.url, "three"));
      assert.deepEqual(events, [
        ...SYNCED_EVENTS,
        {
          type: "error",
          data: { error: "Exited with code 3", error_type: "exit_code", details: { exit_code: 3 } },
        },
        { type: "status", data: { status: "failed", message: "Exited with code 3" } },
      ]);
    } finally {
      await scripts.remove();
    }
  });
  assert.equal(code, 3);
});

Deno.test("run fails the job with the signal that killed the command, and exits 128 + N", async () => {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    try {
      const child = await scripts.write("child.js", SYNCED_CHILD);
      const out = await runCli([
        "run",
        "--server",
        server.url,
        "--id",
        "sig",
        "--",
        ...denoScript(child, "signal"),
      ]);
      assert.equal(out.code, 128 + 15);
      assert.deepEqual(shape(await storedEvents(server.url, "sig")), [
        ...SYNCED_EVENTS,
        {
          type: "error",
          data: {
            error: "Killed by SIGTERM",
            error_type: "signal",
            details: { signal: "SIGTERM", exit_code: 143 },
          },
        },
        { type: "status", data: { status: "failed", message: "Killed by SIGTERM" } },
      ]);
    } finally {
      await scripts.remove();
    }
  });
});

Deno.test("run passes output through byte for byte and logs what a terminal would show", async () => {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    try {
      // Chunks with a redrawn line, CRLF, invalid UTF-8, colour codes and no final newline.
      const child = await scripts.write(
        "bytes.js",
        `const chunks = [[97, 13], [98, 13, 10], [0xff, 0xfe], [27, 91, 51, 49, 109, 114, 101, 100, 27, 91, 48, 109, 10], [116, 97, 105, 108]];
for (const c of chunks) { Deno.stdout.writeSync(new Uint8Array(c)); await new Promise((r) => setTimeout(r, 5)); }`,
      );
      const out = await runCli([
        "run",
        "--server",
        server.url,
        "--id",
        "bytes",
        "--",
        ...denoScript(child),
      ]);
      assert.equal(out.code, 0);
      assert.deepEqual(
        [...out.bytes],
        [
          97,
          13,
          98,
          13,
          10,
          0xff,
          0xfe,
          27,
          91,
          51,
          49,
          109,
          114,
          101,
          100,
          27,
          91,
          48,
          109,
          10,
          116,
          97,
          105,
          108,
        ],
      );
      const lines = (await storedEvents(server.url, "bytes")).filter((e) => e.type === "log")
        .map((e) => e.data.line);
      assert.deepEqual(lines, ["b", "\ufffd\ufffdred", "tail"]);
    } finally {
      await scripts.remove();
    }
  });
});

Deno.test("run with sh: both streams, percentages, the latest progress and exit code 3", async () => {
  await withServer({}, async (server) => {
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "sh-job",
      "--kind",
      "script",
      "--",
      "sh",
      "-c",
      "echo 25%; echo warn >&2; echo 2/4; echo done; exit 3",
    ]);
    assert.equal(out.code, 3);
    assert.equal(out.stdout, "25%\n2/4\ndone\n");
    const events = await storedEvents(server.url, "sh-job");
    const logs = events.filter((e) => e.type === "log").map((e) =>
      `${e.data.source}:${e.data.level}:${e.data.line}`
    );
    assert.deepEqual(logs.filter((l) => l.startsWith("stdout")), [
      "stdout:info:25%",
      "stdout:info:2/4",
      "stdout:info:done",
    ]);
    assert.deepEqual(logs.filter((l) => !l.startsWith("stdout")), ["stderr:warning:warn"]);
    const progress = events.filter((e) => e.type === "progress").map((e) => e.data.progress);
    assert.ok(progress.length >= 1 && progress.every((p) => p === 25 || p === 50), `${progress}`);
    assert.equal(progress.at(-1), 50, "the latest progress is always sent");
    assert.deepEqual(events.slice(-2).map((e) => e.type), ["error", "status"]);
    assert.equal(events.at(-1)!.data.status, "failed");
    const job = await http(server.url, "GET", "/jobs/sh-job");
    assert.equal(job.json.kind, "script");
    assert.deepEqual(job.json.error.details, { exit_code: 3 });
  });
});

Deno.test("run throttles progress: a burst of 100 percentages ends at 100 with few events", async () => {
  await withServer({}, async (server) => {
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "burst-progress",
      "--",
      Deno.execPath(),
      "eval",
      `const text = Array.from({ length: 100 }, (_, i) => (i + 1) + "%\\n").join("");
Deno.stdout.writeSync(new TextEncoder().encode(text));`,
    ]);
    assert.equal(out.code, 0);
    const progress = (await storedEvents(server.url, "burst-progress")).filter((e) =>
      e.type === "progress"
    ).map((e) => e.data.progress as number);
    assert.equal(progress.at(-1), 100);
    assert.ok(progress.length < 100, `${progress.length} progress events`);
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), "in order, never stale");
  });
});

Deno.test("run still runs the command when the server is unreachable, and warns once", async () => {
  const port = closedPort();
  const out = await runCli([
    "run",
    "--server",
    `http://127.0.0.1:${port}`,
    "--",
    "sh",
    "-c",
    "echo out 10%; echo err >&2; echo 2/2; exit 5",
  ]);
  assert.equal(out.code, 5);
  assert.equal(out.stdout, "out 10%\n2/2\n");
  const lines = out.stderr.split("\n").filter((l) => l !== "");
  assert.ok(lines.includes("err"), out.stderr);
  const notes = lines.filter((l) => l.startsWith("jobwire:"));
  // One warning, and no link to a job that was never made.
  assert.equal(notes.length, 1, out.stderr);
  assert.match(notes[0]!, /could not start the job .*the command runs without publishing$/);
});

Deno.test("run still runs the command when JOBWIRE_SERVER or --server is no URL, and says why once", async () => {
  for (
    const [args, env] of [
      [[], { JOBWIRE_SERVER: "localhost:8080" }],
      [["--server", "ftp://jobs.example"], {}],
    ] as const
  ) {
    const out = await runCli(["run", ...args, "--", "sh", "-c", "echo ran; exit 3"], env);
    assert.equal(out.code, 3, out.stderr);
    assert.equal(out.stdout, "ran\n");
    const notes = out.stderr.split("\n").filter((l) => l.startsWith("jobwire:"));
    assert.equal(notes.length, 1, out.stderr);
    assert.match(notes[0]!, /Invalid server URL .*; the command runs without publishing$/);
  }
  // The other tools have nothing to do without a server: a usage error.
  const watch = await runCli(["watch", "some-job"], { JOBWIRE_SERVER: "localhost:8080" });
  assert.equal(watch.code, 2, watch.stderr);
  assert.match(watch.stderr, /Invalid server URL "localhost:8080"/);
});

/**
 * Runs a Deno script under `run --id ID` (with `flags` before the `--`), and waits until
 * it printed `ready` (its signal handlers are set) and its job is running. `body` gets the
 * running `run`; the script and the process are cleaned up afterwards.
 */
async function withScriptRun(
  serverUrl: string,
  id: string,
  source: string,
  flags: string[],
  body: (run: ReturnType<typeof spawnMain>) => Promise<void>,
): Promise<void> {
  const scripts = await scriptDir();
  const child = await scripts.write(`${id}.js`, source);
  const run = spawnMain([
    "run",
    "--server",
    serverUrl,
    "--id",
    id,
    ...flags,
    "--",
    ...denoScript(child),
  ]);
  try {
    await run.waitForOutput(/^ready$/m);
    await waitForStatus(serverUrl, id, "running");
    await body(run);
  } finally {
    await run.kill();
    await scripts.remove();
  }
}

Deno.test("run forwards SIGINT to the command and cancels the job", async () => {
  await withServer({}, async (server) => {
    const source =
      `Deno.addSignalListener("SIGINT", () => { console.log("child got SIGINT"); Deno.exit(42); });
console.log("ready");
setTimeout(() => Deno.exit(7), 30000);`;
    await withScriptRun(server.url, "interrupted", source, [], async (run) => {
      run.process.kill("SIGINT");
      const status = await run.finished();
      assert.equal(status.code, 42, run.stderr());
      assert.match(run.stdout(), /^child got SIGINT$/m);
      const events = await storedEvents(server.url, "interrupted");
      assert.deepEqual(events.slice(-2).map((e) => e.data), [
        {
          line: "jobwire: SIGINT was passed to the command, which then exited with code 42",
          level: "warning",
          source: "jobwire",
        },
        { status: "cancelled", message: "Interrupted (SIGINT)" },
      ]);
    });
  });
});

Deno.test("run passes SIGTERM to every process the command started, so a shell leaves nothing running", async () => {
  await withServer({}, async (server) => {
    const dir = await Deno.makeTempDir({ prefix: "jobwire-term-" });
    const pidFile = `${dir}/sleep.pid`;
    const run = spawnMain([
      "run",
      "--server",
      server.url,
      "--id",
      "terminated",
      "--",
      "sh",
      "-c",
      `sleep 30 & echo $! > ${pidFile}; echo ready; wait`,
    ]);
    try {
      await run.waitForOutput(/^ready$/m);
      await waitForStatus(server.url, "terminated", "running");
      const pid = Number((await Deno.readTextFile(pidFile)).trim());
      run.process.kill("SIGTERM");
      const status = await run.finished();
      assert.equal(status.code, 143, run.stderr());
      // The shell's child, which a supervisor's SIGTERM to run alone would never reach (gone
      // once reaped: a process just killed answers kill -0 until then).
      await waitFor(
        async () =>
          !(await new Deno.Command("kill", { args: ["-0", String(pid)], stderr: "null" }).output())
            .success,
        5000,
        `sleep ${pid} to end`,
      );
      const job = (await http(server.url, "GET", "/jobs/terminated")).json;
      assert.deepEqual([job.status, job.message], ["cancelled", "Interrupted (SIGTERM)"]);
    } finally {
      await run.kill();
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("run exits 130 when SIGINT kills a command that does not catch it", async () => {
  await withServer({}, async (server) => {
    const run = spawnMain(["run", "--server", server.url, "--id", "slept", "--", "sleep", "30"]);
    try {
      await waitForStatus(server.url, "slept", "running");
      run.process.kill("SIGINT");
      assert.equal((await run.finished()).code, 130);
      const job = await http(server.url, "GET", "/jobs/slept");
      assert.equal(job.json.status, "cancelled");
    } finally {
      await run.kill();
    }
  });
});

Deno.test("run reports to an existing job named by --id, keeping its metadata", async () => {
  await withServer({}, async (server) => {
    await http(server.url, "POST", "/jobs", {
      id: "pre-made",
      kind: "nightly",
      metadata: { a: 1 },
    });
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "pre-made",
      "--",
      "echo",
      "hi",
    ]);
    assert.equal(out.code, 0);
    const job = await http(server.url, "GET", "/jobs/pre-made");
    assert.equal(job.json.status, "completed");
    assert.deepEqual(job.json.metadata, { a: 1 });
    assert.equal(job.json.kind, "nightly");
  });
});

Deno.test("run warns once and keeps the exit code when --id names a finished job", async () => {
  await withServer({}, async (server) => {
    await http(server.url, "POST", "/jobs", { id: "over" });
    await http(server.url, "POST", "/jobs/over/cancel", {});
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "over",
      "--",
      "sh",
      "-c",
      "echo x; exit 2",
    ]);
    assert.equal(out.code, 2);
    assert.equal(out.stdout, "x\n");
    const notes = out.stderr.split("\n").filter((l) => l.startsWith("jobwire:"));
    assert.equal(notes.length, 1, out.stderr);
    assert.match(notes[0]!, /could not start the job/);
  });
});

Deno.test("run warns once and reports nothing when --id names a job already running", async () => {
  await withServer({}, async (server) => {
    await http(server.url, "POST", "/jobs", { id: "taken" });
    await http(server.url, "POST", "/jobs/taken/start", {});
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "taken",
      "--",
      "sh",
      "-c",
      "echo mine; exit 9",
    ]);
    assert.equal(out.code, 9);
    assert.equal(out.stdout, "mine\n");
    const notes = out.stderr.split("\n").filter((l) => l.startsWith("jobwire:"));
    assert.equal(notes.length, 1, out.stderr);
    assert.match(notes[0]!, /already running/);
    // The job is the other worker's: nothing of this run went to it.
    const job = (await http(server.url, "GET", "/jobs/taken")).json;
    assert.deepEqual([job.status, job.last_sequence], ["running", 1]);
  });
});

Deno.test("run marks the job failed and exits 127 when the command does not exist", async () => {
  await withServer({}, async (server) => {
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "missing",
      "--",
      "no-such-program-xyz",
    ]);
    assert.equal(out.code, 127);
    assert.match(out.stderr, /cannot run no-such-program-xyz/);
    const job = await http(server.url, "GET", "/jobs/missing");
    assert.equal(job.json.status, "failed");
    assert.equal(job.json.error.error_type, "spawn_error");
  });
});

Deno.test("run refuses a missing command and a bad --id with exit 2", async () => {
  const none = await runCli(["run", "--server", "http://127.0.0.1:9"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /run needs a command/);
  const bad = await runCli(["run", "--id", "-bad", "--", "true"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid --id/);
});

Deno.test("run keeps going when the server goes away mid-run, and warns once", async () => {
  const scripts = await scriptDir();
  const marker = `${scripts.dir}/go`;
  const child = await scripts.write(
    "waiter.js",
    `console.log("ready");
while (true) {
  try { Deno.statSync(${
      JSON.stringify(marker)
    }); break; } catch { await new Promise((r) => setTimeout(r, 20)); }
}
console.log("after");
Deno.exit(4);`,
  );
  const server = await startTestServer();
  let closed = false;
  const run = spawnMain([
    "run",
    "--server",
    server.url,
    "--id",
    "orphan",
    "--",
    ...denoScript(child),
  ]);
  try {
    await waitFor(
      async () => {
        const events = await storedEvents(server.url, "orphan").catch(() => []);
        return events.some((e) => e.data.line === "ready");
      },
      15_000,
      "the first line to be stored",
    );
    await server.close();
    closed = true;
    await Deno.writeTextFile(marker, "");
    const status = await run.finished();
    assert.equal(status.code, 4);
    assert.equal(run.stdout(), "ready\nafter\n");
    const notes = run.stderr().split("\n").filter((l) => l.startsWith("jobwire:"));
    assert.equal(notes.length, 2, run.stderr());
    assert.match(notes[1]!, /publishing failed|could not record the end/);
  } finally {
    await run.kill();
    if (!closed) await server.close();
    await scripts.remove();
  }
});

Deno.test("run stops the command with SIGTERM when its job is cancelled elsewhere", async () => {
  await withServer({}, async (server) => {
    const source =
      `Deno.addSignalListener("SIGTERM", () => { console.log("child got SIGTERM"); Deno.exit(5); });
console.log("ready");
setInterval(() => console.log("tick"), 50);
setTimeout(() => Deno.exit(7), 30000);`;
    await withScriptRun(server.url, "halted", source, [], async (run) => {
      const cancel = await http(server.url, "POST", "/jobs/halted/cancel", {
        reason: "not needed",
      });
      assert.equal(cancel.status, 201, JSON.stringify(cancel.json));
      const status = await run.finished();
      assert.equal(status.code, 5, run.stderr());
      assert.match(run.stdout(), /^child got SIGTERM$/m);
      const notes = run.stderr().split("\n").filter((l) => l.startsWith("jobwire:"));
      assert.deepEqual(notes.slice(1), [
        "jobwire: job halted was cancelled (not needed): stopping the command " +
        "(SIGTERM, then SIGKILL after 10s)",
        "jobwire: the command exited with code 5",
      ]);
      const events = await storedEvents(server.url, "halted");
      assert.deepEqual(events.at(-1)!.data, { status: "cancelled", message: "not needed" });
      const job = await http(server.url, "GET", "/jobs/halted");
      assert.equal(job.json.status, "cancelled");
    });
  });
});

Deno.test("run kills a cancelled command that ignores SIGTERM after --kill-after", async () => {
  await withServer({}, async (server) => {
    const source = `Deno.addSignalListener("SIGTERM", () => console.log("ignoring SIGTERM"));
console.log("ready");
setTimeout(() => Deno.exit(7), 30000);`;
    await withScriptRun(server.url, "stubborn", source, ["--kill-after", "0.5"], async (run) => {
      await http(server.url, "POST", "/jobs/stubborn/cancel", {});
      const status = await run.finished();
      assert.equal(status.code, 137, run.stderr());
      assert.match(run.stdout(), /^ignoring SIGTERM$/m);
      assert.match(run.stderr(), /still runs 0\.5s after SIGTERM: killing it/);
      assert.match(run.stderr(), /^jobwire: the command was killed by SIGKILL$/m);
      const job = await http(server.url, "GET", "/jobs/stubborn");
      assert.equal(job.json.status, "cancelled");
    });
  });
});

Deno.test("run leaves a job the command ended itself as it is, and lets the command finish", async () => {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    // Completes its own job with a result, then goes on printing for a while.
    const child = await scripts.write(
      "self_reporting.js",
      `const url = Deno.env.get("JOBWIRE_SERVER") + "/jobs/" + Deno.env.get("JOBWIRE_JOB_ID");
for (;;) {
  const job = await (await fetch(url)).json();
  if (job.status === "running") break;
  await new Promise((r) => setTimeout(r, 20));
}
const reply = await fetch(url + "/complete", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ result: { rows: 12 } }),
});
await reply.body?.cancel();
for (let i = 0; i < 10; i++) {
  console.log("after " + i);
  await new Promise((r) => setTimeout(r, 50));
}
Deno.exit(0);`,
    );
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "own-end",
      "--",
      ...denoScript(child),
    ]).finally(() => scripts.remove());
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /after 9\n$/);
    const notes = out.stderr.split("\n").filter((l) => l.startsWith("jobwire:"));
    assert.deepEqual(notes.slice(1), [
      "jobwire: job own-end was marked completed elsewhere; the command runs on, " +
      "its output is no longer published",
    ]);
    const job = await http(server.url, "GET", "/jobs/own-end");
    assert.equal(job.json.status, "completed");
    assert.deepEqual(job.json.result, { rows: 12 });
  });
});

/**
 * Runs `script` with sh under `run --id ID` (with `flags`); the script prints
 * `background PID` for a process it started. `body` gets the running `run` and whether
 * that process still runs (from /proc: Linux only).
 */
async function withBackgroundRun(
  serverUrl: string,
  id: string,
  flags: string[],
  script: string,
  body: (run: ReturnType<typeof spawnMain>, alive: () => boolean) => Promise<void>,
): Promise<void> {
  const run = spawnMain([
    "run",
    "--server",
    serverUrl,
    "--id",
    id,
    ...flags,
    "--",
    "sh",
    "-c",
    script,
  ]);
  try {
    await run.waitForOutput(/^background \d+$/m);
    const pid = Number(/^background (\d+)$/m.exec(run.stdout())![1]);
    const alive = () => {
      try {
        return !/^\S+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
      } catch {
        return false;
      }
    };
    assert.ok(alive(), "the background process runs");
    await waitForStatus(serverUrl, id, "running");
    await body(run, alive);
  } finally {
    await run.kill();
  }
}

Deno.test({
  name: "a cancel elsewhere also stops what the command started in the background",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withServer({}, async (server) => {
      const script = 'sleep 300 & echo "background $!"; wait';
      await withBackgroundRun(server.url, "tree", [], script, async (run, alive) => {
        await http(server.url, "POST", "/jobs/tree/cancel", {});
        const status = await run.finished();
        assert.equal(status.code, 143, run.stderr());
        await waitFor(() => !alive(), 5000, "the background sleep to stop");
      });
    });
  },
});

Deno.test({
  name: "a cancel kills what the command started that ignores SIGTERM, once --kill-after passes",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withServer({}, async (server) => {
      const script = '(trap "" TERM; exec sleep 300) & echo "background $!"; wait';
      await withBackgroundRun(
        server.url,
        "orphans",
        ["--kill-after", "1"],
        script,
        async (run, alive) => {
          await http(server.url, "POST", "/jobs/orphans/cancel", {});
          const status = await run.finished();
          // The shell died of SIGTERM; the sleep it left, which ignores SIGTERM, was killed.
          assert.equal(status.code, 143, run.stderr());
          assert.match(run.stderr(), /1 process the command started still runs 1s after SIGTERM/);
          await waitFor(() => !alive(), 5000, "the background sleep to be killed");
        },
      );
    });
  },
});

Deno.test("run refuses a --kill-after longer than a timer can wait", async () => {
  const out = await runCli(["run", "--kill-after", "30d", "--", "true"]);
  assert.equal(out.code, 2, out.stderr);
  assert.match(out.stderr, /--kill-after: expected at most 24d/);
});

Deno.test("a command that cancels its own job as it exits leaves no warning", async () => {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    try {
      const child = await scripts.write(
        "self_cancel.js",
        `const url = Deno.env.get("JOBWIRE_SERVER") + "/jobs/" + Deno.env.get("JOBWIRE_JOB_ID");
for (;;) {
  const job = await (await fetch(url)).json();
  if (job.status === "running") break;
  await new Promise((r) => setTimeout(r, 20));
}
const reply = await fetch(url + "/cancel", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
await reply.body?.cancel();
Deno.exit(0);`,
      );
      for (let i = 0; i < 3; i++) {
        const id = `self-cancel-${i}`;
        const out = await runCli([
          "run",
          "--server",
          server.url,
          "--id",
          id,
          "--",
          ...denoScript(child),
        ]);
        assert.ok(out.code === 0 || out.code === 143, `${out.code}: ${out.stderr}`);
        assert.doesNotMatch(out.stderr, /could not|refused/, out.stderr);
        const job = await http(server.url, "GET", `/jobs/${id}`);
        assert.equal(job.json.status, "cancelled");
      }
    } finally {
      await scripts.remove();
    }
  });
});

Deno.test("run starts the command once its job exists, so the command may publish to it at once", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-run-" });
  const server = await startTestServer({}, { dataDir });
  const scripts = await scriptDir();
  // Another process holds the write lock a while: the job's creation waits for it.
  const other = new DatabaseSync(join(dataDir, "jobwire.db"));
  try {
    const child = await scripts.write(
      "first_thing.js",
      `const url = Deno.env.get("JOBWIRE_SERVER") + "/jobs/" + Deno.env.get("JOBWIRE_JOB_ID");
const reply = await fetch(url);
const body = await reply.json();
console.log(reply.status === 200 ? body.status : body.error.code);`,
    );
    other.exec("BEGIN EXCLUSIVE");
    const running = runCli(["run", "--server", server.url, "--", ...denoScript(child)]);
    await new Promise((resolve) => setTimeout(resolve, 700));
    other.exec("COMMIT");
    const out = await running;
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, "running\n");
  } finally {
    if (other.isTransaction) other.exec("COMMIT");
    other.close();
    await scripts.remove();
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("run interrupted while its job is being made does not start the command, and cancels the job", async () => {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    const marker = `${scripts.dir}/ran`;
    // Between run and the server: the job's creation is held longer than run waits for a
    // drain that makes no progress, and told when it comes.
    const created = Promise.withResolvers<void>();
    const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
      const url = new URL(request.url);
      if (request.method === "POST" && url.pathname === "/jobs") {
        created.resolve();
        await new Promise((resolve) => setTimeout(resolve, 3500));
      }
      return await fetch(`${server.url}${url.pathname}${url.search}`, {
        method: request.method,
        headers: request.headers,
        body: request.body === null ? null : await request.arrayBuffer(),
      });
    });
    const run = spawnMain([
      "run",
      "--server",
      `http://127.0.0.1:${proxy.addr.port}`,
      "--id",
      "held",
      "--",
      "touch",
      marker,
    ]);
    try {
      await created.promise;
      run.process.kill("SIGINT");
      const status = await run.finished();
      assert.equal(status.code, 130, run.stderr());
      assert.match(run.stderr(), /SIGINT before the command started: it was not run/);
      assert.doesNotMatch(run.stderr(), /runs without publishing/);
      await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
      const job = await http(server.url, "GET", "/jobs/held");
      assert.equal(job.json.status, "cancelled", job.text);
    } finally {
      await run.kill();
      await proxy.shutdown();
      await scripts.remove();
    }
  });
});
