/**
 * `run` when things go wrong around the command: a process it leaves behind keeps
 * printing, the server restarts mid-run or takes smaller requests than `run` sends, the
 * command ignores signals, or it writes one enormous line.
 */
import assert from "node:assert/strict";
import {
  startTestServer,
  type TestServer,
  withChildServer,
  withServer,
} from "../_helpers/server.ts";
import { waitFor } from "../_helpers/clients.ts";
import { AUTH, bearer, tokenFor } from "../_helpers/tokens.ts";
import { FINISH_STALL_MS } from "../../src/cli/publisher.ts";
import {
  denoScript,
  runCli,
  scriptDir,
  spawnMain,
  storedEvents,
  waitForStatus,
} from "../_helpers/cli.ts";

const logLines = (events: { type: string; data: Record<string, unknown> }[]) =>
  events.filter((e) => e.type === "log" && e.data.source !== "jobwire").map((e) =>
    String(e.data.line)
  );

/** `run` of a shell script to the end, reporting to job `id`. */
const runShell = (base: string, id: string, script: string) =>
  runCli(["run", "--server", base, "--id", id, "--", "sh", "-c", script]);

Deno.test("run ends with the command, not with a process it left printing", async () => {
  await withServer({}, async (server) => {
    // The shell exits at once; the loop it started prints for 8 s more.
    const out = await runShell(
      server.url,
      "forked",
      "(i=0; while [ $i -lt 80 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done) & echo parent exits",
    );
    assert.equal(out.code, 0, out.stderr);
    const events = await storedEvents(server.url, "forked");
    assert.equal(events.at(-1)?.data.status, "completed");
    const ticks = logLines(events).filter((l) => l.startsWith("tick"));
    assert.ok(ticks.length < 80, `run read all ${ticks.length} ticks of the leftover loop`);
  });
});

Deno.test("run keeps what a process the command left behind prints within 3 s of its exit", async () => {
  await withServer({}, async (server) => {
    // Quiet for 1.5 s after the shell exits, then one line, then it closes the pipes.
    const out = await runShell(server.url, "late", "(sleep 1.5; echo late) & echo hi");
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^hi\nlate\n/m);
    const events = await storedEvents(server.url, "late");
    assert.deepEqual(logLines(events), ["hi", "late"]);
    assert.equal(events.at(-1)?.data.status, "completed");
  });
});

Deno.test("a signal after the command exited stops run reading what it left behind", async () => {
  await withServer({}, async (server) => {
    // The shell exits at once; what it left prints 2 s later.
    const run = spawnMain([
      "run",
      "--server",
      server.url,
      "--id",
      "hurried",
      "--",
      "sh",
      "-c",
      "(sleep 2; echo late) & echo hi",
    ]);
    try {
      await run.waitForOutput(/^hi$/m);
      await new Promise((r) => setTimeout(r, 500));
      run.process.kill("SIGINT");
      const status = await run.finished();
      assert.equal(run.stdout(), "hi\n", run.stderr());
      // The command had ended by itself: so does its job, told to the server all the same.
      assert.equal(status.code, 0, run.stderr());
      const events = await storedEvents(server.url, "hurried");
      assert.equal(events.at(-1)?.data.status, "completed");
      assert.deepEqual(logLines(events), ["hi"]);
    } finally {
      await run.kill();
    }
  });
});

Deno.test("run loses no line while the server restarts mid-run", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-run-" });
  let server: TestServer = await startTestServer({}, { dataDir });
  const port = server.port;
  const scripts = await scriptDir();
  try {
    const child = await scripts.write(
      "counter.js",
      `for (let i = 0; i < 50; i++) { console.log("line " + i); await new Promise((r) => setTimeout(r, 100)); }`,
    );
    const run = spawnMain([
      "run",
      "--server",
      server.url,
      "--id",
      "restarted",
      "--",
      ...denoScript(child),
    ]);
    try {
      await run.waitForOutput(/^line 5$/m);
      await server.close();
      await new Promise((r) => setTimeout(r, 2500));
      server = await startTestServer({ port }, { dataDir });
      const status = await run.finished();
      assert.equal(status.code, 0, run.stderr());
      await waitForStatus(server.url, "restarted", "completed");
      const lines = logLines(await storedEvents(server.url, "restarted"));
      assert.deepEqual(lines, Array.from({ length: 50 }, (_, i) => `line ${i}`), run.stderr());
    } finally {
      await run.kill();
    }
  } finally {
    await server.close();
    await scripts.remove();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("run sends smaller requests to a server that takes fewer events than its batches", async () => {
  await withServer({ "max-batch": 100 }, async (server) => {
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--id",
      "small-batches",
      "--",
      "sh",
      "-c",
      "i=0; while [ $i -lt 3000 ]; do echo n$i; i=$((i+1)); done",
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.doesNotMatch(out.stderr, /refused|not published/);
    const lines = logLines(await storedEvents(server.url, "small-batches"));
    assert.deepEqual(lines, Array.from({ length: 3000 }, (_, i) => `n${i}`));
  });
});

Deno.test("run kills a command that ignores signals at the second one", async () => {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    const child = await scripts.write(
      "stubborn.js",
      `for (const s of ["SIGINT", "SIGTERM"]) Deno.addSignalListener(s, () => console.log("ignoring " + s));
console.log("ready");
setTimeout(() => {}, 30000);`,
    );
    const run = spawnMain([
      "run",
      "--server",
      server.url,
      "--id",
      "stubborn",
      "--",
      ...denoScript(child),
    ]);
    try {
      await run.waitForOutput(/^ready$/m);
      await waitForStatus(server.url, "stubborn", "running");
      run.process.kill("SIGTERM");
      await run.waitForOutput(/^ignoring SIGTERM$/m);
      run.process.kill("SIGTERM");
      const status = await run.finished();
      assert.equal(status.code, 137, run.stderr());
      assert.match(run.stderr(), /SIGTERM again: killing the command/);
      await waitForStatus(server.url, "stubborn", "cancelled");
    } finally {
      await run.kill();
      await scripts.remove();
    }
  });
});

Deno.test("run logs one enormous line once, cut, with the count of what was left out", async () => {
  await withServer({}, async (server) => {
    const scripts = await scriptDir();
    const child = await scripts.write(
      "huge.js",
      `const chunk = new TextEncoder().encode("A".repeat(1_000_000));
for (let i = 0; i < 10; i++) { let o = 0; while (o < chunk.length) o += Deno.stdout.writeSync(chunk.subarray(o)); }`,
    );
    try {
      const out = await runCli([
        "run",
        "--server",
        server.url,
        "--id",
        "huge",
        "--",
        ...denoScript(child),
      ]);
      assert.equal(out.code, 0, out.stderr);
      const lines = logLines(await storedEvents(server.url, "huge"));
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, /^A{8192}… \[9991808 more characters\]$/);
    } finally {
      await scripts.remove();
    }
  });
});

Deno.test("run publishes the line it could not pass on when its own output was closed", async () => {
  await withServer({}, async (server) => {
    const main = new URL("../../main.ts", import.meta.url).pathname;
    const run = `${Deno.execPath()} run -A ${main} run --server ${server.url} --id piped -- ` +
      `sh -c 'echo first; sleep 0.5; echo second; sleep 0.5; echo third'`;
    const out = await new Deno.Command("sh", {
      args: ["-c", `${run} | head -1`],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout), "first\n");
    await waitForStatus(server.url, "piped", "failed");
    const lines = logLines(await storedEvents(server.url, "piped"));
    assert.deepEqual(lines, ["first", "second"]);
  });
});

Deno.test("run drops only a line too large for the server, and publishes the rest of its batch", async () => {
  await withServer({ "max-body-bytes": 2048 }, async (server) => {
    const out = await runShell(
      server.url,
      "one-too-big",
      'seq -f "line %g" 0 4; head -c 3000 /dev/zero | tr "\\0" L; echo; seq -f "line %g" 5 9',
    );
    assert.equal(out.code, 0, out.stderr);
    const events = await storedEvents(server.url, "one-too-big");
    assert.deepEqual(logLines(events), Array.from({ length: 10 }, (_, i) => `line ${i}`));
    assert.match(out.stderr, /refused 1 output line as too large/);
    const note = events.find((e) => e.data.source === "jobwire");
    assert.match(String(note?.data.line), /1 output line was not published/);
    assert.equal(events.at(-1)?.data.status, "completed");
  });
});

Deno.test("run waits out a rate limit at the end: every line is published and the job ends", async () => {
  // 100 events a second with a burst of 200: a first request of 500 lines overdraws the
  // principal's allowance, and the rest waits 4 s, longer than the end's stall limit.
  await withServer(
    { ...AUTH, "limits-exempt-ips": "none", "max-publish-rate": 100 },
    async (server) => {
      const token = await tokenFor("limited", "read write");
      const out = await runCli(
        [
          "run",
          "--server",
          server.url,
          "--id",
          "limited",
          "--",
          "seq",
          "-f",
          "line %g",
          "0",
          "599",
        ],
        { JOBWIRE_TOKEN: token },
      );
      assert.equal(out.code, 0, out.stderr);
      assert.doesNotMatch(out.stderr, /could not record the end|not published/);
      const events = await storedEvents(server.url, "limited", bearer(token));
      assert.equal(logLines(events).length, 600);
      assert.equal(events.at(-1)?.data.status, "completed");
      // The limit did hold the last lines back for longer than the end's stall limit.
      const logs = events.filter((e) => e.type === "log");
      const held = Date.parse(logs.at(-1)!.timestamp) - Date.parse(logs[0]!.timestamp);
      assert.ok(held > FINISH_STALL_MS, `the last lines waited only ${held} ms`);
    },
  );
});

for (const interrupt of [false, true]) {
  Deno.test(`run says plainly that a server that stopped answering has not recorded the job's end${interrupt ? ", also when Ctrl-C cuts the wait" : ""}`, async () => {
    await withChildServer(1, [], async (server) => {
      const run = spawnMain([
        "run",
        "--server",
        server.url,
        "--id",
        "hung",
        "--",
        "sh",
        "-c",
        "echo first; sleep 1; echo second",
      ]);
      try {
        await waitFor(
          async () =>
            logLines(await storedEvents(server.url, "hung").catch(() => [])).includes("first"),
          15_000,
          "the first line to be stored",
        );
        // The server stops answering, without closing a connection.
        server.process.kill("SIGSTOP");
        if (interrupt) {
          await run.waitForOutput(/^second$/m);
          await new Promise((resolve) => setTimeout(resolve, FINISH_STALL_MS + 500));
          run.process.kill("SIGINT");
        }
        const status = await run.finished();
        assert.equal(status.code, 0, run.stderr());
        const said = run.stderr();
        assert.match(
          said,
          new RegExp(
            `could not record the end of the job on ${server.url}: ` +
              (interrupt ? "stopped waiting for it \\(interrupted\\)" : "no answer within \\d+ s") +
              "; job hung stays as the server last had it",
          ),
        );
        assert.doesNotMatch(said, /signal has been aborted/i);
      } finally {
        server.process.kill("SIGCONT");
        await run.kill();
      }
    });
  });
}
