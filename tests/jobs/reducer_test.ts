import assert from "node:assert/strict";
import fc from "fast-check";
import type { JobRecord } from "../../src/jobs/job.ts";
import type { NewEvent } from "../../src/jobs/events.ts";
import { checkEvent } from "../../src/jobs/events.ts";
import {
  type Applied,
  applyEvent,
  estimateEta,
  isRefusal,
  type Refusal,
} from "../../src/jobs/reducer.ts";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

function newRecord(overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    id: "job-1",
    kind: null,
    owner: null,
    status: "pending",
    progress: 0,
    stage: null,
    message: null,
    eta_seconds: null,
    created_at: iso(T0),
    queued_at: null,
    started_at: null,
    updated_at: iso(T0),
    completed_at: null,
    result: null,
    error: null,
    metadata: {},
    last_sequence: 0,
    first_sequence: 1,
    stalled: false,
    eta_base_at: null,
    eta_base_progress: null,
    last_event_at: T0,
    ...overrides,
  };
}

/** A validated event, as the store would receive it. */
function ev(type: string, data: Record<string, unknown>): NewEvent {
  const check = checkEvent({ type, data });
  if (!check.ok) throw new TypeError(`test event is invalid: ${JSON.stringify(check.issues)}`);
  return check.event;
}

function applied(outcome: Applied | Refusal): Applied {
  if (isRefusal(outcome)) assert.fail(`expected the event to apply: ${outcome.message}`);
  return outcome;
}

function refused(outcome: Applied | Refusal): Refusal {
  if (!isRefusal(outcome)) assert.fail("expected a refusal");
  return outcome;
}

/** Applies events in turn, each at its own time, and returns the final record. */
function fold(record: JobRecord, steps: [NewEvent, number][]): JobRecord {
  let current = record;
  for (const [event, now] of steps) current = applied(applyEvent(current, event, now)).record;
  return current;
}

const status = (s: string) => ev("status", { status: s });

Deno.test("applyEvent increments last_sequence by one per event", () => {
  let record = newRecord();
  for (let i = 1; i <= 5; i++) {
    record = applied(applyEvent(record, ev("log", { line: `l${i}` }), T0 + i)).record;
    assert.equal(record.last_sequence, i);
  }
});

Deno.test("applyEvent sets updated_at and last_event_at to the event time", () => {
  const { record } = applied(applyEvent(newRecord(), ev("log", { line: "x" }), T0 + 5000));
  assert.equal(record.updated_at, iso(T0 + 5000));
  assert.equal(record.last_event_at, T0 + 5000);
  assert.equal(record.created_at, iso(T0));
});

Deno.test("applyEvent does not modify the record it is given", () => {
  const record = newRecord();
  const copy = structuredClone(record);
  applied(applyEvent(record, status("running"), T0 + 1000));
  applied(applyEvent(record, ev("progress", { progress: 50 }), T0 + 1000));
  assert.deepEqual(record, copy);
});

Deno.test("applyEvent moves the status and keeps the status message", () => {
  const { record } = applied(
    applyEvent(newRecord(), ev("status", { status: "queued", message: "waiting" }), T0 + 1),
  );
  assert.equal(record.status, "queued");
  assert.equal(record.message, "waiting");
});

Deno.test("applyEvent sets queued_at once when the job is queued", () => {
  const record = fold(newRecord(), [[status("queued"), T0 + 1000], [status("queued"), T0 + 2000]]);
  assert.equal(record.queued_at, iso(T0 + 1000));
  assert.equal(record.started_at, null);
  assert.equal(record.updated_at, iso(T0 + 2000));
});

Deno.test("applyEvent sets started_at once when the job starts running", () => {
  const record = fold(newRecord(), [
    [status("queued"), T0 + 1000],
    [status("running"), T0 + 2000],
    [status("running"), T0 + 3000],
  ]);
  assert.equal(record.queued_at, iso(T0 + 1000));
  assert.equal(record.started_at, iso(T0 + 2000));
  assert.equal(record.completed_at, null);
});

Deno.test("applyEvent leaves queued_at unset when a pending job starts running directly", () => {
  const record = fold(newRecord(), [[status("running"), T0 + 1000]]);
  assert.equal(record.queued_at, null);
  assert.equal(record.started_at, iso(T0 + 1000));
});

Deno.test("applyEvent sets completed_at on every terminal status", () => {
  for (const terminal of ["completed", "failed", "cancelled"]) {
    const record = fold(newRecord(), [[status("running"), T0 + 1000], [
      status(terminal),
      T0 + 9000,
    ]]);
    assert.equal(record.status, terminal);
    assert.equal(record.completed_at, iso(T0 + 9000), terminal);
  }
});

Deno.test("applyEvent sets completed_at when a pending job is cancelled or fails", () => {
  for (const terminal of ["failed", "cancelled"]) {
    const record = fold(newRecord(), [[status(terminal), T0 + 4000]]);
    assert.equal(record.completed_at, iso(T0 + 4000), terminal);
    assert.equal(record.started_at, null);
  }
});

Deno.test("applyEvent sets progress to 100 and eta to 0 when the job completes", () => {
  const record = fold(newRecord(), [
    [status("running"), T0],
    [ev("progress", { progress: 40 }), T0 + 10_000],
    [status("completed"), T0 + 20_000],
  ]);
  assert.equal(record.progress, 100);
  assert.equal(record.eta_seconds, 0);
});

Deno.test("applyEvent keeps progress and clears eta when the job fails", () => {
  const record = fold(newRecord(), [
    [status("running"), T0],
    [ev("progress", { progress: 40 }), T0 + 10_000],
    [status("failed"), T0 + 20_000],
  ]);
  assert.equal(record.progress, 40);
  assert.equal(record.eta_seconds, null);
});

Deno.test("applyEvent refuses any event with job_finished after a terminal status", () => {
  for (const terminal of ["completed", "failed", "cancelled"] as const) {
    const record = newRecord({ status: terminal, last_sequence: 3, completed_at: iso(T0) });
    for (
      const event of [
        status("running"),
        status(terminal),
        ev("log", { line: "late" }),
        ev("progress", { progress: 1 }),
        ev("result", { results: 1 }),
        ev("error", { error: "x" }),
        ev("custom.thing", {}),
      ]
    ) {
      const refusal = refused(applyEvent(record, event, T0 + 1));
      assert.equal(refusal.code, "job_finished", `${terminal} + ${event.type}`);
      assert.ok(refusal.message.includes("job-1"));
    }
  }
});

Deno.test("applyEvent refuses a status move the table forbids with invalid_transition", () => {
  const cases: [string, string][] = [
    ["running", "queued"],
    ["running", "pending"],
    ["queued", "pending"],
    ["pending", "completed"],
    ["queued", "completed"],
  ];
  for (const [from, to] of cases) {
    const record = newRecord({ status: from as JobRecord["status"] });
    const refusal = refused(applyEvent(record, status(to), T0 + 1));
    assert.equal(refusal.code, "invalid_transition", `${from} -> ${to}`);
    assert.ok(refusal.message.includes(from) && refusal.message.includes(to));
    // Completing a job that never started says how to start it.
    assert.equal(refusal.message.includes("start it first"), to === "completed", refusal.message);
  }
});

Deno.test("applyEvent sets progress, stage and message from a progress event", () => {
  const { record } = applied(
    applyEvent(
      newRecord({ status: "running", started_at: iso(T0) }),
      ev("progress", { progress: 45.5, stage: "MCMC", message: "sampling" }),
      T0 + 1000,
    ),
  );
  assert.equal(record.progress, 45.5);
  assert.equal(record.stage, "MCMC");
  assert.equal(record.message, "sampling");
});

Deno.test("applyEvent keeps the previous stage when a progress event has none", () => {
  const record = fold(newRecord({ status: "running", started_at: iso(T0) }), [
    [ev("progress", { progress: 10, stage: "load" }), T0 + 1000],
    [ev("progress", { progress: 20 }), T0 + 2000],
  ]);
  assert.equal(record.stage, "load");
  assert.equal(record.progress, 20);
});

Deno.test("estimateEta extrapolates the average rate since the base point", () => {
  assert.equal(estimateEta(T0, 0, T0 + 10_000, 25), 30);
  assert.equal(estimateEta(T0, 0, T0 + 10_000, 50), 10);
  assert.equal(estimateEta(T0, 20, T0 + 20_000, 40), 60);
  assert.equal(estimateEta(0, 10, 30_000, 70), 15);
});

Deno.test("estimateEta returns 0 at 100 percent", () => {
  assert.equal(estimateEta(T0, 0, T0 + 10_000, 100), 0);
  assert.equal(estimateEta(T0, 100, T0, 100), 0);
});

Deno.test("estimateEta returns null when too little progress or time has passed", () => {
  assert.equal(estimateEta(T0, 10, T0 + 60_000, 10), null);
  assert.equal(estimateEta(T0, 10, T0 + 60_000, 10.4), null);
  assert.equal(estimateEta(T0, 0, T0 + 500, 50), null);
  assert.equal(estimateEta(T0, 50, T0 + 60_000, 40), null);
});

Deno.test("applyEvent estimates the eta from the start time and the progress rate", () => {
  const started = fold(newRecord(), [[status("running"), T0]]);
  const { record, data } = applied(
    applyEvent(started, ev("progress", { progress: 25 }), T0 + 10_000),
  );
  assert.equal(record.eta_seconds, 30);
  assert.equal(data.eta_seconds, 30);
  assert.equal(data.eta_estimated, true);
  assert.equal(data.percentage, "25%");
  const later = applied(applyEvent(record, ev("progress", { progress: 50 }), T0 + 20_000));
  assert.equal(later.record.eta_seconds, 20);
});

Deno.test("applyEvent measures the eta from the first report when the job has not started", () => {
  const first = applied(applyEvent(newRecord(), ev("progress", { progress: 10 }), T0));
  assert.equal(first.record.eta_seconds, null);
  assert.equal(first.data.eta_estimated, undefined);
  assert.equal(first.data.eta_seconds, undefined);
  const second = applied(applyEvent(first.record, ev("progress", { progress: 30 }), T0 + 10_000));
  assert.equal(second.record.eta_seconds, 35);
});

Deno.test("applyEvent restarts the eta base point when progress goes backwards", () => {
  const record = fold(newRecord(), [
    [ev("progress", { progress: 50 }), T0 + 10_000],
    [ev("progress", { progress: 10 }), T0 + 20_000],
  ]);
  assert.equal(record.eta_base_at, T0 + 20_000);
  assert.equal(record.eta_base_progress, 10);
  const next = applied(applyEvent(record, ev("progress", { progress: 20 }), T0 + 30_000));
  assert.equal(next.record.eta_seconds, 80);
});

Deno.test("applyEvent keeps a producer eta_seconds instead of estimating", () => {
  const started = fold(newRecord(), [[status("running"), T0]]);
  const { record, data } = applied(
    applyEvent(started, ev("progress", { progress: 25, eta_seconds: 999 }), T0 + 10_000),
  );
  assert.equal(record.eta_seconds, 999);
  assert.equal(data.eta_seconds, 999);
  assert.equal(data.eta_estimated, undefined);
});

Deno.test("applyEvent sets the result from a result event", () => {
  const { record } = applied(
    applyEvent(newRecord({ status: "running" }), ev("result", { results: { auc: 0.9 } }), T0),
  );
  assert.deepEqual(record.result, { auc: 0.9 });
});

Deno.test("applyEvent sets the result from the result alias", () => {
  const { record } = applied(
    applyEvent(newRecord({ status: "running" }), ev("result", { result: [1, 2] }), T0),
  );
  assert.deepEqual(record.result, [1, 2]);
});

Deno.test("applyEvent sets the error with its type and details from an error event", () => {
  const { record } = applied(
    applyEvent(
      newRecord({ status: "running" }),
      ev("error", { error: "disk full", error_type: "system_error", details: { free: 0 } }),
      T0,
    ),
  );
  assert.deepEqual(record.error, {
    error: "disk full",
    error_type: "system_error",
    details: { free: 0 },
  });
  assert.equal(record.status, "running");
});

Deno.test("applyEvent records the default error_type general and no details", () => {
  const { record } = applied(
    applyEvent(newRecord({ status: "running" }), ev("error", { error: "oops" }), T0),
  );
  assert.deepEqual(record.error, { error: "oops", error_type: "general" });
});

Deno.test("applyEvent clears the stalled flag on any event", () => {
  const events = [
    ev("log", { line: "alive" }),
    ev("progress", { progress: 5 }),
    ev("custom.beat", {}),
    status("running"),
  ];
  for (const event of events) {
    const record = newRecord({ status: "running", started_at: iso(T0), stalled: true });
    assert.equal(applied(applyEvent(record, event, T0 + 1000)).record.stalled, false, event.type);
  }
});

Deno.test("applyEvent leaves the snapshot unchanged by log and custom events", () => {
  const record = newRecord({ status: "running", progress: 30, stage: "s", message: "m" });
  for (
    const event of [ev("log", { line: "x", level: "error" }), ev("custom.thing", { progress: 99 })]
  ) {
    const next = applied(applyEvent(record, event, T0 + 1000)).record;
    assert.equal(next.status, "running");
    assert.equal(next.progress, 30);
    assert.equal(next.stage, "s");
    assert.equal(next.message, "m");
    assert.equal(next.result, null);
    assert.equal(next.error, null);
  }
});

Deno.test("applyEvent returns the event data to persist unchanged for non-progress events", () => {
  const event = ev("log", { line: "x", level: "warn" });
  const { data } = applied(applyEvent(newRecord(), event, T0));
  assert.deepEqual(data, { line: "x", level: "warning" });
});

Deno.test("applyEvent keeps the snapshot invariants over any sequence of valid events", () => {
  const eventArb = fc.oneof(
    fc.constantFrom(
      "pending",
      "queued",
      "running",
      "completed",
      "failed",
      "cancelled",
      "in_progress",
      "processed",
    ).map((s) => ev("status", { status: s })),
    fc.double({ min: 0, max: 100, noNaN: true }).map((p) => ev("progress", { progress: p })),
    fc.tuple(fc.nat(1000), fc.integer({ min: 1, max: 1000 })).map(([current, total]) =>
      ev("progress", { current, total })
    ),
    fc.nat(10_000).map((s) => ev("progress", { progress: 50, eta_seconds: s })),
    fc.string().map((line) => ev("log", { line })),
    fc.jsonValue().map((results) => ev("result", { results })),
    fc.string({ minLength: 1 }).map((error) => ev("error", { error })),
  );
  const stepArb = fc.tuple(eventArb, fc.integer({ min: 0, max: 120_000 }));
  fc.assert(
    fc.property(fc.array(stepArb, { maxLength: 40 }), (steps) => {
      let record = newRecord();
      let now = T0;
      let applied = 0;
      for (const [event, gap] of steps) {
        now += gap;
        const wasTerminal = ["completed", "failed", "cancelled"].includes(record.status);
        const outcome = applyEvent(record, event, now);
        if (isRefusal(outcome)) {
          if (wasTerminal) assert.equal(outcome.code, "job_finished");
          else assert.equal(outcome.code, "invalid_transition");
          continue;
        }
        assert.equal(wasTerminal, false, "a terminal job accepted an event");
        record = outcome.record;
        applied++;
        assert.equal(record.last_sequence, applied);
        assert.equal(record.updated_at, iso(now));
        assert.ok(record.progress >= 0 && record.progress <= 100, `progress ${record.progress}`);
        assert.ok(
          record.eta_seconds === null ||
            (Number.isFinite(record.eta_seconds) && record.eta_seconds >= 0),
          `eta ${record.eta_seconds}`,
        );
        const terminal = ["completed", "failed", "cancelled"].includes(record.status);
        assert.equal(record.completed_at !== null, terminal);
        if (record.status === "completed") assert.equal(record.progress, 100);
        if (record.started_at !== null && record.queued_at !== null) {
          assert.ok(record.queued_at <= record.started_at);
        }
        assert.equal(record.stalled, false);
      }
    }),
    { numRuns: 300 },
  );
});
