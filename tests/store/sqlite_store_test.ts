import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import {
  DATABASE_FILE,
  openSqliteStore,
  SqliteStore,
  type SqliteStoreOptions,
} from "../../src/store/sqlite_store.ts";
import { MIGRATIONS } from "../../src/store/migrations.ts";
import {
  type AppendOutcome,
  type AppendRequest,
  type EventStore,
  type NewJob,
  readEventsWhile,
  StoreBusyError,
  type SweepPolicy,
} from "../../src/store/event_store.ts";
import { checkEvent, type NewEvent } from "../../src/jobs/events.ts";
import { encodeEnvelope } from "../../src/jobs/envelope.ts";
import fc from "fast-check";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
const DEFAULTS: SqliteStoreOptions = { maxEventsPerJob: 10_000 };

// ---------------------------------------------------------------------------------------
// Helpers

interface Opened {
  store: SqliteStore;
  /** The data directory of a file database, `":memory:"` otherwise. */
  dir: string;
}

interface Backend {
  name: "file" | "memory";
  run(options: SqliteStoreOptions, fn: (opened: Opened) => void | Promise<void>): Promise<void>;
}

const BACKENDS: Backend[] = [
  {
    name: "file",
    async run(options, fn) {
      const dir = await Deno.makeTempDir({ prefix: "jobwire-store-" });
      const store = openSqliteStore(dir, options);
      try {
        await fn({ store, dir });
      } finally {
        store.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    name: "memory",
    async run(options, fn) {
      const store = openSqliteStore(":memory:", options);
      try {
        await fn({ store, dir: ":memory:" });
      } finally {
        store.close();
      }
    },
  },
];

/** Registers one test per backend: the same suite runs against a file and `:memory:`. */
function storeTest(
  name: string,
  fn: (store: SqliteStore, opened: Opened) => void | Promise<void>,
  options: SqliteStoreOptions = DEFAULTS,
): void {
  for (const backend of BACKENDS) {
    Deno.test(`${name} (${backend.name})`, () => backend.run(options, (o) => fn(o.store, o)));
  }
}

function ev(type: string, data: Record<string, unknown> = {}): NewEvent {
  const check = checkEvent({ type, data });
  if (!check.ok) throw new TypeError(`test event is invalid: ${JSON.stringify(check.issues)}`);
  return check.event;
}

const log = (line: string | number) => ev("log", { line: String(line) });
const status = (s: string) => ev("status", { status: s });

function newJob(id: string, overrides: Partial<NewJob> = {}): NewJob {
  return { id, kind: null, owner: null, metadata: {}, ...overrides };
}

function create(store: SqliteStore, id: string, now = T0, overrides: Partial<NewJob> = {}) {
  const outcome = store.createJob(newJob(id, overrides), now);
  if (!outcome.ok) assert.fail(`could not create ${id}`);
  return outcome.job;
}

type Ok = Extract<AppendOutcome, { ok: true }>;

function ok(outcome: AppendOutcome | undefined): Ok {
  if (outcome === undefined) assert.fail("no outcome");
  if (!outcome.ok) assert.fail(`expected the append to commit: ${outcome.code} ${outcome.message}`);
  return outcome;
}

function append(store: SqliteStore, request: AppendRequest, now = T0): AppendOutcome {
  const outcomes = store.appendBatch([request], now);
  assert.equal(outcomes.length, 1);
  return outcomes[0]!;
}

function sequencesOf(store: SqliteStore, id: string, after = 0, limit = 1000): number[] {
  return store.readEvents(id, after, limit).map((e) => e.sequence);
}

const POLICY: SweepPolicy = {
  retentionMs: 60_000,
  tombstoneMs: 3_600_000,
  idempotencyMs: 3_600_000,
  batch: 100,
};

// ---------------------------------------------------------------------------------------
// Jobs

storeTest("createJob stores a pending job with the given fields", (store) => {
  const job = create(store, "job-1", T0, {
    kind: "train",
    owner: "alice",
    metadata: { team: "ml", n: [1, 2] },
  });
  assert.equal(job.status, "pending");
  const read = store.getJob("job-1");
  assert.ok(read !== undefined);
  assert.deepEqual(read, job);
  assert.equal(read.kind, "train");
  assert.equal(read.owner, "alice");
  assert.deepEqual(read.metadata, { team: "ml", n: [1, 2] });
  assert.equal(read.created_at, iso(T0));
  assert.equal(read.updated_at, iso(T0));
  assert.equal(read.progress, 0);
  assert.equal(read.last_sequence, 0);
  assert.equal(read.first_sequence, 1);
  assert.equal(read.stalled, false);
  assert.equal(read.result, null);
  assert.equal(read.error, null);
  assert.equal(read.queued_at, null);
  assert.equal(read.started_at, null);
  assert.equal(read.completed_at, null);
});

storeTest("createJob answers exists when a job has the id and leaves it unchanged", (store) => {
  create(store, "dup", T0, { kind: "a" });
  ok(append(store, { jobId: "dup", events: [log(1)] }));
  const again = store.createJob(newJob("dup", { kind: "b" }), T0 + 1000);
  assert.deepEqual(again, { ok: false, code: "exists" });
  const job = store.getJob("dup");
  assert.equal(job?.kind, "a");
  assert.equal(job?.last_sequence, 1);
  assert.deepEqual(sequencesOf(store, "dup"), [1]);
});

storeTest("getJob returns undefined for an unknown id", (store) => {
  assert.equal(store.getJob("nope"), undefined);
  assert.equal(store.isGone("nope"), false);
});

// ---------------------------------------------------------------------------------------
// Appending and reading

storeTest("appendBatch gives contiguous sequences from 1 across requests", (store) => {
  create(store, "j");
  const first = ok(append(store, { jobId: "j", events: [log("a"), log("b"), log("c")] }));
  assert.deepEqual(first.sequences, [1, 2, 3]);
  assert.equal(first.replayed, false);
  assert.deepEqual(first.committed.map((c) => c.event.sequence), [1, 2, 3]);
  const second = ok(append(store, { jobId: "j", events: [log("d")] }));
  assert.deepEqual(second.sequences, [4]);
  assert.equal(second.job.last_sequence, 4);
  assert.equal(store.getJob("j")?.last_sequence, 4);
  assert.deepEqual(sequencesOf(store, "j"), [1, 2, 3, 4]);
});

storeTest("appendBatch returns nothing for an empty batch", (store) => {
  assert.deepEqual(store.appendBatch([], T0), []);
});

storeTest("appendBatch keeps separate sequences per job", (store) => {
  create(store, "a");
  create(store, "b");
  const outcomes = store.appendBatch([
    { jobId: "a", events: [log(1), log(2)] },
    { jobId: "b", events: [log(1)] },
    { jobId: "a", events: [log(3)] },
  ], T0);
  assert.deepEqual(outcomes.map((o) => ok(o).sequences), [[1, 2], [1], [3]]);
  assert.deepEqual(sequencesOf(store, "a"), [1, 2, 3]);
  assert.deepEqual(sequencesOf(store, "b"), [1]);
});

storeTest("readEvents returns events after a sequence, oldest first, at most limit", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: Array.from({ length: 10 }, (_, i) => log(i + 1)) }));
  assert.deepEqual(sequencesOf(store, "j", 0, 3), [1, 2, 3]);
  assert.deepEqual(sequencesOf(store, "j", 4, 3), [5, 6, 7]);
  assert.deepEqual(sequencesOf(store, "j", 8, 100), [9, 10]);
  assert.deepEqual(sequencesOf(store, "j", 10, 100), []);
  assert.deepEqual(sequencesOf(store, "j", 0, 0), []);
  assert.deepEqual(sequencesOf(store, "other", 0, 100), []);
});

storeTest("appends of any size store every event once, in order, as committed", (store) => {
  create(store, "j");
  // Rows go in several per statement: sizes around the statement's row count.
  const sizes = [1, 15, 16, 17, 33, 2];
  const committed: string[] = [];
  let line = 0;
  for (const size of sizes) {
    const outcome = ok(
      append(store, { jobId: "j", events: Array.from({ length: size }, () => log(++line)) }),
    );
    assert.equal(outcome.committed.length, size);
    committed.push(...outcome.committed.map((c) => c.event.envelope));
  }
  const stored = store.readEvents("j", 0, 1000);
  assert.deepEqual(stored.map((e) => e.sequence), Array.from({ length: line }, (_, i) => i + 1));
  assert.deepEqual(stored.map((e) => e.envelope), committed);
  assert.deepEqual(
    stored.map((e) => JSON.parse(e.envelope).data.line),
    Array.from({ length: line }, (_, i) => String(i + 1)),
  );
});

storeTest("readEvents returns envelopes whose JSON has the right fields", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [status("running")] }, T0 + 1000));
  ok(
    append(
      store,
      { jobId: "j", events: [ev("progress", { progress: 25, stage: "s" })] },
      T0 + 11_000,
    ),
  );
  const events = store.readEvents("j", 0, 10);
  assert.equal(events.length, 2);
  const [first, second] = events;
  assert.equal(first!.job_id, "j");
  assert.equal(first!.type, "status");
  assert.deepEqual(JSON.parse(first!.envelope), {
    type: "status",
    job_id: "j",
    sequence: 1,
    timestamp: iso(T0 + 1000),
    data: { status: "running" },
  });
  const envelope = JSON.parse(second!.envelope);
  assert.deepEqual(Object.keys(envelope), ["type", "job_id", "sequence", "timestamp", "data"]);
  assert.equal(envelope.type, "progress");
  assert.equal(envelope.sequence, 2);
  assert.equal(envelope.timestamp, iso(T0 + 11_000));
  assert.equal(envelope.data.progress, 25);
  assert.equal(envelope.data.percentage, "25%");
  assert.equal(envelope.data.stage, "s");
  // Started at T0+1 s, 25 % at T0+11 s: 30 s left at that rate.
  assert.equal(envelope.data.eta_seconds, 30);
  assert.equal(envelope.data.eta_estimated, true);
});

storeTest(
  "appendBatch hands back committed events identical to what readEvents returns",
  (store) => {
    create(store, "j");
    const outcome = ok(
      append(store, { jobId: "j", events: [log("x"), ev("custom.thing", { a: 1 })] }),
    );
    assert.deepEqual(outcome.committed.map((c) => c.event), store.readEvents("j", 0, 10));
    assert.deepEqual(outcome.committed.map((c) => c.job.last_sequence), [1, 2]);
  },
);

storeTest("appendBatch persists the snapshot the events fold into", (store) => {
  create(store, "j", T0);
  ok(
    append(store, {
      jobId: "j",
      events: [
        status("queued"),
        status("running"),
        ev("progress", { progress: 50, stage: "fit", message: "half" }),
        ev("result", { results: { auc: 0.91 } }),
        status("completed"),
      ],
    }, T0 + 5000),
  );
  const job = store.getJob("j");
  assert.ok(job !== undefined);
  assert.equal(job.status, "completed");
  assert.equal(job.progress, 100);
  assert.equal(job.stage, "fit");
  // The end said no message of its own: the step's ("half") is not kept as the job's.
  assert.equal(job.message, null);
  assert.deepEqual(job.result, { auc: 0.91 });
  assert.equal(job.queued_at, iso(T0 + 5000));
  assert.equal(job.started_at, iso(T0 + 5000));
  assert.equal(job.completed_at, iso(T0 + 5000));
  assert.equal(job.updated_at, iso(T0 + 5000));
  assert.equal(job.last_sequence, 5);
  assert.equal(job.eta_seconds, 0);
});

storeTest("appendBatch persists an error with its details", (store) => {
  create(store, "j");
  ok(
    append(store, {
      jobId: "j",
      events: [ev("error", { error: "boom", error_type: "system_error", details: { code: 7 } })],
    }),
  );
  assert.deepEqual(store.getJob("j")?.error, {
    error: "boom",
    error_type: "system_error",
    details: { code: 7 },
  });
});

storeTest("appendBatch refuses an unknown job with job_not_found", (store) => {
  const outcome = append(store, { jobId: "ghost", events: [log(1)] });
  assert.equal(outcome.ok, false);
  assert.equal(!outcome.ok && outcome.code, "job_not_found");
});

storeTest("appendBatch refuses events after a terminal status with job_finished", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [status("cancelled")] }));
  const outcome = append(store, { jobId: "j", events: [log("late")] });
  assert.equal(!outcome.ok && outcome.code, "job_finished");
  assert.deepEqual(sequencesOf(store, "j"), [1]);
  assert.equal(store.getJob("j")?.last_sequence, 1);
});

storeTest("appendBatch writes nothing of a request whose later event is refused", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [status("running")] }));
  const outcome = append(store, { jobId: "j", events: [log("a"), log("b"), status("queued")] });
  assert.equal(!outcome.ok && outcome.code, "invalid_transition");
  assert.deepEqual(sequencesOf(store, "j"), [1]);
  const job = store.getJob("j");
  assert.equal(job?.last_sequence, 1);
  assert.equal(job?.status, "running");
});

storeTest("appendBatch commits the other requests of a batch when one is refused", (store) => {
  create(store, "a");
  create(store, "b");
  ok(append(store, { jobId: "b", events: [status("running"), status("completed")] }));
  const outcomes = store.appendBatch([
    { jobId: "a", events: [log(1)] },
    { jobId: "a", events: [log(2), status("running"), status("completed"), log("after end")] },
    { jobId: "b", events: [log("late")] },
    { jobId: "missing", events: [log(1)] },
    { jobId: "a", events: [log(3)] },
  ], T0 + 1000);
  assert.deepEqual(outcomes.map((o) => o.ok), [true, false, false, false, true]);
  assert.equal(!outcomes[1]!.ok && outcomes[1]!.code, "job_finished");
  assert.equal(!outcomes[2]!.ok && outcomes[2]!.code, "job_finished");
  assert.equal(!outcomes[3]!.ok && outcomes[3]!.code, "job_not_found");
  assert.deepEqual(ok(outcomes[0]).sequences, [1]);
  assert.deepEqual(ok(outcomes[4]).sequences, [2]);
  assert.deepEqual(sequencesOf(store, "a"), [1, 2]);
  const a = store.getJob("a");
  assert.equal(a?.status, "pending");
  assert.equal(a?.last_sequence, 2);
  assert.deepEqual(
    store.readEvents("a", 0, 10).map((e) => JSON.parse(e.envelope).data.line),
    ["1", "3"],
  );
  assert.deepEqual(sequencesOf(store, "b"), [1, 2]);
});

// ---------------------------------------------------------------------------------------
// Idempotency and expected sequences

storeTest("appendBatch returns the first sequences with replayed for a repeated key", (store) => {
  create(store, "j");
  const first = ok(append(store, { jobId: "j", events: [log(1), log(2)], idempotencyKey: "k1" }));
  assert.equal(first.replayed, false);
  ok(append(store, { jobId: "j", events: [log(3)] }));
  const retry = ok(append(store, { jobId: "j", events: [log(1), log(2)], idempotencyKey: "k1" }));
  assert.deepEqual(retry.sequences, [1, 2]);
  assert.equal(retry.replayed, true);
  assert.deepEqual(retry.committed, []);
  assert.deepEqual(sequencesOf(store, "j"), [1, 2, 3]);
  assert.equal(store.getJob("j")?.last_sequence, 3);
});

storeTest("appendBatch writes again for a different key or another job's key", (store) => {
  create(store, "a");
  create(store, "b");
  ok(append(store, { jobId: "a", events: [log(1)], idempotencyKey: "k" }));
  const otherKey = ok(append(store, { jobId: "a", events: [log(2)], idempotencyKey: "k2" }));
  assert.deepEqual(otherKey.sequences, [2]);
  assert.equal(otherKey.replayed, false);
  const otherJob = ok(append(store, { jobId: "b", events: [log(1)], idempotencyKey: "k" }));
  assert.deepEqual(otherJob.sequences, [1]);
  assert.equal(otherJob.replayed, false);
});

storeTest("appendBatch replays a key repeated within one batch", (store) => {
  create(store, "j");
  const outcomes = store.appendBatch([
    { jobId: "j", events: [log(1)], idempotencyKey: "same" },
    { jobId: "j", events: [log(1)], idempotencyKey: "same" },
  ], T0);
  assert.deepEqual(outcomes.map((o) => [ok(o).sequences, ok(o).replayed]), [
    [[1], false],
    [[1], true],
  ]);
  assert.deepEqual(sequencesOf(store, "j"), [1]);
});

storeTest("appendBatch does not remember the key of a refused request", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [status("running")] }));
  const refused = append(store, { jobId: "j", events: [status("pending")], idempotencyKey: "k" });
  assert.equal(refused.ok, false);
  const next = ok(append(store, { jobId: "j", events: [log("x")], idempotencyKey: "k" }));
  assert.equal(next.replayed, false);
  assert.deepEqual(next.sequences, [2]);
});

storeTest("appendBatch writes when expectedSequence is the next sequence", (store) => {
  create(store, "j");
  const first = ok(append(store, { jobId: "j", events: [log(1), log(2)], expectedSequence: 1 }));
  assert.deepEqual(first.sequences, [1, 2]);
  assert.equal(first.replayed, false);
  const next = ok(append(store, { jobId: "j", events: [log(3)], expectedSequence: 3 }));
  assert.deepEqual(next.sequences, [3]);
  assert.equal(next.replayed, false);
});

storeTest("appendBatch replays when expectedSequence names events already written", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [log(1), log(2), log(3)] }));
  const retry = ok(append(store, { jobId: "j", events: [log(2), log(3)], expectedSequence: 2 }));
  assert.deepEqual(retry.sequences, [2, 3]);
  assert.equal(retry.replayed, true);
  assert.deepEqual(retry.committed, []);
  assert.deepEqual(sequencesOf(store, "j"), [1, 2, 3]);
});

storeTest(
  "appendBatch refuses with sequence_conflict when expectedSequence skips ahead",
  (store) => {
    create(store, "j");
    ok(append(store, { jobId: "j", events: [log(1)] }));
    const outcome = append(store, { jobId: "j", events: [log(2)], expectedSequence: 5 });
    assert.equal(!outcome.ok && outcome.code, "sequence_conflict");
    assert.deepEqual(sequencesOf(store, "j"), [1]);
  },
);

storeTest(
  "appendBatch refuses with sequence_conflict when expectedSequence half overlaps",
  (store) => {
    create(store, "j");
    ok(append(store, { jobId: "j", events: [log(1), log(2)] }));
    // Sequences 2 and 3: 2 exists, 3 does not; neither a retry nor the next write.
    const outcome = append(store, { jobId: "j", events: [log(2), log(3)], expectedSequence: 2 });
    assert.equal(!outcome.ok && outcome.code, "sequence_conflict");
    assert.deepEqual(sequencesOf(store, "j"), [1, 2]);
  },
);

storeTest("appendBatch refuses an expectedSequence of 0 or below", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [log(1)] }));
  for (const expected of [0, -1]) {
    const outcome = append(store, { jobId: "j", events: [log(2)], expectedSequence: expected });
    assert.equal(!outcome.ok && outcome.code, "sequence_conflict", String(expected));
  }
  assert.deepEqual(sequencesOf(store, "j"), [1]);
});

// ---------------------------------------------------------------------------------------
// Per-job cap

storeTest("appendBatch drops the oldest events past the per-job cap", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [log(1), log(2), log(3)] }));
  assert.equal(store.getJob("j")?.first_sequence, 1);
  ok(append(store, { jobId: "j", events: [log(4)] }));
  assert.equal(store.getJob("j")?.first_sequence, 2);
  assert.deepEqual(sequencesOf(store, "j"), [2, 3, 4]);
  const last = ok(append(store, { jobId: "j", events: [log(5), log(6)] }));
  assert.equal(last.job.first_sequence, 4);
  assert.equal(last.committed.at(-1)?.job.first_sequence, 4);
  const job = store.getJob("j");
  assert.equal(job?.first_sequence, 4);
  assert.equal(job?.last_sequence, 6);
  assert.deepEqual(sequencesOf(store, "j"), [4, 5, 6]);
}, { maxEventsPerJob: 3 });

storeTest("appendBatch keeps only the newest events of a batch larger than the cap", (store) => {
  create(store, "j");
  const outcome = ok(
    append(store, { jobId: "j", events: Array.from({ length: 7 }, (_, i) => log(i)) }),
  );
  assert.deepEqual(outcome.sequences, [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(sequencesOf(store, "j"), [5, 6, 7]);
  assert.equal(store.getJob("j")?.first_sequence, 5);
}, { maxEventsPerJob: 3 });

storeTest("appendBatch cap applies per job", (store) => {
  create(store, "a");
  create(store, "b");
  ok(append(store, { jobId: "a", events: [log(1), log(2), log(3)] }));
  ok(append(store, { jobId: "b", events: [log(1), log(2)] }));
  assert.deepEqual(sequencesOf(store, "a"), [2, 3]);
  assert.deepEqual(sequencesOf(store, "b"), [1, 2]);
}, { maxEventsPerJob: 2 });

// ---------------------------------------------------------------------------------------
// Deleting and tombstones

storeTest("deleteJob removes the job and its events and leaves a tombstone", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [log(1), log(2)] }));
  assert.equal(store.deleteJob("j", T0 + 1000), true);
  assert.equal(store.getJob("j"), undefined);
  assert.deepEqual(store.readEvents("j", 0, 10), []);
  assert.equal(store.isGone("j"), true);
  const outcome = append(store, { jobId: "j", events: [log(3)] });
  assert.equal(!outcome.ok && outcome.code, "job_gone");
});

storeTest("deleteJob returns false for an unknown or already deleted job", (store) => {
  assert.equal(store.deleteJob("nope", T0), false);
  assert.equal(store.isGone("nope"), false);
  create(store, "j");
  assert.equal(store.deleteJob("j", T0), true);
  assert.equal(store.deleteJob("j", T0), false);
});

storeTest("createJob with a deleted id clears the tombstone and starts afresh", (store) => {
  create(store, "j", T0, { kind: "old" });
  ok(append(store, { jobId: "j", events: [log(1), log(2)], idempotencyKey: "k" }));
  store.deleteJob("j", T0 + 1000);
  const job = create(store, "j", T0 + 2000, { kind: "new" });
  assert.equal(job.kind, "new");
  assert.equal(store.isGone("j"), false);
  assert.equal(store.getJob("j")?.last_sequence, 0);
  assert.deepEqual(store.readEvents("j", 0, 10), []);
  const fresh = ok(append(store, { jobId: "j", events: [log("x")], idempotencyKey: "k" }));
  assert.deepEqual(fresh.sequences, [1]);
  assert.equal(fresh.replayed, false);
});

storeTest("a job made again under a deleted id is created after the earlier one went", (store) => {
  const first = create(store, "j", T0);
  store.deleteJob("j", T0);
  // Within the same millisecond, and with the clock behind the deletion.
  const second = create(store, "j", T0);
  assert.equal(first.created_at, new Date(T0).toISOString());
  assert.equal(second.created_at, new Date(T0 + 1).toISOString());
  store.deleteJob("j", T0 + 5000);
  const third = create(store, "j", T0 + 3000);
  assert.equal(third.created_at, new Date(T0 + 5001).toISOString());
  assert.equal(store.getJob("j")?.created_at, third.created_at);
  // An id never deleted takes the time it is given.
  assert.equal(create(store, "k", T0).created_at, new Date(T0).toISOString());
});

// ---------------------------------------------------------------------------------------
// Listing and counting

storeTest("listJobs returns jobs newest first, by id descending on equal times", (store) => {
  create(store, "old", T0);
  create(store, "mid-a", T0 + 1000);
  create(store, "mid-b", T0 + 1000);
  create(store, "new", T0 + 2000);
  const page = store.listJobs({ limit: 10 });
  assert.deepEqual(page.jobs.map((j) => j.id), ["new", "mid-b", "mid-a", "old"]);
  assert.equal(page.next_cursor, null);
});

storeTest("listJobs filters by status, kind and owner", (store) => {
  create(store, "a", T0, { kind: "train", owner: "alice" });
  create(store, "b", T0 + 1, { kind: "train", owner: "bob" });
  create(store, "c", T0 + 2, { kind: "eval", owner: "alice" });
  create(store, "d", T0 + 3, { kind: null, owner: null });
  ok(append(store, { jobId: "a", events: [status("running")] }));
  ok(append(store, { jobId: "c", events: [status("running")] }));
  const ids = (q: Parameters<SqliteStore["listJobs"]>[0]) =>
    store.listJobs(q).jobs.map((j) => j.id);
  assert.deepEqual(ids({ limit: 10, status: "running" }), ["c", "a"]);
  assert.deepEqual(ids({ limit: 10, status: "pending" }), ["d", "b"]);
  assert.deepEqual(ids({ limit: 10, kind: "train" }), ["b", "a"]);
  assert.deepEqual(ids({ limit: 10, owner: "alice" }), ["c", "a"]);
  assert.deepEqual(ids({ limit: 10, owner: "alice", kind: "train" }), ["a"]);
  assert.deepEqual(ids({ limit: 10, owner: "alice", status: "pending" }), []);
  assert.deepEqual(ids({ limit: 10, status: "completed" }), []);
});

storeTest("listJobs pages with a cursor through every job exactly once", (store) => {
  const expected: string[] = [];
  for (let i = 0; i < 7; i++) {
    // Pairs of jobs share a creation time, so pages split ties.
    const id = `job-${i}`;
    create(store, id, T0 + Math.floor(i / 2) * 1000);
    expected.push(id);
  }
  const all = store.listJobs({ limit: 100 }).jobs.map((j) => j.id);
  assert.equal(all.length, 7);
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = store.listJobs(cursor === undefined ? { limit: 2 } : { limit: 2, cursor });
    pages++;
    assert.ok(page.jobs.length <= 2);
    seen.push(...page.jobs.map((j) => j.id));
    if (page.next_cursor === null) break;
    cursor = page.next_cursor;
    assert.ok(pages < 10, "pagination does not end");
  }
  assert.equal(pages, 4);
  assert.deepEqual(seen, all);
  assert.deepEqual([...seen].sort(), expected.sort());
});

storeTest("listJobs gives no cursor when the last page is exactly full", (store) => {
  create(store, "a", T0);
  create(store, "b", T0 + 1);
  const first = store.listJobs({ limit: 2 });
  assert.equal(first.jobs.length, 2);
  assert.equal(first.next_cursor, null);
  const one = store.listJobs({ limit: 1 });
  assert.notEqual(one.next_cursor, null);
  const second = store.listJobs({ limit: 1, cursor: one.next_cursor! });
  assert.deepEqual(second.jobs.map((j) => j.id), ["a"]);
  assert.equal(second.next_cursor, null);
});

storeTest("listJobs keeps filters while paging", (store) => {
  for (let i = 0; i < 6; i++) {
    create(store, `j${i}`, T0 + i, { kind: i % 2 === 0 ? "even" : "odd" });
  }
  const first = store.listJobs({ limit: 2, kind: "even" });
  assert.deepEqual(first.jobs.map((j) => j.id), ["j4", "j2"]);
  const second = store.listJobs({ limit: 2, kind: "even", cursor: first.next_cursor! });
  assert.deepEqual(second.jobs.map((j) => j.id), ["j0"]);
  assert.equal(second.next_cursor, null);
});

storeTest("countByStatus counts jobs per status", (store) => {
  assert.deepEqual(store.countByStatus(), {});
  for (const id of ["a", "b", "c", "d", "e"]) create(store, id);
  ok(append(store, { jobId: "a", events: [status("running")] }));
  ok(append(store, { jobId: "b", events: [status("running")] }));
  ok(append(store, { jobId: "c", events: [status("failed")] }));
  store.deleteJob("e", T0);
  assert.deepEqual(store.countByStatus(), { pending: 1, running: 2, failed: 1 });
});

// ---------------------------------------------------------------------------------------
// Sweeping

storeTest("sweep purges terminal jobs past retention and returns their ids", (store) => {
  create(store, "done");
  create(store, "live");
  ok(
    append(store, { jobId: "done", events: [status("running"), status("completed")] }, T0 + 10_000),
  );
  ok(append(store, { jobId: "live", events: [status("running")] }, T0 + 10_000));
  const ended = T0 + 10_000;
  assert.deepEqual(store.sweep(ended + POLICY.retentionMs - 1, POLICY), []);
  assert.notEqual(store.getJob("done"), undefined);
  assert.deepEqual(store.sweep(ended + POLICY.retentionMs + 1, POLICY), ["done"]);
  assert.equal(store.getJob("done"), undefined);
  assert.deepEqual(store.readEvents("done", 0, 10), []);
  assert.equal(store.isGone("done"), true);
  assert.equal(store.getJob("live")?.status, "running");
  assert.deepEqual(store.sweep(ended + 100 * POLICY.retentionMs, POLICY), []);
});

storeTest("sweep purges failed and cancelled jobs as well", (store) => {
  create(store, "f");
  create(store, "c");
  ok(append(store, { jobId: "f", events: [status("failed")] }, T0));
  ok(append(store, { jobId: "c", events: [status("canceled")] }, T0));
  assert.deepEqual(store.sweep(T0 + POLICY.retentionMs + 1, POLICY).sort(), ["c", "f"]);
});

storeTest("sweep never purges jobs that have not ended, however old", (store) => {
  create(store, "p", T0);
  create(store, "r", T0);
  ok(append(store, { jobId: "r", events: [status("running")] }, T0));
  assert.deepEqual(store.sweep(T0 + 1000 * POLICY.retentionMs, POLICY), []);
  assert.notEqual(store.getJob("p"), undefined);
  assert.notEqual(store.getJob("r"), undefined);
});

storeTest("sweep purges at most batch jobs per call", (store) => {
  for (const id of ["a", "b", "c"]) {
    create(store, id);
    ok(append(store, { jobId: id, events: [status("running"), status("completed")] }, T0));
  }
  const policy = { ...POLICY, batch: 2 };
  const now = T0 + POLICY.retentionMs + 1;
  const first = store.sweep(now, policy);
  assert.equal(first.length, 2);
  const second = store.sweep(now, policy);
  assert.equal(second.length, 1);
  assert.deepEqual([...first, ...second].sort(), ["a", "b", "c"]);
  assert.deepEqual(store.sweep(now, policy), []);
});

storeTest("sweep forgets tombstones older than tombstoneMs", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [status("running"), status("completed")] }, T0));
  const purgedAt = T0 + POLICY.retentionMs + 1;
  assert.deepEqual(store.sweep(purgedAt, POLICY), ["j"]);
  assert.equal(store.isGone("j"), true);
  store.sweep(purgedAt + POLICY.tombstoneMs - 1, POLICY);
  assert.equal(store.isGone("j"), true);
  store.sweep(purgedAt + POLICY.tombstoneMs + 1, POLICY);
  assert.equal(store.isGone("j"), false);
  const outcome = append(store, { jobId: "j", events: [log(1)] });
  assert.equal(!outcome.ok && outcome.code, "job_not_found");
});

storeTest("sweep forgets tombstones of deleted jobs too", (store) => {
  create(store, "j");
  store.deleteJob("j", T0);
  store.sweep(T0 + POLICY.tombstoneMs + 1, POLICY);
  assert.equal(store.isGone("j"), false);
});

storeTest("a create's key names the job it made until the sweep forgets it", (store) => {
  const made = store.createJob(newJob("first"), T0, "alice\nk");
  assert.ok(made.ok);
  assert.deepEqual(store.createJob(newJob("second"), T0 + 1, "alice\nk"), {
    ok: false,
    code: "keyed",
    jobId: "first",
  });
  assert.equal(store.getJob("second"), undefined);
  // Another caller's key is its own.
  assert.ok(store.createJob(newJob("bobs"), T0 + 2, "bob\nk").ok);
  store.sweep(T0 + POLICY.idempotencyMs - 1, POLICY);
  assert.equal(store.createJob(newJob("third"), T0 + 3, "alice\nk").ok, false);
  store.sweep(T0 + POLICY.idempotencyMs + 1, POLICY);
  assert.ok(store.createJob(newJob("fourth"), T0 + 4, "alice\nk").ok);
});

storeTest("sweep forgets idempotency keys older than idempotencyMs", (store) => {
  create(store, "j");
  ok(append(store, { jobId: "j", events: [log(1)], idempotencyKey: "k" }, T0));
  store.sweep(T0 + POLICY.idempotencyMs - 1, POLICY);
  assert.equal(
    ok(append(store, { jobId: "j", events: [log(1)], idempotencyKey: "k" })).replayed,
    true,
  );
  store.sweep(T0 + POLICY.idempotencyMs + 1, POLICY);
  const again = ok(append(store, { jobId: "j", events: [log(1)], idempotencyKey: "k" }));
  assert.equal(again.replayed, false);
  assert.deepEqual(again.sequences, [2]);
});

// ---------------------------------------------------------------------------------------
// Stalls

storeTest("findStalled returns running jobs quiet since before the threshold", (store) => {
  for (const id of ["quiet", "busy", "pending", "done"]) create(store, id, T0);
  ok(append(store, { jobId: "quiet", events: [status("running")] }, T0));
  ok(append(store, { jobId: "busy", events: [status("running")] }, T0));
  ok(append(store, { jobId: "busy", events: [log("tick")] }, T0 + 50_000));
  ok(append(store, { jobId: "done", events: [status("running"), status("completed")] }, T0));
  assert.deepEqual(store.findStalled(T0 + 10_000, 10), ["quiet"]);
  assert.deepEqual(store.findStalled(T0 + 60_000, 10).sort(), ["busy", "quiet"]);
  assert.deepEqual(store.findStalled(T0, 10), []);
  assert.equal(store.findStalled(T0 + 60_000, 1).length, 1);
});

storeTest(
  "findStalled skips a job marked stalled until its next event clears the flag",
  (store) => {
    create(store, "j", T0);
    ok(append(store, { jobId: "j", events: [status("running")] }, T0));
    const warned = ok(
      append(store, {
        jobId: "j",
        events: [ev("log", { line: "no event for 10m", level: "warning" })],
        stalledIfQuietSince: T0 + 1,
      }, T0 + 600_000),
    );
    assert.equal(warned.job.stalled, true);
    assert.equal(store.getJob("j")?.stalled, true);
    assert.deepEqual(store.findStalled(T0 + 10_000_000, 10), []);
    ok(append(store, { jobId: "j", events: [log("alive")] }, T0 + 700_000));
    assert.equal(store.getJob("j")?.stalled, false);
    assert.deepEqual(store.findStalled(T0 + 10_000_000, 10), ["j"]);
  },
);

storeTest(
  "a stall warning writes nothing when an event came after the sweep looked, or the job is not running or already marked",
  (store) => {
    create(store, "j", T0);
    ok(append(store, { jobId: "j", events: [status("running")] }, T0));
    const warning = () => ev("log", { line: "no event for 10m", level: "warning" });
    // The sweep saw the job quiet since before T0 + 1000; an event at T0 + 5000 came since.
    ok(append(store, { jobId: "j", events: [log("alive")] }, T0 + 5000));
    const late = ok(
      append(store, { jobId: "j", events: [warning()], stalledIfQuietSince: T0 + 1000 }, T0 + 6000),
    );
    assert.deepEqual(late.sequences, []);
    assert.equal(late.job.stalled, false);
    assert.equal(store.getJob("j")?.last_sequence, 2);
    assert.equal(store.getJob("j")?.stalled, false);
    // Quiet since then: written and marked, once.
    const warned = ok(
      append(store, { jobId: "j", events: [warning()], stalledIfQuietSince: T0 + 6000 }, T0 + 7000),
    );
    assert.deepEqual(warned.sequences, [3]);
    assert.equal(store.getJob("j")?.stalled, true);
    const again = ok(
      append(store, { jobId: "j", events: [warning()], stalledIfQuietSince: T0 + 8000 }, T0 + 9000),
    );
    assert.deepEqual(again.sequences, []);
    // Not running: nothing either.
    ok(append(store, { jobId: "j", events: [status("completed")] }, T0 + 10_000));
    const ended = ok(
      append(
        store,
        { jobId: "j", events: [warning()], stalledIfQuietSince: T0 + 20_000 },
        T0 + 30_000,
      ),
    );
    assert.deepEqual(ended.sequences, []);
    assert.equal(store.getJob("j")?.last_sequence, 4);
  },
);

// ---------------------------------------------------------------------------------------
// Schema

storeTest("a new database is at the newest schema version", (_store, { dir }) => {
  if (dir === ":memory:") {
    const db = new DatabaseSync(":memory:");
    const store = new SqliteStore(db, DEFAULTS);
    try {
      const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
      assert.equal(row.user_version, MIGRATIONS.length);
    } finally {
      store.close();
    }
    return;
  }
  const db = new DatabaseSync(join(dir, DATABASE_FILE));
  try {
    const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
    assert.equal(row.user_version, MIGRATIONS.length);
  } finally {
    db.close();
  }
});

Deno.test("a database newer than the code is refused with RangeError (memory)", () => {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    assert.throws(() => new SqliteStore(db, DEFAULTS), RangeError);
  } finally {
    if (db.isOpen) db.close();
  }
});

Deno.test("a database newer than the code is refused with RangeError (file)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-store-" });
  try {
    const db = new DatabaseSync(join(dir, DATABASE_FILE));
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 5}`);
    db.close();
    assert.throws(
      () => openSqliteStore(dir, DEFAULTS),
      (error: unknown) => error instanceof RangeError && /newer/.test(error.message),
    );
    const check = new DatabaseSync(join(dir, DATABASE_FILE));
    try {
      const row = check.prepare("PRAGMA user_version").get() as { user_version: number };
      assert.equal(
        row.user_version,
        MIGRATIONS.length + 5,
        "the refused database is left as it was",
      );
      const tables = check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
      assert.deepEqual(tables, []);
    } finally {
      check.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reopening a file database keeps jobs and events and sequences continue", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-store-" });
  try {
    const first = openSqliteStore(dir, DEFAULTS);
    try {
      create(first, "j", T0, { kind: "k", metadata: { a: 1 } });
      create(first, "gone", T0);
      ok(
        append(first, {
          jobId: "j",
          events: [status("running"), log(1), log(2)],
          idempotencyKey: "key",
        }),
      );
      first.deleteJob("gone", T0);
    } finally {
      first.close();
    }
    const second = openSqliteStore(dir, DEFAULTS);
    try {
      const job = second.getJob("j");
      assert.equal(job?.status, "running");
      assert.equal(job?.kind, "k");
      assert.deepEqual(job?.metadata, { a: 1 });
      assert.equal(job?.last_sequence, 3);
      assert.deepEqual(sequencesOf(second, "j"), [1, 2, 3]);
      assert.equal(second.isGone("gone"), true);
      const retry = ok(
        append(second, {
          jobId: "j",
          events: [status("running"), log(1), log(2)],
          idempotencyKey: "key",
        }),
      );
      assert.equal(retry.replayed, true);
      assert.deepEqual(retry.sequences, [1, 2, 3]);
      const next = ok(append(second, { jobId: "j", events: [log(3)] }));
      assert.deepEqual(next.sequences, [4]);
      assert.deepEqual(sequencesOf(second, "j"), [1, 2, 3, 4]);
    } finally {
      second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSqliteStore creates a missing data directory", async () => {
  const parent = await Deno.makeTempDir({ prefix: "jobwire-store-" });
  try {
    const dir = join(parent, "nested", "data");
    const store = openSqliteStore(dir, DEFAULTS);
    try {
      create(store, "j");
      assert.ok((await Deno.stat(join(dir, DATABASE_FILE))).isFile);
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("SqliteStore.close is idempotent", () => {
  const store = openSqliteStore(":memory:", DEFAULTS);
  store.close();
  store.close();
  assert.throws(() => store.getJob("x"));
});

Deno.test("two stores on one file database share sequences without gaps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-store-" });
  try {
    const a = openSqliteStore(dir, DEFAULTS);
    const b = openSqliteStore(dir, DEFAULTS);
    try {
      create(a, "j");
      assert.equal(b.createJob(newJob("j"), T0).ok, false);
      const sequences: number[] = [];
      for (let i = 0; i < 6; i++) {
        const store = i % 2 === 0 ? a : b;
        sequences.push(...ok(append(store, { jobId: "j", events: [log(i)] })).sequences);
      }
      assert.deepEqual(sequences, [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(sequencesOf(a, "j"), [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(sequencesOf(b, "j"), [1, 2, 3, 4, 5, 6]);
      assert.equal(a.getJob("j")?.last_sequence, 6);
    } finally {
      a.close();
      b.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("opening a store waits for a lock another connection holds instead of failing", async () => {
  // Isolates open the same file together; one switching the journal mode while another
  // holds a lock once failed at once with "database is locked".
  const dir = await Deno.makeTempDir({ prefix: "jobwire-lock-" });
  const file = join(dir, DATABASE_FILE);
  new DatabaseSync(file).close();
  const holder = new Worker(
    URL.createObjectURL(
      new Blob([
        `import { DatabaseSync } from "node:sqlite";
        const db = new DatabaseSync(${JSON.stringify(file)});
        db.exec("PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE");
        postMessage("locked");
        setTimeout(() => { db.exec("COMMIT"); db.close(); postMessage("released"); }, 300);`,
      ], { type: "text/javascript" }),
    ),
    { type: "module" },
  );
  const messages: string[] = [];
  const released = new Promise<void>((resolve) => {
    holder.onmessage = (e) => {
      messages.push(e.data);
      if (e.data === "released") resolve();
    };
  });
  try {
    while (!messages.includes("locked")) await new Promise((r) => setTimeout(r, 5));
    const store = openSqliteStore(dir, DEFAULTS);
    try {
      assert.ok(store.createJob({ id: "a", kind: null, owner: null, metadata: {} }, T0).ok);
    } finally {
      store.close();
    }
    await released;
  } finally {
    holder.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("events stored as whole envelopes are split into parts and read back byte for byte", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-store-" });
  try {
    // A database as the schema stood before events were stored in parts.
    const old = new DatabaseSync(join(dir, DATABASE_FILE));
    const partsStep = MIGRATIONS.findIndex((step) => step.includes("events_parts"));
    assert.ok(partsStep > 0, "the step that splits events exists");
    for (const step of MIGRATIONS.slice(0, partsStep)) old.exec(step);
    old.exec(`PRAGMA user_version = ${partsStep}`);
    const data = fc.sample(
      fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }),
      { numRuns: 200, seed: 42 },
    );
    data.push(
      { message: 'says "data": here', nested: { data: { data: 1 } } },
      { text: "é ü 😀 \u2028 \\ \n \t", big: 1e21, small: 5e-7, neg: -0 },
      {},
    );
    const at = (i: number) => iso(T0 + i * 1000);
    const envelopes = data.map((d, i) =>
      encodeEnvelope(i % 2 === 0 ? "progress" : "log.line", "old-job.1:a", i + 1, at(i), d)
    );
    old.prepare(
      `INSERT INTO jobs (id, status, created_at, updated_at, last_sequence, last_event_at)
       VALUES (?, 'running', ?, ?, ?, ?)`,
    ).run("old-job.1:a", at(0), at(0), envelopes.length, T0);
    const insert = old.prepare(
      "INSERT INTO events (job_id, sequence, type, envelope) VALUES (?, ?, ?, ?)",
    );
    envelopes.forEach((envelope, i) =>
      insert.run("old-job.1:a", i + 1, i % 2 === 0 ? "progress" : "log.line", envelope)
    );
    old.close();

    const store = openSqliteStore(dir, DEFAULTS);
    try {
      const read = store.readEvents("old-job.1:a", 0, 10_000);
      assert.equal(read.length, envelopes.length);
      read.forEach((event, i) => {
        assert.equal(event.sequence, i + 1);
        assert.equal(event.envelope, envelopes[i], `event ${i + 1}`);
        assert.deepEqual(JSON.parse(event.envelope).data, JSON.parse(JSON.stringify(data[i])));
      });
      // The job goes on after the migration, numbered after the old events.
      const outcome = store.appendBatch(
        [{ jobId: "old-job.1:a", events: [ev("log", { line: "after" })] }],
        T0 + 1_000_000,
      )[0]!;
      assert.ok(outcome.ok);
      assert.deepEqual(outcome.sequences, [envelopes.length + 1]);
      const [last] = store.readEvents("old-job.1:a", envelopes.length, 10);
      assert.equal(last?.envelope, outcome.committed[0]?.event.envelope);
      assert.deepEqual(JSON.parse(last!.envelope), {
        type: "log",
        job_id: "old-job.1:a",
        sequence: envelopes.length + 1,
        timestamp: iso(T0 + 1_000_000),
        data: { line: "after", level: "info" },
      });
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("under steady writes the checkpointer keeps the WAL file near its limit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-store-" });
  const limit = 1024 * 1024;
  const store = openSqliteStore(dir, { maxEventsPerJob: 1000, walLimitBytes: limit });
  const wal = join(dir, "jobwire.db-wal");
  try {
    create(store, "w");
    // 10,000 commits of 4 KB events, yielding now and then so the checkpointer runs.
    const line = "x".repeat(4000);
    let largest = 0;
    for (let i = 0; i < 10_000; i++) {
      // While the checkpointer empties the WAL it holds the write lock: wait, as the
      // committer does.
      for (;;) {
        try {
          ok(append(store, { jobId: "w", events: [log(`${i} ${line}`)] }));
          break;
        } catch (error) {
          if (!(error instanceof StoreBusyError)) throw error;
          await new Promise((r) => setTimeout(r, 2));
        }
      }
      if (i % 200 === 0) {
        largest = Math.max(largest, Deno.statSync(wal).size);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    largest = Math.max(largest, Deno.statSync(wal).size);
    // Each commit adds about 20 KB to the WAL (the row, its pages, the job, the oldest
    // events' removal): some 200 MB in all, of which the file holds what was written since
    // the last look at its size (every 100 ms), not everything.
    assert.ok(largest < 32 * limit, `WAL grew to ${largest} bytes`);
    assert.equal(store.getJob("w")?.last_sequence, 10_000);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two isolates committing at once keep the WAL file near its limit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-store-" });
  const limit = 1024 * 1024;
  const wal = join(dir, "jobwire.db-wal");
  // Made here, so that the writers find the schema in place.
  openSqliteStore(dir, { maxEventsPerJob: 1000, checkpoints: "elsewhere" }).close();
  const writers = ["a", "b"].map(() =>
    new Worker(new URL("./_wal_writer.ts", import.meta.url), { type: "module" })
  );
  const answer = <T>(worker: Worker) =>
    new Promise<T>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<T>) => resolve(e.data);
      worker.onerror = (e) => reject(e.error ?? e.message);
    });
  try {
    // Opened one after the other (making the job writes), then let go at once.
    for (const [i, worker] of writers.entries()) {
      const ready = answer<string>(worker);
      worker.postMessage({ dir, id: i === 0 ? "a" : "b", limit });
      assert.equal(await ready, "ready");
    }
    const done = writers.map((worker) => {
      const commits = answer<{ commits: number }>(worker).then((reply) => reply.commits);
      worker.postMessage({ ms: 2_500 });
      return commits;
    });
    let largest = 0;
    const sampler = setInterval(() => {
      try {
        largest = Math.max(largest, Deno.statSync(wal).size);
      } catch {
        // Not made yet.
      }
    }, 10);
    const commits = await Promise.all(done);
    clearInterval(sampler);
    // Some hundreds of megabytes went through the WAL; the file holds what came since the
    // last successful checkpoint.
    assert.ok(commits.every((n) => n > 500), `commits: ${commits}`);
    assert.ok(largest < 32 * limit, `WAL grew to ${largest} bytes (${commits} commits)`);
  } finally {
    for (const worker of writers) worker.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});

storeTest(
  "a lease is held against others until it runs out, and taken over when set by a clock ahead",
  (store) => {
    const now = 1_000_000;
    assert.equal(store.takeLease("sweeper", "a", now + 3000, now), true);
    assert.equal(store.takeLease("sweeper", "b", now + 1000 + 3000, now + 1000), false, "held");
    assert.equal(store.takeLease("sweeper", "a", now + 1000 + 3000, now + 1000), true, "renewed");
    assert.equal(store.takeLease("sweeper", "b", now + 5000 + 3000, now + 5000), true, "run out");
    // b's clock was a day ahead; back on time, c need not wait a day.
    assert.equal(store.takeLease("sweeper", "b", now + 86_400_000 + 3000, now + 86_400_000), true);
    assert.equal(
      store.takeLease("sweeper", "c", now + 6000 + 3000, now + 6000),
      true,
      "taken over",
    );
    assert.equal(store.takeLease("sweeper", "b", now + 6500 + 3000, now + 6500), false);
  },
);

// ---------------------------------------------------------------------------------------
// Reading in pages

/** The store, with the number of rows each read asked for. */
function countingReads(
  store: SqliteStore,
): { reads: number[]; readEvents: EventStore["readEvents"] } {
  const reads: number[] = [];
  return {
    reads,
    readEvents(jobId, after, limit) {
      reads.push(limit);
      return store.readEvents(jobId, after, limit);
    },
  };
}

storeTest(
  "readEventsWhile hands over every event in order, a few rows first and then many",
  (store) => {
    create(store, "small");
    for (let n = 0; n < 2500; n += 500) {
      ok(append(store, {
        jobId: "small",
        events: Array.from({ length: 500 }, (_, i) => log(n + i)),
      }));
    }
    const counting = countingReads(store);
    const seen: number[] = [];
    readEventsWhile(counting, "small", 0, 3000, (event) => {
      seen.push(event.sequence);
      return true;
    });
    assert.deepEqual(
      seen,
      Array.from({ length: 2500 }, (_, i) => i + 1),
    );
    assert.deepEqual(counting.reads, [64, 1000, 1000, 936]);
    const after: number[] = [];
    readEventsWhile(store, "small", 2490, 5, (event) => after.push(event.sequence) > 0);
    assert.deepEqual(after, [2491, 2492, 2493, 2494, 2495]);
  },
);

storeTest("readEventsWhile reads large events a few at a time and stops when told", (store) => {
  create(store, "large");
  const line = "x".repeat(60_000);
  for (let n = 0; n < 300; n += 50) {
    ok(append(store, { jobId: "large", events: Array.from({ length: 50 }, () => log(line)) }));
  }
  const counting = countingReads(store);
  let taken = 0;
  readEventsWhile(counting, "large", 0, 1000, () => ++taken < 100);
  assert.equal(taken, 100);
  // The first 64 rows, then about 4 MiB worth: not the 300 events of the job.
  assert.deepEqual(counting.reads, [64, 69]);
  const all = countingReads(store);
  let count = 0;
  readEventsWhile(all, "large", 0, 1000, () => ++count > 0);
  assert.equal(count, 300);
  assert.ok(all.reads.every((rows) => rows <= 69), all.reads.join());
  // Where events may be 16 MiB, the first read takes one row; the next are sized by it.
  const hinted = countingReads(store);
  let first = 0;
  readEventsWhile(hinted, "large", 0, 1000, () => ++first < 100, 16 * 1024 * 1024);
  assert.equal(first, 100);
  assert.deepEqual(hinted.reads, [1, 69, 69]);
});
