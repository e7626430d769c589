import assert from "node:assert/strict";
import { createJob, http, publish } from "../_helpers/clients.ts";
import { startTestServer, type TestServer, withServer } from "../_helpers/server.ts";
import { AUTH, tokenFor } from "../_helpers/tokens.ts";
import { runCli, spawnMain } from "../_helpers/cli.ts";
import { colourWanted, outputMode } from "../../src/cli/watch.ts";

/** Output lines without their `HH:MM:SS ` prefix. */
function lines(stdout: string): string[] {
  return stdout.split("\n").filter((l) => l !== "").map((l) => l.replace(/^\d\d:\d\d:\d\d /, ""));
}

const status = (s: string, message?: string) => ({
  type: "status",
  data: message === undefined ? { status: s } : { status: s, message },
});
const log = (line: string, level = "info") => ({ type: "log", data: { line, level } });

Deno.test("watch prints plain lines when stdout is not a terminal and exits 0 on completed", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "w-done" });
    await publish(server.url, id, status("running"), log("hello"), {
      type: "progress",
      data: { progress: 45, stage: "compile", eta_seconds: 30 },
    });
    const watch = spawnMain(["watch", id, "--server", server.url]);
    try {
      await watch.waitForOutput(/progress 45% compile ETA 30s/);
      await publish(server.url, id, log("disk almost full", "warning"), {
        type: "progress",
        data: { progress: 90, eta_seconds: 5 },
      });
      await http(server.url, "POST", `/jobs/${id}/complete`, { result: { files: 3 } });
      const exit = await watch.finished();
      assert.equal(exit.code, 0, watch.stderr());
      const out = lines(watch.stdout());
      assert.deepEqual(out.slice(0, -1), [
        "status   running",
        "info     hello",
        "progress 45% compile ETA 30s",
        "warning  disk almost full",
        "progress 90% ETA 5s",
        'result   {"files":3}',
        "status   completed",
      ]);
      assert.match(out.at(-1)!, /^job w-done completed in \d+s$/);
      assert.ok(!watch.stdout().includes("\x1b"), "no escape codes outside a terminal");
    } finally {
      await watch.kill();
    }
  });
});

Deno.test("watch exits 1 when the job fails and shows the error", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "w-fail" });
    await publish(server.url, id, status("running"));
    const watch = spawnMain(["watch", id, "--server", server.url]);
    try {
      await watch.waitForOutput(/status +running/);
      await http(server.url, "POST", `/jobs/${id}/fail`, {
        error: "boom",
        error_type: "exit_code",
      });
      assert.equal((await watch.finished()).code, 1);
      const out = lines(watch.stdout());
      assert.deepEqual(out.slice(1, 3), ["error    [exit_code] boom", "status   failed — boom"]);
      assert.match(out.at(-1)!, /^job w-fail failed in \d+s: boom$/);
    } finally {
      await watch.kill();
    }
  });
});

Deno.test("watch exits 130 when the job is cancelled", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "w-cancel" });
    const watch = spawnMain(["watch", id, "--server", server.url]);
    try {
      await publish(server.url, id, status("queued"));
      await watch.waitForOutput(/status +queued/);
      await http(server.url, "POST", `/jobs/${id}/cancel`, { reason: "not needed" });
      assert.equal((await watch.finished()).code, 130);
      assert.match(watch.stdout(), /status +cancelled — not needed/);
    } finally {
      await watch.kill();
    }
  });
});

Deno.test("watch --json prints every envelope as one JSON line, in sequence", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "w-json" });
    await publish(server.url, id, status("running"), log("one"), log("two"));
    const watch = spawnMain(["watch", id, "--server", server.url, "--json"]);
    try {
      await watch.waitForOutput(/"two"/);
      await publish(server.url, id, { type: "model_deployed", data: { v: 3 } });
      await http(server.url, "POST", `/jobs/${id}/complete`, {});
      assert.equal((await watch.finished()).code, 0);
      const envelopes = watch.stdout().trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(envelopes.map((e) => e.sequence), [1, 2, 3, 4, 5]);
      assert.deepEqual(envelopes.map((e) => e.type), [
        "status",
        "log",
        "log",
        "model_deployed",
        "status",
      ]);
      assert.ok(envelopes.every((e) => e.job_id === id && typeof e.timestamp === "string"));
      assert.deepEqual(envelopes[3].data, { v: 3 });
    } finally {
      await watch.kill();
    }
  });
});

Deno.test("watch --since N starts after sequence N; a finished job exits at once", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "w-since" });
    await publish(server.url, id, status("running"), log("a"), log("b"), log("c"));
    await http(server.url, "POST", `/jobs/${id}/fail`, { error: "late" });
    const out = await runCli(["watch", id, "--server", server.url, "--json", "--since", "2"]);
    assert.equal(out.code, 1);
    const sequences = out.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).sequence);
    assert.deepEqual(sequences, [3, 4, 5, 6]);
    // Past the job's end: nothing was dropped, and the note says so.
    const past = await runCli(["watch", id, "--server", server.url, "--since", "999"]);
    assert.equal(past.code, 1);
    assert.match(past.stderr, /job w-since has no events after 999/);
    assert.doesNotMatch(past.stderr, /no longer kept/);
  });
});

Deno.test("watch exits 3 with a message for an unknown job", async () => {
  await withServer({}, async (server) => {
    const out = await runCli(["watch", "no-such-job", "--server", server.url]);
    assert.equal(out.code, 3);
    assert.equal(out.stdout, "");
    assert.match(out.stderr, /cannot follow job no-such-job/);
  });
});

Deno.test("watch sends --token; without one a secured server's refusal exits 3 with a hint", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("alice", "read write");
    const created = await http(server.url, "POST", "/jobs", { id: "w-auth" }, {
      authorization: `Bearer ${token}`,
    });
    assert.equal(created.status, 201);
    for (const step of ["start", "complete"]) {
      const reply = await http(server.url, "POST", `/jobs/w-auth/${step}`, {}, {
        authorization: `Bearer ${token}`,
      });
      assert.equal(reply.status, 201);
    }
    const ok = await runCli(["watch", "w-auth", "--server", server.url, "--token", token]);
    assert.equal(ok.code, 0, ok.stderr);
    const env = await runCli(["watch", "w-auth"], {
      JOBWIRE_SERVER: server.url,
      JOBWIRE_TOKEN: token,
    });
    assert.equal(env.code, 0, env.stderr);
    const refused = await runCli(["watch", "w-auth", "--server", server.url]);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /pass --token or set JOBWIRE_TOKEN/);
  });
});

Deno.test("watch reconnects across a server restart and resumes without repeating lines", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-watch-" });
  let server: TestServer = await startTestServer({}, { dataDir });
  const port = server.port;
  const watch = spawnMain(["watch", "w-restart", "--server", server.url]);
  try {
    await createJob(server.url, { id: "w-restart" });
    await publish(server.url, "w-restart", status("running"), log("before"));
    await watch.waitForOutput(/info +before/);
    await server.close();
    await watch.waitForOutput(/no connection|retrying/, "stderr");
    server = await startTestServer({ port }, { dataDir });
    await publish(server.url, "w-restart", log("after"));
    await http(server.url, "POST", "/jobs/w-restart/complete", {});
    assert.equal((await watch.finished()).code, 0, watch.stderr());
    assert.deepEqual(lines(watch.stdout()).slice(0, -1), [
      "status   running",
      "info     before",
      "info     after",
      "status   completed",
    ]);
    assert.match(watch.stderr(), /reconnected/);
  } finally {
    await watch.kill();
    await server.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("watch says why the server cannot be reached while it retries", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = `http://127.0.0.1:${closed.addr.port}`;
  closed.close();
  const watch = spawnMain(["watch", "w-nowhere", "--server", server]);
  try {
    const escaped = server.replaceAll(".", "\\.");
    await watch.waitForOutput(
      new RegExp(`no connection: Cannot reach ${escaped}: .*refused.*; retrying`, "i"),
      "stderr",
    );
  } finally {
    await watch.kill();
  }
});

Deno.test("watch refuses a missing job id and a bad --since with exit 2", async () => {
  assert.equal((await runCli(["watch"])).code, 2);
  const bad = await runCli(["watch", "x", "--since", "-1"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--since/);
});

Deno.test("a TERM=dumb terminal gets plain lines without colour; json is json whatever the terminal", () => {
  assert.equal(outputMode(false, "dumb"), "plain");
  assert.equal(colourWanted("dumb"), false);
  assert.equal(outputMode(true, "dumb"), "json");
  // Elsewhere, colour follows NO_COLOR (the test runner's own setting).
  assert.equal(colourWanted("xterm-256color"), !Deno.noColor);
});
