import assert from "node:assert/strict";
import { http } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, bearer, tokenFor } from "../_helpers/tokens.ts";
import { runCli } from "../_helpers/cli.ts";

Deno.test("run sends --token as a bearer token; the job belongs to its subject", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("ci-bot", "read write");
    const out = await runCli([
      "run",
      "--server",
      server.url,
      "--token",
      token,
      "--id",
      "authed",
      "--",
      "echo",
      "ok",
    ]);
    assert.equal(out.code, 0, out.stderr);
    const job = await http(server.url, "GET", "/jobs/authed", undefined, bearer(token));
    assert.equal(job.json.status, "completed");
    assert.equal(job.json.owner, "ci-bot");
  });
});

Deno.test("run takes the server and token from JOBWIRE_SERVER and JOBWIRE_TOKEN", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("env-bot", "read write");
    const out = await runCli(["run", "--id", "from-env", "--", "echo", "ok"], {
      JOBWIRE_SERVER: server.url,
      JOBWIRE_TOKEN: token,
    });
    assert.equal(out.code, 0, out.stderr);
    const job = await http(server.url, "GET", "/jobs/from-env", undefined, bearer(token));
    assert.equal(job.json.status, "completed");
    assert.equal(job.json.owner, "env-bot");
  });
});

Deno.test("run without a token on a secured server still runs the command and says why once", async () => {
  await withServer(AUTH, async (server) => {
    const out = await runCli(["run", "--server", server.url, "--", "sh", "-c", "echo hi; exit 4"]);
    assert.equal(out.code, 4);
    assert.equal(out.stdout, "hi\n");
    const notes = out.stderr.split("\n").filter((l) => l.startsWith("jobwire:"));
    // One warning, and no link to a job that was never made.
    assert.equal(notes.length, 1, out.stderr);
    assert.match(notes[0]!, /pass --token or set JOBWIRE_TOKEN/);
  });
});
