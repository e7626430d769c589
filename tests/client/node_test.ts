import assert from "node:assert/strict";
import { createJob, http, logEvent, publish, waitFor } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { range } from "../_helpers/watch.ts";

const NODE = "/usr/bin/node";
const BUNDLE = new URL("../../static/client.js", import.meta.url).href;

/** Watches a job with the bundled client and prints one JSON line per emission. */
const SCRIPT = `
import { watchJob, JobReporter } from ${JSON.stringify(BUNDLE)};
const [base, id] = process.argv.slice(2);
const print = (line) => console.log(JSON.stringify(line));
print({ node: process.version, globalWebSocket: typeof globalThis.WebSocket });
const watcher = watchJob(base, id, { initialDelayMs: 10 });
watcher.on("connected", ({ transport }) => print({ connected: transport }));
watcher.on("event", (e) => print({ sequence: e.sequence }));
watcher.on("closed", ({ reason }) =>
  print({ closed: reason, transport: watcher.transport, status: watcher.job?.status }));
const reporter = new JobReporter(base, id);
await reporter.progress(50, { stage: "node" });
`;

Deno.test("the bundled client runs under Node 20, falling back to SSE", async () => {
  const stat = await Deno.stat(NODE).catch(() => undefined);
  if (stat === undefined) throw new Error(`Node is expected at ${NODE}`);
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, { type: "status", data: { status: "running" } }, logEvent(1));
    const dir = await Deno.makeTempDir({ prefix: "jobwire-node-" });
    const script = `${dir}/watch.mjs`;
    await Deno.writeTextFile(script, SCRIPT);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 30_000);
    const child = new Deno.Command(NODE, {
      args: [script, server.url, id],
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
    }).spawn();
    const lines: Record<string, unknown>[] = [];
    const decoder = new TextDecoder();
    let buffer = "";
    const reading = (async () => {
      for await (const chunk of child.stdout) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf("\n")) !== -1) {
          lines.push(JSON.parse(buffer.slice(0, newline)));
          buffer = buffer.slice(newline + 1);
        }
      }
    })();
    const stderr = new Response(child.stderr).text();
    try {
      // The Node side reported progress (3); live events follow, then the end.
      await waitFor(() => lines.some((l) => l.sequence === 3), 20_000, "sequence 3 from Node");
      await publish(server.url, id, logEvent(2));
      assert.equal((await http(server.url, "POST", `/jobs/${id}/complete`, {})).status, 201);
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, await stderr);
      const [info] = lines;
      assert.match(String(info?.node), /^v20\./);
      assert.equal(info?.globalWebSocket, "undefined");
      assert.deepEqual(lines.filter((l) => "connected" in l), [{ connected: "sse" }]);
      assert.deepEqual(lines.filter((l) => "sequence" in l).map((l) => l.sequence), range(5));
      assert.deepEqual(lines.at(-1), { closed: "finished", transport: "sse", status: "completed" });
    } finally {
      clearTimeout(timer);
      try {
        child.kill();
      } catch {
        // Already exited.
      }
      await child.status;
      await reading.catch(() => {});
      await stderr.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  });
});
