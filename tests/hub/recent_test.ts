import assert from "node:assert/strict";
import { eventCost, RecentEvents, RecentRun } from "../../src/hub/recent.ts";
import type { StoredEvent } from "../../src/jobs/envelope.ts";

/** An event whose envelope is 36 characters, as every event here: each costs {@link C}. */
function event(sequence: number): StoredEvent {
  return {
    job_id: "j",
    sequence,
    type: "log",
    envelope: `{"sequence":${String(sequence).padStart(6, "0")},"x":"abcdefghij"}`,
  };
}

/** What one event is counted for. */
const C = eventCost(event(1));

const events = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => event(from + i));

const sequences = (run: RecentRun) => run.events.map((e) => e.sequence);

Deno.test("recent events: an event that does not follow the run starts it again", () => {
  const recent = new RecentEvents({ events: 100, bytes: 100_000 });
  const run = new RecentRun();
  for (const e of events(1, 3)) recent.append(run, e);
  recent.append(run, event(7));
  assert.deepEqual(sequences(run), [7]);
  assert.equal(recent.bytes, run.bytes);
  assert.equal(run.bytes, C);
});

Deno.test("recent events: a run keeps the newest events, trimmed a quarter past its bound", () => {
  const recent = new RecentEvents({ events: 8, bytes: 100_000 });
  const run = new RecentRun();
  for (const e of events(1, 10)) recent.append(run, e);
  assert.deepEqual(sequences(run), events(1, 10).map((e) => e.sequence));
  recent.append(run, event(11));
  assert.deepEqual(sequences(run), [4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(recent.bytes, 8 * C);
});

Deno.test("recent events: prepend takes only events that end right before the run", () => {
  const recent = new RecentEvents({ events: 100, bytes: 100_000 });
  const run = new RecentRun();
  recent.prepend(run, events(5, 9));
  assert.deepEqual(sequences(run), [5, 6, 7, 8, 9]);
  recent.prepend(run, events(1, 3));
  assert.deepEqual(sequences(run), [5, 6, 7, 8, 9]);
  recent.prepend(run, [event(1), event(2), event(4)]);
  assert.deepEqual(sequences(run), [5, 6, 7, 8, 9]);
  recent.prepend(run, events(2, 4));
  assert.deepEqual(sequences(run), [2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(recent.bytes, 8 * C);
});

Deno.test("recent events: prepend keeps the newest of what was read, within the run's bound", () => {
  const recent = new RecentEvents({ events: 4, bytes: 100_000 });
  const run = new RecentRun();
  recent.prepend(run, events(1, 10));
  assert.deepEqual(sequences(run), [7, 8, 9, 10]);
  recent.prepend(run, events(1, 6));
  assert.deepEqual(sequences(run), [7, 8, 9, 10]);
  assert.equal(recent.bytes, 4 * C);
});

Deno.test("recent events: past the byte bound the run started longest ago goes whole", () => {
  const recent = new RecentEvents({ events: 100, bytes: 10 * C });
  const [a, b, c] = [new RecentRun(), new RecentRun(), new RecentRun()];
  recent.prepend(a, events(1, 4));
  recent.prepend(b, events(1, 4));
  assert.equal(recent.bytes, 8 * C);
  recent.prepend(c, events(1, 3));
  assert.deepEqual(sequences(a), []);
  assert.deepEqual(sequences(b), [1, 2, 3, 4]);
  assert.deepEqual(sequences(c), [1, 2, 3]);
  assert.equal(recent.bytes, 7 * C);
  recent.release(b);
  assert.equal(recent.bytes, 3 * C);
  recent.clear();
  assert.equal(recent.bytes, 0);
  assert.deepEqual(sequences(c), []);
});

Deno.test("recent events: a run alone over the byte bound keeps its newest events", () => {
  const recent = new RecentEvents({ events: 100, bytes: 10 * C });
  const [a, b] = [new RecentRun(), new RecentRun()];
  recent.prepend(a, events(1, 2));
  for (const e of events(1, 10)) recent.append(b, e);
  assert.deepEqual(sequences(a), []);
  assert.deepEqual(sequences(b), events(1, 10).map((e) => e.sequence));
  assert.equal(recent.bytes, 10 * C);
  // Over the bound: down to three quarters of it, the newest kept.
  recent.append(b, event(11));
  assert.deepEqual(sequences(b), [5, 6, 7, 8, 9, 10, 11]);
  assert.equal(recent.bytes, 7 * C);
});

Deno.test("recent events: a byte bound of 0 keeps nothing", () => {
  const recent = new RecentEvents({ events: 100, bytes: 0 });
  const run = new RecentRun();
  recent.append(run, event(1));
  recent.prepend(run, events(1, 3));
  assert.deepEqual(sequences(run), []);
  assert.equal(recent.bytes, 0);
});
