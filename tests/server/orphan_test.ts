/**
 * The isolates' process never outlives its launcher, even one killed before the isolates
 * looked at their parent: they are told the launcher's pid, and stop once their parent is
 * another process.
 */
import assert from "node:assert/strict";
import { testConfig } from "../_helpers/server.ts";
import { WORKER_CLUSTER_ENV, WORKER_CONFIG_ENV, WORKER_LAUNCHER_ENV } from "../../src/cluster.ts";

const WORKER = new URL("../../src/worker.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** Starts the isolates as the launcher does, naming `launcher` as theirs. */
function isolates(dataDir: string, launcher: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["serve", "--parallel", "-A", "--config", CONFIG, WORKER],
    env: {
      DENO_SERVE_ADDRESS: "tcp:127.0.0.1:0",
      DENO_JOBS: "1",
      [WORKER_CONFIG_ENV]: JSON.stringify(testConfig(dataDir, { "log-level": "warn" })),
      [WORKER_CLUSTER_ENV]: `orphan-test-${crypto.randomUUID()}`,
      [WORKER_LAUNCHER_ENV]: String(launcher),
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** The exit status within `ms`, or undefined while it still runs. */
async function exitWithin(child: Deno.ChildProcess, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const status = await Promise.race([
    child.status,
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
  ]);
  clearTimeout(timer);
  return status;
}

Deno.test("the isolates stop when their parent is not the launcher that started them", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-orphan-" });
  // Their parent (this test) is not the launcher named: as when the launcher died at once
  // and they were given to another parent.
  const orphan = isolates(dataDir, 1);
  try {
    const status = await exitWithin(orphan, 20_000);
    assert.ok(status !== undefined, "the orphaned isolates still run");
    const stderr = new TextDecoder().decode(await new Response(orphan.stderr).arrayBuffer());
    assert.match(stderr, /the launcher is gone: stopping/);
  } finally {
    try {
      orphan.kill("SIGKILL");
    } catch {
      // Exited.
    }
    await orphan.status;
  }

  // Their launcher alive (this test names itself): they keep serving.
  const kept = isolates(dataDir, Deno.pid);
  try {
    assert.equal(await exitWithin(kept, 4_000), undefined, "isolates with their launcher stopped");
  } finally {
    kept.kill("SIGKILL");
    await kept.status;
    await kept.stderr.cancel().catch(() => {});
    await Deno.remove(dataDir, { recursive: true });
  }
});
