import assert from "node:assert/strict";
import { http } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, tokenFor } from "../_helpers/tokens.ts";
import { closedPort, runCli, storedEvents } from "../_helpers/cli.ts";

function jobIdOf(stdout: string): string {
  const match = /^Demo job (\S+)\. Follow it:$/m.exec(stdout);
  assert.ok(match, stdout);
  return match[1]!;
}

Deno.test("demo runs a multi-stage job with logs at every level, a custom event and a result", async () => {
  await withServer({}, async (server) => {
    const out = await runCli(["demo", "--server", server.url, "--duration", "1", "--no-watch"]);
    assert.equal(out.code, 0, out.stderr);
    const id = jobIdOf(out.stdout);
    const events = await storedEvents(server.url, id);
    const statuses = events.filter((e) => e.type === "status").map((e) => e.data.status);
    assert.deepEqual(statuses, ["queued", "running", "completed"]);
    const levels = new Set(events.filter((e) => e.type === "log").map((e) => e.data.level));
    assert.deepEqual([...levels].sort(), ["debug", "error", "info", "warning"]);
    const stages = new Set(events.filter((e) => e.type === "progress").map((e) => e.data.stage));
    assert.deepEqual([...stages], ["download", "process", "upload"]);
    const progress = events.filter((e) => e.type === "progress").map((e) => e.data.progress);
    assert.equal(progress.at(-1), 100);
    assert.ok(events.some((e) => e.type === "items_processed"));
    const job = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(job.json.kind, "demo");
    assert.deepEqual(job.json.result, {
      items: 1000,
      skipped: 1,
      artifact: "s3://demo-bucket/output.tar.gz",
    });
  });
});

Deno.test("demo prints how to follow the job with the real server and token", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("demo-user", "read write");
    const out = await runCli([
      "demo",
      "--server",
      server.url,
      "--token",
      token,
      "--duration",
      "0.5",
      "--no-watch",
    ]);
    assert.equal(out.code, 0, out.stderr);
    const id = jobIdOf(out.stdout);
    const events = `${server.url}/jobs/${id}/events`;
    assert.ok(out.stdout.includes(`${server.url}/#/jobs/${id}`));
    assert.ok(out.stdout.includes(`deno task watch ${id} --server ${server.url} --token ${token}`));
    assert.ok(
      out.stdout.includes(
        `curl -N -H 'Accept: text/event-stream' -H 'Authorization: Bearer ${token}' ${events}`,
      ),
    );
    assert.ok(
      out.stdout.includes(`curl -N -H 'Authorization: Bearer ${token}' '${events}?format=ndjson'`),
    );
    // The printed SSE command works as printed.
    const reply = await fetch(events, {
      headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
    });
    assert.equal(reply.status, 200);
    await reply.body?.cancel();
  });
});

Deno.test("demo follows its own job here and exits 1 with --fail", async () => {
  await withServer({}, async (server) => {
    const out = await runCli(["demo", "--server", server.url, "--duration", "1", "--fail"]);
    assert.equal(out.code, 1, out.stderr);
    const id = jobIdOf(out.stdout);
    assert.match(out.stdout, /^\d\d:\d\d:\d\d status +running/m);
    assert.match(out.stdout, /^\d\d:\d\d:\d\d error +\[demo_failure\] Out of memory/m);
    assert.match(
      out.stdout.trimEnd().split("\n").at(-1)!,
      /^job \S+ failed in \d+s: Out of memory while processing batch 15$/,
    );
    const job = await http(server.url, "GET", `/jobs/${id}`);
    assert.equal(job.json.status, "failed");
  });
});

Deno.test("demo exits 3 when the server cannot be reached", async () => {
  const out = await runCli(["demo", "--server", `http://127.0.0.1:${closedPort()}`]);
  assert.equal(out.code, 3);
  assert.match(out.stderr, /cannot create the demo job/);
});
