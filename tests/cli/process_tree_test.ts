import assert from "node:assert/strict";
import { descendantsOf, signalAll, stillRunning } from "../../src/cli/process_tree.ts";

Deno.test({
  name: "processes are told by id and start time: an id given to another process is not theirs",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const child = new Deno.Command("sh", { args: ["-c", "sleep 30 & sleep 30 & wait"] }).spawn();
    try {
      let found = await descendantsOf(child.pid);
      for (let i = 0; i < 50 && found.length < 2; i++) {
        await new Promise((r) => setTimeout(r, 20));
        found = await descendantsOf(child.pid);
      }
      assert.equal(found.length, 2, JSON.stringify(found));
      assert.deepEqual(await stillRunning(found), found);
      // The same ids with another start time: processes that are gone, whose ids were reused.
      const reused = found.map((p) => ({ ...p, started: "Mon Jan  1 00:00:00 2001" }));
      assert.deepEqual(await stillRunning(reused), []);
      signalAll(found, "SIGKILL");
      child.kill("SIGKILL");
      await child.status;
      let left = found;
      for (let i = 0; i < 50 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        left = await stillRunning(left);
      }
      assert.deepEqual(left, []);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
      await child.status;
    }
  },
});
