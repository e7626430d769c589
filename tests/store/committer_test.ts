import assert from "node:assert/strict";
import { Committer } from "../../src/store/committer.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite_store.ts";
import { checkEvent, type NewEvent } from "../../src/jobs/events.ts";
import type { AppendOutcome } from "../../src/store/event_store.ts";

function log(line: number): NewEvent {
  const check = checkEvent({ type: "log", data: { line: String(line) } });
  if (!check.ok) throw new TypeError("invalid test event");
  return check.event;
}

function withStore(fn: (store: SqliteStore) => Promise<void>): Promise<void> {
  const store = openSqliteStore(":memory:", { maxEventsPerJob: 1000 });
  const created = store.createJob({ id: "j", kind: null, owner: null, metadata: {} }, 0);
  assert.ok(created.ok);
  return fn(store).finally(() => store.close());
}

const sequencesOf = (outcome: AppendOutcome) => outcome.ok ? outcome.sequences : [];

Deno.test("committer: publishes made in one turn share one transaction, in order", async () => {
  await withStore(async (store) => {
    const committer = new Committer(store, () => {});
    const outcomes = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => committer.append({ jobId: "j", events: [log(n)] })),
    );
    assert.deepEqual(outcomes.map(sequencesOf), [[1], [2], [3], [4], [5]]);
    assert.deepEqual(committer.counts, { commits: 1, appends: 5, lockWaits: 0 });
  });
});

Deno.test("committer: counts only the requests that wrote, and the transactions that held one", async () => {
  await withStore(async (store) => {
    const committer = new Committer(store, () => {});
    await committer.append({ jobId: "j", events: [log(1)], idempotencyKey: "k" });
    assert.deepEqual(committer.counts, { commits: 1, appends: 1, lockWaits: 0 });
    // A retry found written already, and a refusal (no such job): nothing written.
    const [retry, refused] = await Promise.all([
      committer.append({ jobId: "j", events: [log(1)], idempotencyKey: "k" }),
      committer.append({ jobId: "nobody", events: [log(1)] }),
    ]);
    assert.equal(retry.ok && retry.replayed, true);
    assert.equal(refused.ok, false);
    assert.deepEqual(committer.counts, { commits: 1, appends: 1, lockWaits: 0 });
  });
});

Deno.test("committer: it waits a turn and gathers the publishes that arrive meanwhile", async () => {
  await withStore(async (store) => {
    const committer = new Committer(store, () => {});
    await committer.append({ jobId: "j", events: [log(1)] });
    assert.equal(committer.counts.commits, 1);
    // Publishes whose handlers reach the committer a few steps apart, as concurrent
    // requests do.
    const pending: Promise<AppendOutcome>[] = [];
    for (let n = 2; n <= 4; n++) {
      pending.push(committer.append({ jobId: "j", events: [log(n)] }));
      await Promise.resolve();
      await Promise.resolve();
    }
    assert.deepEqual((await Promise.all(pending)).map(sequencesOf), [[2], [3], [4]]);
    assert.equal(committer.counts.commits, 2, "the three shared one transaction");
  });
});
