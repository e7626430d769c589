/**
 * A disk that fills up under a publishing server, on a real (tmpfs) file system: writes
 * are refused with 503 and nothing acknowledged is lost, and once space is freed it goes
 * first to moving the write-ahead log into the database file, so that producers retrying
 * meanwhile cannot grow the log into it and leave the database stuck full.
 *
 * Needs to mount a tmpfs (root with CAP_SYS_ADMIN); skipped with a message otherwise.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createJob, http } from "../_helpers/clients.ts";
import { startTestServer } from "../_helpers/server.ts";

/** Mounts a tmpfs of `size` at `dir`; false when this machine does not let us. */
function mountTmpfs(dir: string, size: string): boolean {
  try {
    return new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

function unmount(dir: string): void {
  new Deno.Command("umount", { args: [dir], stdout: "null", stderr: "null" }).outputSync();
}

/** Whether tmpfs mounts work here (checked once, at load). */
const CAN_MOUNT = (() => {
  const probe = Deno.makeTempDirSync({ prefix: "jobwire-mount-probe-" });
  const ok = mountTmpfs(probe, "64k");
  if (ok) unmount(probe);
  Deno.removeSync(probe);
  if (!ok) console.log("full disk tests skipped: this machine cannot mount a tmpfs");
  return ok;
})();

const fileSize = (path: string) => {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
};

Deno.test({
  name:
    "space freed on a full disk goes to checkpointing the write-ahead log first, and no acknowledged event is lost",
  ignore: !CAN_MOUNT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "jobwire-full-" });
    assert.ok(mountTmpfs(dir, "2m"));
    const filler = join(dir, "filler");
    const dataDir = join(dir, "data");
    await Deno.mkdir(dataDir);
    const server = await startTestServer({}, { dataDir });
    const wal = join(dataDir, "jobwire.db-wal");
    try {
      await Deno.writeFile(filler, new Uint8Array(640 * 1024));
      const id = await createJob(server.url, { id: "fills" });
      const batch = {
        events: Array.from({ length: 40 }, (_, i) => ({
          type: "log",
          data: { line: `${i} ${"x".repeat(480)}` },
        })),
      };
      let acknowledged = 0;
      const publish = () => http(server.url, "POST", `/jobs/${id}/events`, batch);
      // Until the disk is full.
      let refused: Awaited<ReturnType<typeof publish>> | undefined;
      for (let i = 0; i < 500 && refused === undefined; i++) {
        const reply = await publish();
        if (reply.status === 201) acknowledged += batch.events.length;
        else refused = reply;
      }
      assert.ok(refused !== undefined, "the disk never filled");
      assert.equal(refused.status, 503, refused.text);
      assert.match(refused.json.error.message, /full/);
      const walWhenFull = fileSize(wal);
      assert.ok(walWhenFull > 0);
      assert.equal((await http(server.url, "GET", "/healthz")).status, 503);

      // Space comes back while producers keep retrying: the first write that goes through
      // has moved the log into the database file and cut it back.
      await Deno.remove(filler);
      let through = false;
      for (let i = 0; i < 50 && !through; i++) {
        const reply = await publish();
        if (reply.status === 201) {
          acknowledged += batch.events.length;
          through = true;
        } else {
          assert.equal(reply.status, 503, reply.text);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      assert.ok(through, "no write went through after space was freed");
      const walAfter = fileSize(wal);
      assert.ok(
        walAfter < walWhenFull / 4,
        `the log was not cut back: ${walAfter} bytes after, ${walWhenFull} when full`,
      );
      // Every acknowledged event is there, once and in order.
      const job = (await http(server.url, "GET", `/jobs/${id}`)).json;
      assert.equal(job.last_sequence, acknowledged);
      let since = 0;
      for (;;) {
        const page = (await http(server.url, "GET", `/jobs/${id}/events?since=${since}&limit=1000`))
          .json;
        for (const event of page.events) assert.equal(event.sequence, ++since);
        if (!page.has_more) break;
      }
      assert.equal(since, acknowledged);
    } finally {
      await server.close();
      unmount(dir);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
