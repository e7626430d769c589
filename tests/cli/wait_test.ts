import assert from "node:assert/strict";
import { createJob, http, publish, waitFor } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, tokenFor } from "../_helpers/tokens.ts";
import { runCli, spawnMain } from "../_helpers/cli.ts";

const running = { type: "status", data: { status: "running" } };

/** Starts `wait` on a running job, ends the job with `end` (path and body), returns the wait. */
async function waitThrough(
  id: string,
  end: [string, unknown],
  extra: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let result = { code: -1, stdout: "", stderr: "" };
  await withServer({}, async (server) => {
    await createJob(server.url, { id });
    await publish(server.url, id, running);
    const wait = spawnMain(["wait", id, "--server", server.url, ...extra]);
    try {
      // wait's long-poll subscribes to the job: it counts as a watcher while it is held.
      await waitFor(
        async () => {
          const job = await http(server.url, "GET", `/jobs/${id}`);
          return job.headers.get("x-watchers") === "1";
        },
        15_000,
        "wait to hold its request",
      );
      const reply = await http(server.url, "POST", `/jobs/${id}/${end[0]}`, end[1]);
      assert.equal(reply.status, 201, reply.text);
      const status = await wait.finished();
      result = { code: status.code, stdout: wait.stdout(), stderr: wait.stderr() };
    } finally {
      await wait.kill();
    }
  });
  return result;
}

Deno.test("wait exits 0 once the job completes and prints one line", async () => {
  const out = await waitThrough("wt-ok", ["complete", { result: { n: 1 } }]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^job wt-ok completed in \d+s\n$/);
});

Deno.test("wait exits 1 when the job fails", async () => {
  const out = await waitThrough("wt-fail", ["fail", { error: "boom" }]);
  assert.equal(out.code, 1);
  assert.match(out.stdout, /^job wt-fail failed in \d+s: boom\n$/);
});

Deno.test("wait exits 130 when the job is cancelled; --json prints the final snapshot", async () => {
  const out = await waitThrough("wt-cancel", ["cancel", {}], ["--json"]);
  assert.equal(out.code, 130);
  const job = JSON.parse(out.stdout);
  assert.equal(job.id, "wt-cancel");
  assert.equal(job.status, "cancelled");
});

Deno.test("wait exits 124 when --timeout passes first, saying where the job stands", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "wt-slow" });
    await publish(server.url, id, running, { type: "progress", data: { progress: 45 } });
    const out = await runCli(["wait", id, "--server", server.url, "--timeout", "1.5"]);
    assert.equal(out.code, 124);
    assert.equal(out.stdout, "");
    assert.match(out.stderr, /timed out after 1\.5s; the job is running \(45%\)/);
    const zero = await runCli(["wait", id, "--server", server.url, "--timeout", "0"]);
    assert.equal(zero.code, 124);
  });
});

Deno.test("wait keeps --timeout against a server that accepts connections and never answers", async () => {
  // A listener that takes connections and holds them, as a hung server does.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const server = `http://127.0.0.1:${listener.addr.port}`;
    const started = Date.now();
    const out = await runCli(["wait", "hung", "--server", server, "--timeout", "2"]);
    const took = Date.now() - started;
    assert.equal(out.code, 124, out.stderr);
    assert.match(out.stderr, /timed out after 2s/);
    // The deadline and one last look of at most a second, plus the CLI's start-up; the
    // request timeout alone is 30 s.
    assert.ok(took < 15_000, `exited after ${took} ms`);
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});

Deno.test("wait on a job that already ended answers at once", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "wt-over" });
    await http(server.url, "POST", `/jobs/${id}/cancel`, {});
    const out = await runCli(["wait", id, "--server", server.url, "--timeout", "0"]);
    assert.equal(out.code, 130);
  });
});

Deno.test("wait with a timeout longer than a timer can wait (25 days) still waits and answers", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url, { id: "wt-long" });
    await http(server.url, "POST", `/jobs/${id}/cancel`, {});
    for (const timeout of ["25d", "2200000"]) {
      const out = await runCli(["wait", id, "--server", server.url, "--timeout", timeout]);
      assert.equal(out.code, 130, out.stderr);
      assert.doesNotMatch(out.stderr, /Cannot reach/);
    }
  });
});

Deno.test("wait exits 3 for an unknown job and for a refused token, with a hint", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("bob", "read write");
    const unknown = await runCli(["wait", "nope", "--server", server.url, "--token", token]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /cannot wait for job nope/);
    const refused = await runCli(["wait", "nope", "--server", server.url]);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /pass --token or set JOBWIRE_TOKEN/);
  });
});

Deno.test("wait refuses a bad --timeout with exit 2", async () => {
  const out = await runCli(["wait", "x", "--timeout", "soon"]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /--timeout/);
});
