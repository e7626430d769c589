/**
 * The WAL is moved into the database file while the server runs (isolates never
 * checkpoint inside a commit): by a thread of the isolate on one isolate, by the
 * launcher's thread on several. A server that checkpointed nowhere would leave the
 * database file at its first size while the WAL grew without end.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { http, waitFor } from "../_helpers/clients.ts";
import { withChildServer } from "../_helpers/server.ts";

/** Bytes of event data published: well above what the empty database file holds. */
const PUBLISHED = 1_000_000;
const LINE = "x".repeat(1000);

for (const workers of [1, 2]) {
  Deno.test(`on ${workers} isolate(s), committed events reach the database file and the WAL goes at exit`, async () => {
    await withChildServer(workers, ["--max-publish-rate", "0"], async (server, dataDir) => {
      const database = join(dataDir, "jobwire.db");
      assert.equal((await http(server.url, "POST", "/jobs", { id: "big" })).status, 201);
      const before = (await Deno.stat(database)).size;
      const batch = {
        events: Array.from({ length: 50 }, () => ({ type: "log", data: { line: LINE } })),
      };
      for (let sent = 0; sent < PUBLISHED; sent += 50 * LINE.length) {
        const reply = await http(server.url, "POST", "/jobs/big/events", batch);
        assert.equal(reply.status, 201, JSON.stringify(reply.json));
      }
      await waitFor(
        () => Deno.statSync(database).size >= before + PUBLISHED,
        10_000,
        "the events in the database file",
      );
      const status = await server.stop();
      assert.equal(status.code, 0, server.output());
      // The last connection to close checkpoints everything and removes the WAL.
      await assert.rejects(() => Deno.stat(`${database}-wal`), Deno.errors.NotFound);
    });
  });
}
