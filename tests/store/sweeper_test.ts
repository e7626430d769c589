/**
 * The sweeper on a real database file: a large purge goes in batches between which the
 * event loop runs, and the sweeper never waits for a write lock another connection holds.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore } from "../../src/store/sqlite_store.ts";
import { Sweeper, sweepInterval } from "../../src/store/sweeper.ts";
import { checkEvent } from "../../src/jobs/events.ts";
import { waitFor } from "../_helpers/clients.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");

function sweeperOf(store: ReturnType<typeof openSqliteStore>, purged: string[][]): Sweeper {
  return new Sweeper(store, {
    policy: { retentionMs: 1000, tombstoneMs: 60_000, idempotencyMs: 60_000, batch: 3 },
    stallAfterMs: 0,
    intervalMs: 60_000,
    onPurged: (ids) => purged.push(ids),
    onStalled: () => {},
  });
}

Deno.test("a purge larger than one batch goes on in later turns of the event loop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-sweep-" });
  const store = openSqliteStore(dir, { maxEventsPerJob: 100 });
  const ended = checkEvent({ type: "status", data: { status: "cancelled" } });
  assert.ok(ended.ok);
  for (let i = 0; i < 8; i++) {
    store.createJob({ id: `old-${i}`, kind: null, owner: null, metadata: {} }, T0);
    store.appendBatch([{ jobId: `old-${i}`, events: [ended.event] }], T0);
  }
  const purged: string[][] = [];
  const sweeper = sweeperOf(store, purged);
  try {
    sweeper.sweep(T0 + 10_000);
    assert.deepEqual(purged.map((ids) => ids.length), [3], "one batch in the first go");
    await waitFor(() => purged.flat().length === 8 || undefined, 5000, "the rest of the purge");
    assert.deepEqual(purged.map((ids) => ids.length), [3, 3, 2]);
    assert.equal(store.listJobs({ limit: 100 }).jobs.length, 0);
  } finally {
    sweeper.stop();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the sweeper skips its turn while another connection holds the write lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-sweep-" });
  const store = openSqliteStore(dir, { maxEventsPerJob: 100 });
  const purged: string[][] = [];
  const sweeper = sweeperOf(store, purged);
  const other = new DatabaseSync(join(dir, "jobwire.db"));
  try {
    other.exec("BEGIN EXCLUSIVE");
    // Not taken, and no "database is locked" after waiting out the busy timeout on the
    // serving thread: the lease is simply not this isolate's this time.
    assert.equal(store.takeLease("sweeper", "x", T0 + 1000, T0), false);
    sweeper.sweep(T0);
    other.exec("COMMIT");
    assert.equal(store.takeLease("sweeper", "x", T0 + 1000, T0), true);
  } finally {
    other.close();
    sweeper.stop();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stopped sweeper gives up its lease: the next server's sweeper sweeps at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-sweep-" });
  const store = openSqliteStore(dir, { maxEventsPerJob: 100 });
  const ended = checkEvent({ type: "status", data: { status: "cancelled" } });
  assert.ok(ended.ok);
  store.createJob({ id: "old", kind: null, owner: null, metadata: {} }, T0);
  store.appendBatch([{ jobId: "old", events: [ended.event] }], T0);
  const first: string[][] = [];
  const second: string[][] = [];
  const before = sweeperOf(store, first);
  const after = sweeperOf(store, second);
  try {
    // The first takes the lease (nothing to purge yet), then stops, as a server does.
    before.sweep(T0 + 500);
    before.stop();
    after.sweep(T0 + 10_000);
    assert.deepEqual(second, [["old"]]);
  } finally {
    before.stop();
    after.stop();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the sweep interval is a quarter of the shortest lifetime the sweeps end, 0.25–60 s", () => {
  assert.equal(sweepInterval(3_600_000, 0), 60_000);
  assert.equal(sweepInterval(3_600_000, 0, 2_000, 86_400_000), 500);
  assert.equal(sweepInterval(3_600_000, 8_000, 0, 0), 2_000);
  assert.equal(sweepInterval(0, 0), 250);
});
