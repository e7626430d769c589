import assert from "node:assert/strict";
import { http } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { denoScript, runCli, scriptDir, storedEvents } from "../_helpers/cli.ts";

const LINES = 100_000;

Deno.test("run passes a 100,000-line burst through unchanged and accounts for every line", async () => {
  // No publish-rate limit and room for every event: whatever is not stored was dropped by
  // run's own bounded queue, and run must say how many.
  await withServer(
    { "max-publish-rate": 0, "max-events-per-job": 200_000 },
    async (server) => {
      const scripts = await scriptDir();
      try {
        const child = await scripts.write(
          "burst.js",
          `const lines = [];
for (let i = 1; i <= ${LINES}; i++) lines.push("line " + i);
const bytes = new TextEncoder().encode(lines.join("\\n") + "\\n");
for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at, at + 65536));`,
        );
        const out = await runCli([
          "run",
          "--server",
          server.url,
          "--id",
          "burst",
          "--",
          ...denoScript(child),
        ]);
        assert.equal(out.code, 0, out.stderr);
        const expected = Array.from({ length: LINES }, (_, i) => `line ${i + 1}`).join("\n") + "\n";
        assert.equal(out.stdout.length, expected.length);
        assert.ok(out.stdout === expected, "every line reaches stdout unchanged and in order");

        const events = await storedEvents(server.url, "burst");
        const published = events.filter((e) => e.type === "log" && e.data.source === "stdout")
          .map((e) => Number(String(e.data.line).slice(5)));
        for (let i = 1; i < published.length; i++) {
          assert.ok(published[i]! > published[i - 1]!, `line order at ${i}`);
        }
        const notes = events.filter((e) => e.data.source === "jobwire").map((e) =>
          String(e.data.line)
        );
        const final = notes.find((n) => /were not published|was not published/.test(n));
        const dropped = final === undefined ? 0 : Number(/jobwire: (\d+)/.exec(final)![1]);
        assert.equal(published.length + dropped, LINES, `notes: ${notes.join(" | ")}`);
        assert.equal(published.at(-1), LINES, "the newest lines are kept when lines are dropped");
        const job = await http(server.url, "GET", "/jobs/burst");
        assert.equal(job.json.status, "completed");
      } finally {
        await scripts.remove();
      }
    },
  );
});
