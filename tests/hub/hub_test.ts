import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_RECENT,
  type FirehoseSubscriber,
  Hub,
  type HubOptions,
  type ReplayInfo,
  type Subscriber,
} from "../../src/hub/hub.ts";
import { FakeFanout } from "../_helpers/fake_fanout.ts";
import type { WireEvent } from "../../src/hub/wire_event.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite_store.ts";
import type { CommittedEvent } from "../../src/store/event_store.ts";
import { checkEvent, type NewEvent } from "../../src/jobs/events.ts";
import { type Job, type JobRecord, publicJob } from "../../src/jobs/job.ts";
import type { RecentLimits } from "../../src/hub/recent.ts";

const T0_ISO = "2026-01-01T00:00:00.000Z";
const T0 = Date.parse(T0_ISO);

/** Records what one subscriber receives. */
class Recorder implements Subscriber {
  cursor = -1;
  events: WireEvent[] = [];
  ended: string[] = [];
  deliver(event: WireEvent): void {
    this.events.push(event);
  }
  end(reason: string): void {
    this.ended.push(reason);
  }
  get sequences(): number[] {
    return this.events.map((e) => e.sequence);
  }
  /** The `line` of each log event received. */
  get lines(): string[] {
    return this.events.map((e) => JSON.parse(e.envelope).data.line);
  }
}

/** Records what one firehose subscriber receives. */
class FirehoseRecorder implements FirehoseSubscriber {
  events: WireEvent[] = [];
  createdJobs: Job[] = [];
  deletedIds: string[] = [];
  /** Everything in the order it came: `created x`, `x:1`, `deleted x`. */
  order: string[] = [];
  deliver(event: WireEvent): void {
    this.events.push(event);
    this.order.push(`${event.jobId}:${event.sequence}`);
  }
  created(job: Job): void {
    this.createdJobs.push(job);
    this.order.push(`created ${job.id}`);
  }
  deleted(jobId: string): void {
    this.deletedIds.push(jobId);
    this.order.push(`deleted ${jobId}`);
  }
}

const firehose = () => new FirehoseRecorder();

function log(line: string | number): NewEvent {
  const check = checkEvent({ type: "log", data: { line: String(line) } });
  if (!check.ok) throw new TypeError("invalid test event");
  return check.event;
}

function progress(p: number): NewEvent {
  const check = checkEvent({ type: "progress", data: { progress: p } });
  if (!check.ok) throw new TypeError("invalid test event");
  return check.event;
}

function status(s: string): NewEvent {
  const check = checkEvent({ type: "status", data: { status: s } });
  if (!check.ok) throw new TypeError("invalid test event");
  return check.event;
}

interface Fixture {
  store: SqliteStore;
  fanout: FakeFanout;
  hub: Hub;
}

function withHub(
  fn: (f: Fixture) => void,
  maxEventsPerJob = 100_000,
  options: HubOptions = {},
): void {
  const store = openSqliteStore(":memory:", { maxEventsPerJob });
  try {
    const fanout = new FakeFanout();
    const hub = new Hub(store, fanout, options);
    fn({ store, fanout, hub });
  } finally {
    store.close();
  }
}

function createJob(store: SqliteStore, id: string, at = T0): JobRecord {
  const outcome = store.createJob({ id, kind: null, owner: null, metadata: {} }, at);
  if (!outcome.ok) assert.fail(`could not create ${id}`);
  return outcome.job;
}

/** Commits events to the store only, as another isolate would. */
function commit(store: SqliteStore, jobId: string, ...events: NewEvent[]): CommittedEvent[] {
  const [outcome] = store.appendBatch([{ jobId, events }], T0);
  if (outcome === undefined || !outcome.ok) assert.fail("commit refused");
  return outcome.committed;
}

/** Commits events and hands them to the hub, as this isolate's publish path does. */
function publish(f: Fixture, jobId: string, ...events: NewEvent[]): CommittedEvent[] {
  const committed = commit(f.store, jobId, ...events);
  f.hub.publishLocal([committed]);
  return committed;
}

const logs = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => log(from + i));

function subscribe(
  hub: Hub,
  jobId: string,
  since: number | null,
  window = 100,
): { recorder: Recorder; replay: ReplayInfo; job: JobRecord } {
  const recorder = new Recorder();
  const joined = hub.subscribe(jobId, recorder, since, window, () => {});
  if (joined === undefined) assert.fail(`no job ${jobId}`);
  return { recorder, replay: joined.replay, job: joined.job };
}

/** Counts the store's event reads from now on. */
function countReads(store: SqliteStore): () => number {
  let reads = 0;
  const read = store.readEvents.bind(store);
  store.readEvents = (...args) => {
    reads++;
    return read(...args);
  };
  return () => reads;
}

/** The envelopes the store holds for a job, by sequence. */
function storedEnvelopes(store: SqliteStore, jobId: string): Map<number, string> {
  return new Map(store.readEvents(jobId, 0, 1_000_000).map((e) => [e.sequence, e.envelope]));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

// ---------------------------------------------------------------------------------------
// Joining and replay

Deno.test("hub subscribe returns undefined and registers nothing when the job does not exist", () => {
  withHub(({ hub }) => {
    const recorder = new Recorder();
    let called = false;
    assert.equal(hub.subscribe("ghost", recorder, null, 100, () => (called = true)), undefined);
    assert.equal(called, false);
    assert.equal(hub.watchers("ghost"), 0);
    assert.deepEqual(recorder.events, []);
  });
});

Deno.test("hub subscribe replays events after since, then delivers live events once in order", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 5));
    const { recorder, replay, job } = subscribe(f.hub, "j", 2);
    assert.deepEqual(replay, {
      since: 2,
      count: 3,
      from: 3,
      to: 5,
      truncated: false,
      first_available: 1,
    });
    assert.equal(job.last_sequence, 5);
    assert.deepEqual(recorder.sequences, [3, 4, 5]);
    assert.equal(recorder.cursor, 5);
    publish(f, "j", log(6));
    publish(f, "j", log(7), log(8));
    assert.deepEqual(recorder.sequences, [3, 4, 5, 6, 7, 8]);
    assert.equal(recorder.cursor, 8);
    assert.deepEqual(recorder.lines, ["3", "4", "5", "6", "7", "8"]);
  });
});

Deno.test("hub subscribe calls beforeReplay with the job and replay info before any event", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 3));
    const order: string[] = [];
    const subscriber: Subscriber = {
      cursor: 0,
      deliver: (e) => order.push(`event ${e.sequence}`),
      end: () => {},
    };
    f.hub.subscribe("j", subscriber, 1, 100, (job, replay) => {
      order.push(`before ${job.last_sequence} ${replay.count}`);
    });
    assert.deepEqual(order, ["before 3 2", "event 2", "event 3"]);
  });
});

Deno.test("hub subscribe attaches the job snapshot to the last replayed event only", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", status("running"), log(2), log(3));
    const { recorder } = subscribe(f.hub, "j", 0);
    assert.deepEqual(recorder.events.map((e) => e.job?.last_sequence), [undefined, undefined, 3]);
  });
});

Deno.test("hub subscribe without since replays the last window events", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 10));
    const { recorder, replay } = subscribe(f.hub, "j", null, 3);
    assert.deepEqual(recorder.sequences, [8, 9, 10]);
    assert.deepEqual(replay, {
      since: null,
      count: 3,
      from: 8,
      to: 10,
      truncated: false,
      first_available: 1,
    });
  });
});

Deno.test("hub subscribe without since replays everything when the job has fewer events", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 2));
    const { recorder, replay } = subscribe(f.hub, "j", null, 100);
    assert.deepEqual(recorder.sequences, [1, 2]);
    assert.equal(replay.truncated, false);
  });
});

Deno.test("hub subscribe with since at the last sequence replays nothing and continues live", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 4));
    const { recorder, replay } = subscribe(f.hub, "j", 4);
    assert.deepEqual(replay, {
      since: 4,
      count: 0,
      from: null,
      to: null,
      truncated: false,
      first_available: 1,
    });
    assert.deepEqual(recorder.sequences, []);
    publish(f, "j", log(5));
    assert.deepEqual(recorder.sequences, [5]);
  });
});

Deno.test("hub subscribe marks a since beyond the last sequence truncated and continues from now", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 3));
    const { recorder, replay } = subscribe(f.hub, "j", 50);
    assert.equal(replay.truncated, true);
    assert.equal(replay.count, 0);
    assert.deepEqual(recorder.sequences, []);
    publish(f, "j", log(4));
    assert.deepEqual(recorder.sequences, [4]);
  });
});

Deno.test("hub subscribe marks a since older than the retained events truncated", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 10));
    const { recorder, replay } = subscribe(f.hub, "j", 2);
    assert.deepEqual(replay, {
      since: 2,
      count: 4,
      from: 7,
      to: 10,
      truncated: true,
      first_available: 7,
    });
    assert.deepEqual(recorder.sequences, [7, 8, 9, 10]);
  }, 4);
});

Deno.test("hub subscribe with since just before the first retained event is not truncated", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 10));
    const { recorder, replay } = subscribe(f.hub, "j", 6);
    assert.equal(replay.truncated, false);
    assert.deepEqual(recorder.sequences, [7, 8, 9, 10]);
  }, 4);
});

Deno.test("hub subscribe replays long histories in order across store pages", () => {
  withHub((f) => {
    createJob(f.store, "j");
    commit(f.store, "j", ...logs(1, 2500));
    const { recorder, replay } = subscribe(f.hub, "j", 0);
    assert.equal(replay.count, 2500);
    assert.deepEqual(recorder.sequences, range(1, 2500));
  });
});

// ---------------------------------------------------------------------------------------
// Recent events kept in memory for replays

/** Envelopes a subscriber received, and what the store holds for the same sequences. */
function sameAsStore(f: Fixture, jobId: string, recorder: Recorder): void {
  const stored = storedEnvelopes(f.store, jobId);
  assert.deepEqual(
    recorder.events.map((e) => e.envelope),
    recorder.sequences.map((seq) => stored.get(seq)),
  );
}

Deno.test("hub replays events published here from memory, without reading the store", () => {
  withHub((f) => {
    createJob(f.store, "j");
    publish(f, "j", ...logs(1, 30));
    const reads = countReads(f.store);
    const { recorder, replay } = subscribe(f.hub, "j", 4);
    assert.equal(reads(), 0);
    assert.equal(f.hub.counts.replayedFromMemory, 26);
    assert.equal(f.hub.counts.replayedFromStore, 0);
    assert.equal(replay.count, 26);
    assert.deepEqual(recorder.sequences, range(5, 30));
    sameAsStore(f, "j", recorder);
    assert.equal(recorder.events.at(-1)!.job?.last_sequence, 30);
    assert.ok(f.hub.recentBytes > 0);
  });
});

Deno.test("hub replays the older part from the store and the newest from memory", () => {
  withHub(
    (f) => {
      createJob(f.store, "j");
      publish(f, "j", ...logs(1, 30));
      const reads = countReads(f.store);
      const { recorder } = subscribe(f.hub, "j", 0);
      assert.equal(reads(), 1);
      // At most 10 kept, and up to a quarter more between trims.
      const { replayedFromMemory, replayedFromStore } = f.hub.counts;
      assert.ok(replayedFromMemory >= 10 && replayedFromMemory <= 12, `${replayedFromMemory}`);
      assert.equal(replayedFromMemory + replayedFromStore, 30);
      assert.deepEqual(recorder.sequences, range(1, 30));
      sameAsStore(f, "j", recorder);
    },
    100_000,
    { recent: { events: 10, bytes: 1_000_000 } },
  );
});

Deno.test("hub keeps what a replay read from the store for the next replay", () => {
  withHub((f) => {
    f.hub.jobCreated(createJob(f.store, "j"));
    // Committed elsewhere while nobody here followed the job: nothing kept here yet.
    f.fanout.remote(commit(f.store, "j", ...logs(1, 20)));
    assert.equal(f.hub.recentBytes, 0);
    const reads = countReads(f.store);
    const first = subscribe(f.hub, "j", 0).recorder;
    assert.equal(reads(), 1);
    const second = subscribe(f.hub, "j", 3).recorder;
    assert.equal(reads(), 1);
    assert.deepEqual(second.sequences, range(4, 20));
    // Live events extend what is kept.
    publish(f, "j", log(21));
    const third = subscribe(f.hub, "j", 18).recorder;
    assert.equal(reads(), 1);
    assert.deepEqual(third.sequences, [19, 20, 21]);
    for (const recorder of [first, second, third]) sameAsStore(f, "j", recorder);
  });
});

Deno.test("hub reads from the store the newest events that have not reached this isolate", () => {
  withHub((f) => {
    createJob(f.store, "j");
    publish(f, "j", ...logs(1, 10));
    // Committed elsewhere; the commit message is still on its way.
    const inFlight = commit(f.store, "j", ...logs(11, 13));
    const reads = countReads(f.store);
    const { recorder } = subscribe(f.hub, "j", 5);
    assert.equal(reads(), 1);
    assert.equal(f.hub.counts.replayedFromMemory, 5);
    assert.equal(f.hub.counts.replayedFromStore, 3);
    assert.deepEqual(recorder.sequences, range(6, 13));
    sameAsStore(f, "j", recorder);
    f.fanout.remote(inFlight);
    publish(f, "j", log(14));
    assert.deepEqual(recorder.sequences, range(6, 14));
  });
});

Deno.test("hub starts its kept events again when a replay read ahead of this isolate", () => {
  withHub((f) => {
    f.hub.jobCreated(createJob(f.store, "j"));
    f.fanout.remote(commit(f.store, "j", ...logs(1, 3)));
    // 4 and 5 are committed elsewhere and still on their way when a replay reads them.
    const inFlight = commit(f.store, "j", ...logs(4, 5));
    const early = subscribe(f.hub, "j", 0).recorder;
    f.fanout.remote(inFlight);
    publish(f, "j", log(6));
    const late = subscribe(f.hub, "j", 0).recorder;
    assert.deepEqual(early.sequences, range(1, 6));
    assert.deepEqual(late.sequences, range(1, 6));
    sameAsStore(f, "j", late);
  });
});

Deno.test("hub never replays a deleted job's events for a new job with the same id", () => {
  withHub((f) => {
    createJob(f.store, "j");
    subscribe(f.hub, "j", 0);
    publish(f, "j", ...logs(1, 10));
    // Another isolate deletes the job and makes it again; its notices have not arrived.
    assert.ok(f.store.deleteJob("j", T0 + 1000));
    createJob(f.store, "j", T0 + 2000);
    commit(f.store, "j", ...logs(101, 112));
    const { recorder } = subscribe(f.hub, "j", 0);
    assert.deepEqual(recorder.sequences, range(1, 12));
    sameAsStore(f, "j", recorder);
    assert.match(recorder.events[0]!.envelope, /"line":"101"/);
  });
});

Deno.test("hub never replays an earlier job's events made again within the same millisecond", () => {
  withHub((f) => {
    createJob(f.store, "j");
    subscribe(f.hub, "j", 0);
    publish(f, "j", ...logs(1, 10));
    // Deleted and made again on another isolate within the millisecond the first was
    // made in; the notices have not arrived.
    const at = T0;
    assert.ok(f.store.deleteJob("j", at));
    createJob(f.store, "j", at);
    commit(f.store, "j", ...logs(101, 105));
    const { recorder } = subscribe(f.hub, "j", 0);
    assert.deepEqual(recorder.sequences, range(1, 5));
    sameAsStore(f, "j", recorder);
  });
});

for (const carry of [true, false]) {
  Deno.test(
    `hub drops a late commit message of an earlier job under the same id (${
      carry ? "carried" : "read from the store"
    })`,
    () => {
      withHub((f) => {
        f.hub.jobCreated(createJob(f.store, "j"));
        // Another isolate commits events 1..5 of the first job; its message is on its way.
        const earlier = commit(f.store, "j", ...logs(1, 5));
        // A third deletes the job and makes it again; its notices arrive first.
        assert.ok(f.store.deleteJob("j", T0 + 1000));
        f.fanout.remoteNotice({ kind: "deleted", jobId: "j" });
        f.fanout.remoteNotice({ kind: "created", job: createJob(f.store, "j", T0 + 1000) });
        const live = subscribe(f.hub, "j", 0).recorder;
        const all = firehose();
        f.hub.subscribeAll(all);
        f.fanout.remote(earlier, carry);
        assert.deepEqual(live.events, []);
        assert.deepEqual(all.events, []);
        f.fanout.remote(commit(f.store, "j", ...logs(101, 107)), carry);
        const late = subscribe(f.hub, "j", 0).recorder;
        assert.deepEqual(live.sequences, range(1, 7));
        assert.deepEqual(late.sequences, range(1, 7));
        sameAsStore(f, "j", live);
        sameAsStore(f, "j", late);
        assert.match(late.events[0]!.envelope, /"line":"101"/);
      });
    },
  );
}

for (const carry of [true, false]) {
  Deno.test(
    `hub follows a job made again after a late message of the deleted one (${
      carry ? "carried" : "read from the store"
    })`,
    () => {
      withHub((f) => {
        f.hub.jobCreated(createJob(f.store, "j"));
        const old = subscribe(f.hub, "j", 0).recorder;
        // Another isolate commits 1..5 of the first job; a third deletes it, and the delete
        // notice overtakes the commit message.
        const earlier = commit(f.store, "j", ...logs(1, 5));
        assert.ok(f.store.deleteJob("j", T0 + 1000));
        f.fanout.remoteNotice({ kind: "deleted", jobId: "j" });
        assert.deepEqual(old.ended, ["job deleted"]);
        f.fanout.remote(earlier, carry);
        assert.equal(f.hub.lastSequence("j"), undefined, "no channel for a deleted job");
        // Made again; this time the late message comes after the new job is in the store.
        const again = createJob(f.store, "j", T0 + 2000);
        f.fanout.remote(earlier, carry);
        f.fanout.remoteNotice({ kind: "created", job: again });
        const live = subscribe(f.hub, "j", 0).recorder;
        f.fanout.remote(commit(f.store, "j", ...logs(101, 103)), carry);
        publish(f, "j", ...logs(104, 105));
        assert.deepEqual(live.sequences, range(1, 5));
        sameAsStore(f, "j", live);
        assert.equal(f.hub.lastSequence("j"), 5);
        assert.deepEqual(old.events.map((e) => e.sequence), []);
      });
    },
  );
}

Deno.test("hub replaces a channel left from a deleted job when the job is made again", () => {
  withHub((f) => {
    f.hub.jobCreated(createJob(f.store, "j"));
    const old = subscribe(f.hub, "j", 0).recorder;
    publish(f, "j", ...logs(1, 8));
    // Deleted and made again elsewhere; no notice has come: the channel still says 8.
    assert.ok(f.store.deleteJob("j", T0 + 1000));
    const again = createJob(f.store, "j", T0 + 2000);
    // Whatever shows the new job first replaces the channel: here, this isolate's publish.
    publish(f, "j", ...logs(101, 102));
    assert.deepEqual(old.ended, ["job deleted"], "the old job's subscriber was ended");
    assert.deepEqual(old.sequences, range(1, 8));
    const live = subscribe(f.hub, "j", 0).recorder;
    f.fanout.remoteNotice({ kind: "created", job: again });
    publish(f, "j", log(103));
    assert.deepEqual(live.sequences, range(1, 3));
    sameAsStore(f, "j", live);
  });
});

Deno.test("hub hands another isolate the job's state with a request's last state change, though logs follow it", () => {
  withHub((f) => {
    createJob(f.store, "j");
    // This hub publishes; a second hub on the same store plays the other isolate.
    const fanout = new FakeFanout();
    const other = new Hub(f.store, fanout);
    const { recorder } = subscribe(other, "j", 0);
    for (const batch of [[progress(10), log(1)], [progress(20), log(2), log(3)], [log(4)]]) {
      f.hub.publishLocal([commit(f.store, "j", ...batch)]);
      fanout.receive(f.fanout.published.at(-1)!);
    }
    const states = recorder.events.filter((e) => e.job !== undefined).map((
      e,
    ) => [e.sequence, e.job!.progress]);
    assert.deepEqual(states, [[1, 10], [3, 20]]);
    assert.deepEqual(recorder.sequences, range(1, 6));
  });
});

Deno.test("hub filling a gap from the store hands the job's state with the last state change", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    // Another isolate's message carries no events: they are read back.
    f.fanout.remote(commit(f.store, "j", status("running"), progress(30), log(1), log(2)));
    const states = recorder.events.filter((e) => e.job !== undefined).map((
      e,
    ) => [e.sequence, e.job!.progress, e.job!.status]);
    assert.deepEqual(states, [[2, 30, "running"]]);
    assert.deepEqual(recorder.sequences, range(1, 4));
  });
});

Deno.test("hub keeps at most the byte bound of recent events, dropping the oldest runs first", () => {
  withHub(
    (f) => {
      for (const id of ["a", "b", "c"]) {
        createJob(f.store, id);
        publish(f, id, ...logs(1, 5));
      }
      // Five events of each job take about 1,900 bytes: two jobs' fit, three do not.
      assert.ok(f.hub.recentBytes > 0 && f.hub.recentBytes <= 5000, `${f.hub.recentBytes}`);
      // "a" was dropped: its replay reads the store, "c" is still in memory.
      const reads = countReads(f.store);
      const c = subscribe(f.hub, "c", 0).recorder;
      assert.equal(reads(), 0);
      const a = subscribe(f.hub, "a", 0).recorder;
      assert.equal(reads(), 1);
      assert.deepEqual(a.sequences, range(1, 5));
      sameAsStore(f, "a", a);
      sameAsStore(f, "c", c);
    },
    100_000,
    { recent: { events: 100, bytes: 5000 } },
  );
});

Deno.test("hub lets go of a job's recent events when the job finishes or is deleted", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    publish(f, "a", ...logs(1, 5));
    const held = f.hub.recentBytes;
    publish(f, "b", ...logs(1, 5));
    assert.ok(f.hub.recentBytes > held);
    publish(f, "b", status("running"), status("completed"));
    assert.equal(f.hub.recentBytes, held);
    f.hub.jobDeleted("a", "job deleted");
    assert.equal(f.hub.recentBytes, 0);
  });
});

Deno.test("hub keeps nothing in memory when the byte bound is 0", () => {
  withHub(
    (f) => {
      createJob(f.store, "j");
      publish(f, "j", ...logs(1, 5));
      assert.equal(f.hub.recentBytes, 0);
      const reads = countReads(f.store);
      const { recorder } = subscribe(f.hub, "j", 0);
      subscribe(f.hub, "j", 0);
      assert.equal(reads(), 2);
      sameAsStore(f, "j", recorder);
    },
    100_000,
    { recent: { events: 100, bytes: 0 } },
  );
});

// ---------------------------------------------------------------------------------------
// Local publishing and the fanout

Deno.test("hub publishLocal tells the fanout what each request added, carrying small ones", () => {
  withHub((f) => {
    createJob(f.store, "j");
    createJob(f.store, "k");
    createJob(f.store, "big");
    const j = commit(f.store, "j", log(1), log(2), log(3));
    const k = commit(f.store, "k", status("running"), status("completed"));
    // About 40 KB of envelopes: left in the store for the isolates that need them.
    const big = commit(f.store, "big", ...range(1, 200).map((n) => log("x".repeat(150) + n)));
    f.hub.publishLocal([j, k, big]);
    assert.deepEqual(f.fanout.published, [{
      jobs: [
        ["j", 1, 3, false, T0_ISO, {
          timestamp: j[0]!.timestamp,
          types: ["log", "log", "log"],
          data: j.map((c) => JSON.stringify(JSON.parse(c.event.envelope).data)),
        }],
        ["k", 1, 2, true, T0_ISO, {
          timestamp: k[0]!.timestamp,
          types: ["status", "status"],
          data: ['{"status":"running"}', '{"status":"completed"}'],
          job: k[1]!.job,
        }],
        ["big", 1, 200, false, T0_ISO],
      ],
    }]);
  });
});

Deno.test("hub delivers events a commit message carries without reading the store", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", log(1), status("running"));
    const reads = countReads(f.store);
    f.fanout.remote(committed, true);
    assert.equal(reads(), 0);
    assert.deepEqual(recorder.sequences, [1, 2]);
    assert.deepEqual(
      recorder.events.map((e) => e.envelope),
      committed.map((c) => c.event.envelope),
    );
    assert.equal(recorder.events[0]!.job, undefined);
    assert.equal(recorder.events[1]!.job?.status, "running");
  });
});

Deno.test("hub fills the gap before carried events from the store, and skips what it has", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", ...logs(1, 6));
    f.fanout.remote(committed.slice(3), true);
    assert.deepEqual(recorder.sequences, range(1, 6));
    assert.equal(f.hub.counts.gapFills, 1);
    f.fanout.remote(committed.slice(2, 5), true);
    f.fanout.remote([...committed.slice(4), ...commit(f.store, "j", log(7))], true);
    assert.deepEqual(recorder.sequences, range(1, 7));
  });
});

Deno.test("hub tells the other isolates about a commit before it delivers here", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const deliveredWhenSent: number[] = [];
    f.fanout.onPublish = () => deliveredWhenSent.push(recorder.events.length);
    publish(f, "j", log(1), log(2));
    publish(f, "j", log(3));
    assert.deepEqual(deliveredWhenSent, [0, 2]);
    assert.deepEqual(recorder.sequences, [1, 2, 3]);
  });
});

Deno.test("hub carries the events only of jobs someone may follow on another isolate", () => {
  withHub(
    (f) => {
      createJob(f.store, "watched");
      createJob(f.store, "quiet");
      f.hub.publishLocal([
        commit(f.store, "watched", log(1), log(2)),
        commit(f.store, "quiet", log(1)),
      ]);
      const [message] = f.fanout.published;
      assert.deepEqual(message?.jobs.map((entry) => entry.slice(0, 5)), [
        ["watched", 1, 2, false, T0_ISO],
        ["quiet", 1, 1, false, T0_ISO],
      ]);
      assert.deepEqual(message?.jobs[0]?.[5]?.data, [
        '{"line":"1","level":"info"}',
        '{"line":"2","level":"info"}',
      ]);
      assert.equal(message?.jobs[1]?.length, 5, "no events for a job nobody follows elsewhere");
    },
    1000,
    { watchedElsewhere: (jobId) => jobId === "watched" },
  );
});

Deno.test("hub carries a capped job's events whole where it is followed, or when they are half of what it keeps; else not", () => {
  withHub(
    (f) => {
      for (const id of ["watched", "quiet"]) {
        createJob(f.store, id);
        commit(f.store, id, ...logs(1, 120)); // past the cap of 100: the oldest are dropped
      }
      const carried = () => f.fanout.published.at(-1)!.jobs.map((entry) => entry[5]?.data.length);
      // Large events, more than a commit message carries of a job as a rule.
      const big = (n: number) =>
        Array.from({ length: n }, (_, i) => ({
          type: "log",
          data: { line: `${i} ${"x".repeat(4000)}` },
        }));
      f.hub.publishLocal([
        commit(f.store, "watched", ...big(10)),
        commit(f.store, "quiet", ...big(10)),
      ]);
      assert.deepEqual(carried(), [10, undefined], "10 of 100 kept: only where it is followed");
      f.hub.publishLocal([
        commit(f.store, "quiet", ...big(30)),
        commit(f.store, "quiet", ...big(20)),
      ]);
      assert.deepEqual(carried(), [30, 20], "50 of 100 kept: soon dropped, carried whole");
    },
    100,
    { watchedElsewhere: (jobId) => jobId === "watched" },
  );
});

Deno.test("hub wakes the other isolates before a publish to a job followed there, once while idle", () => {
  // The hub takes the isolates to be idle after 1 ms without a message between them; its
  // clock here moves only when the test says so, however slow the machine.
  let now = 1000;
  const quietSpell = () => (now += 2);
  withHub(
    (f) => {
      createJob(f.store, "watched");
      createJob(f.store, "quiet");
      f.hub.prepare("quiet");
      assert.equal(f.fanout.wakes, 0, "nobody follows it elsewhere");
      f.hub.prepare("watched");
      assert.equal(f.fanout.wakes, 1);
      f.hub.prepare("watched");
      assert.equal(f.fanout.wakes, 1, "just woken: no second wake");
      quietSpell();
      f.hub.prepare("watched");
      assert.equal(f.fanout.wakes, 2, "idle again");
      publish(f, "watched", log(1));
      f.hub.prepare("watched");
      assert.equal(f.fanout.wakes, 2, "a commit message was just sent");
      quietSpell();
      f.fanout.remote(commit(f.store, "watched", log(2)));
      f.hub.prepare("watched");
      assert.equal(f.fanout.wakes, 2, "a commit message was just heard");
      quietSpell();
      f.hub.prepare("watched");
      assert.equal(f.fanout.wakes, 3);
    },
    1000,
    { watchedElsewhere: (jobId) => jobId === "watched", clock: () => now },
  );
});

Deno.test("hub reports the number of subscribers to every job as it changes", () => {
  const counts: number[] = [];
  withHub(
    ({ hub }) => {
      const a = firehose();
      const b = firehose();
      hub.subscribeAll(a);
      hub.subscribeAll(b);
      hub.unsubscribeAll(a);
      hub.unsubscribeAll(a);
      hub.unsubscribeAll(b);
      assert.deepEqual(counts, [1, 2, 1, 0]);
      assert.equal(hub.counts.firehose, 0);
    },
    1000,
    { onFirehose: (count) => counts.push(count) },
  );
});

Deno.test("hub publishLocal with no events sends nothing", () => {
  withHub((f) => {
    f.hub.publishLocal([]);
    assert.deepEqual(f.fanout.published, []);
  });
});

Deno.test("hub publishLocal delivers the job snapshot with each event", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    publish(f, "j", status("running"), log(2));
    assert.deepEqual(recorder.events.map((e) => e.job?.status), ["running", "running"]);
    assert.deepEqual(recorder.events.map((e) => e.job?.last_sequence), [1, 2]);
  });
});

Deno.test("hub delivers every event to every subscriber of the job and no other", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    const a1 = subscribe(f.hub, "a", 0).recorder;
    const a2 = subscribe(f.hub, "a", 0).recorder;
    const b = subscribe(f.hub, "b", 0).recorder;
    publish(f, "a", log(1), log(2));
    publish(f, "b", log(1));
    assert.deepEqual(a1.sequences, [1, 2]);
    assert.deepEqual(a2.sequences, [1, 2]);
    assert.deepEqual(b.sequences, [1]);
    assert.equal(a1.events[0], a2.events[0], "one WireEvent is shared by all subscribers");
    assert.ok(b.events.every((e) => e.jobId === "b"));
  });
});

Deno.test("hub unsubscribe stops delivery to that subscriber only", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const stay = subscribe(f.hub, "j", 0).recorder;
    const leave = subscribe(f.hub, "j", 0).recorder;
    publish(f, "j", log(1));
    f.hub.unsubscribe("j", leave);
    publish(f, "j", log(2));
    assert.deepEqual(stay.sequences, [1, 2]);
    assert.deepEqual(leave.sequences, [1]);
    f.hub.unsubscribe("j", leave);
    f.hub.unsubscribe("other", leave);
  });
});

// ---------------------------------------------------------------------------------------
// Events from other isolates

Deno.test("hub delivers remote events in order", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", ...logs(1, 3));
    f.fanout.remote(committed);
    assert.deepEqual(recorder.sequences, [1, 2, 3]);
    assert.equal(f.hub.counts.gapFills, 0);
    assert.deepEqual(f.fanout.published, [], "remote events are not sent back out");
  });
});

Deno.test("hub fills a gap from the store before delivering a later remote event", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", ...logs(1, 4));
    f.fanout.remote(committed.slice(3));
    assert.deepEqual(recorder.sequences, [1, 2, 3, 4]);
    assert.equal(f.hub.counts.gapFills, 1);
    assert.deepEqual(recorder.lines, ["1", "2", "3", "4"]);
    // Events read back from the store carry no snapshot (log events change no state).
    assert.ok(recorder.events.every((e) => e.job === undefined));
  });
});

Deno.test("hub never skips a sequence when the job is deleted elsewhere before a gap is filled", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const fire = firehose();
    f.hub.subscribeAll(fire);
    publish(f, "j", ...logs(1, 4));
    // Committed on another isolate, whose messages are on the way.
    const elsewhere = commit(f.store, "j", ...logs(5, 10));
    // Committed here; before this isolate delivers it, the other one deletes the job.
    const here = commit(f.store, "j", ...logs(11, 12));
    assert.ok(f.store.deleteJob("j", T0 + 1000));
    f.hub.publishLocal([here]);
    assert.deepEqual(recorder.sequences, range(1, 4), "nothing after a gap it cannot fill");
    assert.deepEqual(fire.events.map((e) => e.sequence), range(1, 4));
    // The other isolate's messages carry their events: they follow in order.
    f.fanout.remote(elsewhere, true);
    assert.deepEqual(recorder.sequences, range(1, 10));
    assert.deepEqual(fire.events.map((e) => e.sequence), range(1, 10));
  });
});

Deno.test("hub never fills a gap of a job with the events of another made under its id since", () => {
  for (const longer of [false, true]) {
    withHub((f) => {
      createJob(f.store, "j");
      const { recorder } = subscribe(f.hub, "j", 0);
      publish(f, "j", ...logs(1, 4));
      const elsewhere = commit(f.store, "j", ...logs(5, 10));
      const here = commit(f.store, "j", ...logs(11, 12));
      // Another isolate deletes the job and makes it again; the new job has events of its own,
      // fewer than the gap or more.
      assert.ok(f.store.deleteJob("j", T0 + 1000));
      createJob(f.store, "j", T0 + 1000);
      commit(f.store, "j", ...logs(101, longer ? 130 : 102));
      f.hub.publishLocal([here]);
      assert.deepEqual(recorder.sequences, range(1, 4), `longer: ${longer}`);
      assert.ok(recorder.lines.every((line) => Number(line) <= 4), `longer: ${longer}`);
      f.fanout.remote(elsewhere, true);
      assert.deepEqual(recorder.sequences, range(1, 10), `longer: ${longer}`);
      assert.deepEqual(recorder.lines, range(1, 10).map(String));
    });
  }
});

Deno.test("hub passes over another isolate's events of a job nobody follows here without reading them", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const reads = countReads(f.store);
    publish(f, "j", log(1));
    // Committed on another isolate, whose message has not come yet.
    const elsewhere = commit(f.store, "j", ...logs(2, 4));
    publish(f, "j", log(5));
    assert.equal(reads(), 0, "nothing read back for nobody");
    assert.equal(f.hub.counts.gapFills, 0);
    // The message, when it comes, finds them passed.
    f.fanout.remote(elsewhere, true);
    // A subscriber who comes now replays all of them in order, then follows live.
    const { recorder } = subscribe(f.hub, "j", 0);
    publish(f, "j", log(6));
    assert.deepEqual(recorder.sequences, range(1, 6));
    assert.deepEqual(recorder.lines, ["1", "2", "3", "4", "5", "6"]);
  });
});

Deno.test("hub fills the gap before its own commit from the store when someone here follows the job", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    publish(f, "j", log(1));
    commit(f.store, "j", ...logs(2, 4));
    publish(f, "j", log(5));
    assert.deepEqual(recorder.sequences, range(1, 5));
    assert.equal(f.hub.counts.gapFills, 1);
  });
});

Deno.test("hub fills a gap longer than one store page", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", ...logs(1, 2300));
    f.fanout.remote(committed.slice(-1));
    assert.deepEqual(recorder.sequences, range(1, 2300));
  });
});

Deno.test("hub fills a gap without overtaking events committed after the one that arrived", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", ...logs(1, 6));
    f.fanout.remote([committed[2]!]);
    assert.deepEqual(recorder.sequences, [1, 2, 3]);
    f.fanout.remote(committed.slice(3));
    assert.deepEqual(recorder.sequences, range(1, 6));
  });
});

Deno.test("hub drops duplicate and older remote events", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", ...logs(1, 3));
    f.fanout.remote(committed);
    f.fanout.remote(committed);
    f.fanout.remote([committed[1]!]);
    f.fanout.remote([committed[2]!, committed[0]!]);
    assert.deepEqual(recorder.sequences, [1, 2, 3]);
  });
});

Deno.test("hub drops a remote echo of an event already published here", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = publish(f, "j", log(1), log(2));
    f.fanout.remote(committed);
    assert.deepEqual(recorder.sequences, [1, 2]);
  });
});

Deno.test("hub drops remote events that a join already replayed", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const committed = commit(f.store, "j", ...logs(1, 3));
    const { recorder } = subscribe(f.hub, "j", 0);
    assert.deepEqual(recorder.sequences, [1, 2, 3]);
    f.fanout.remote(committed);
    const more = commit(f.store, "j", log(4));
    f.fanout.remote(more);
    assert.deepEqual(recorder.sequences, [1, 2, 3, 4]);
  });
});

Deno.test("hub never delivers a sequence at or below a subscriber's cursor", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const early = subscribe(f.hub, "j", 0).recorder;
    // Events 1-3 commit elsewhere and have not arrived yet when a second subscriber joins.
    const committed = commit(f.store, "j", ...logs(1, 3));
    const late = subscribe(f.hub, "j", 0).recorder;
    assert.deepEqual(late.sequences, [1, 2, 3]);
    assert.equal(late.cursor, 3);
    const fourth = commit(f.store, "j", log(4));
    f.fanout.remote(fourth);
    f.fanout.remote(committed);
    assert.deepEqual(early.sequences, [1, 2, 3, 4]);
    assert.deepEqual(late.sequences, [1, 2, 3, 4]);
  });
});

Deno.test("hub gives a remote request's last state-changing event the job's state", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    f.fanout.remote(commit(f.store, "j", status("running"), status("completed")));
    assert.deepEqual(recorder.sequences, [1, 2]);
    assert.equal(recorder.events[0]!.job, undefined);
    assert.equal(recorder.events[1]!.job?.status, "completed");
    assert.equal(recorder.events[1]!.job?.last_sequence, 2);
    assert.equal(recorder.events[1]!.terminal, true);
  });
});

Deno.test("hub gives no state to a remote event the job has moved past", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const running = commit(f.store, "j", status("running"));
    commit(f.store, "j", log(2));
    f.fanout.remote(running);
    assert.deepEqual(recorder.sequences, [1]);
    // The job's state now is after event 2: a snapshot of it would claim too much for 1.
    assert.equal(recorder.events[0]!.job, undefined);
    assert.equal(recorder.events[0]!.terminal, false);
  });
});

Deno.test("hub catches up from the store when messages from other isolates were lost", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    createJob(f.store, "gone");
    const a = subscribe(f.hub, "a", 0).recorder;
    const b = subscribe(f.hub, "b", 0).recorder;
    const gone = subscribe(f.hub, "gone", 0).recorder;
    commit(f.store, "a", ...logs(1, 3));
    commit(f.store, "b", status("running"), status("completed"));
    f.store.deleteJob("gone", T0);
    // Their messages never arrived; the next one would be for another job.
    f.fanout.lost();
    assert.deepEqual(a.sequences, [1, 2, 3]);
    assert.deepEqual(b.sequences, [1, 2]);
    assert.equal(b.events[1]!.job?.status, "completed");
    assert.deepEqual(gone.ended, ["job deleted"]);
    // The late messages, should they come, deliver nothing twice.
    f.fanout.remote(commit(f.store, "a", log(4)));
    assert.deepEqual(a.sequences, [1, 2, 3, 4]);
  });
});

Deno.test("hub keeps the place of jobs nobody here follows, delivering nothing", () => {
  withHub((f) => {
    createJob(f.store, "j");
    f.fanout.remote(commit(f.store, "j", log(1)));
    // Tracked so a later out-of-order arrival is still recognised and the gap filled.
    assert.equal(f.hub.lastSequence("j"), 1);
    assert.equal(f.hub.watchers("j"), 0);
    assert.equal(f.hub.counts.delivered, 0);
  });
});

// ---------------------------------------------------------------------------------------
// Ending jobs

Deno.test("hub jobDeleted ends the job's subscribers and tells the fanout", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    const a1 = subscribe(f.hub, "a", 0).recorder;
    const a2 = subscribe(f.hub, "a", 0).recorder;
    const b = subscribe(f.hub, "b", 0).recorder;
    f.hub.jobDeleted("a", "job deleted");
    assert.deepEqual(a1.ended, ["job deleted"]);
    assert.deepEqual(a2.ended, ["job deleted"]);
    assert.deepEqual(b.ended, []);
    assert.equal(f.hub.watchers("a"), 0);
    assert.equal(f.hub.watchers("b"), 1);
    assert.deepEqual(f.fanout.notices, [{ kind: "deleted", jobId: "a", reason: "job deleted" }]);
  });
});

Deno.test("hub delivers nothing to subscribers of a deleted job", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const committed = commit(f.store, "j", log(1));
    f.hub.jobDeleted("j", "job purged");
    f.fanout.remote(committed);
    assert.deepEqual(recorder.sequences, []);
    assert.deepEqual(recorder.ended, ["job purged"]);
  });
});

Deno.test("hub ends local subscribers when another isolate deletes the job", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    f.fanout.remoteNotice({ kind: "deleted", jobId: "j" });
    assert.equal(recorder.ended.length, 1);
    assert.equal(f.hub.watchers("j"), 0);
    assert.deepEqual(f.fanout.notices, [], "a remote notice is not sent back out");
  });
});

Deno.test("hub closeAll ends every subscriber of every job", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    const a = subscribe(f.hub, "a", 0).recorder;
    const b = subscribe(f.hub, "b", 0).recorder;
    f.hub.closeAll("server shutting down");
    assert.deepEqual(a.ended, ["server shutting down"]);
    assert.deepEqual(b.ended, ["server shutting down"]);
    assert.equal(f.hub.watchers("a"), 0);
    assert.equal(f.hub.watchers("b"), 0);
  });
});

// ---------------------------------------------------------------------------------------
// Firehose

Deno.test("hub firehose subscribers receive events of every job", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    const all = firehose();
    f.hub.subscribeAll(all);
    publish(f, "a", log(1));
    publish(f, "b", log(1), log(2));
    f.fanout.remote(commit(f.store, "a", log(2)));
    assert.deepEqual(all.events.map((e) => `${e.jobId}:${e.sequence}`), [
      "a:1",
      "b:1",
      "b:2",
      "a:2",
    ]);
    assert.equal(f.hub.counts.firehose, 1);
  });
});

Deno.test("hub firehose subscribers receive created notices from here and elsewhere", () => {
  withHub((f) => {
    const all = firehose();
    f.hub.subscribeAll(all);
    const local = createJob(f.store, "local");
    f.hub.jobCreated(local);
    const remote = createJob(f.store, "remote");
    f.fanout.remoteNotice({ kind: "created", job: remote });
    assert.deepEqual(all.createdJobs.map((j) => j.id), ["local", "remote"]);
    assert.deepEqual(f.fanout.notices, [{ kind: "created", job: local }]);
  });
});

Deno.test("hub firehose subscribers hear of a job whose created notice was lost, once", () => {
  withHub((f) => {
    const all = firehose();
    f.hub.subscribeAll(all);
    createJob(f.store, "lost");
    commit(f.store, "lost", log(1));
    const ended = createJob(f.store, "ended");
    f.fanout.remoteNotice({ kind: "created", job: ended });
    commit(f.store, "ended", status("running"), status("completed"));
    // Neither the notice of "lost" nor the commit messages arrived; the next one jumped.
    f.fanout.lost();
    assert.deepEqual(all.createdJobs.map((j) => [j.id, j.last_sequence]), [
      ["ended", 0],
      ["lost", 0],
    ]);
    f.fanout.lost();
    assert.equal(all.createdJobs.length, 2, "told once");
    f.fanout.remote(commit(f.store, "lost", log(2)));
    // Its events as if the notice had come: the one before the catch-up, then the next.
    assert.deepEqual(all.order.filter((o) => o.includes("lost")), [
      "created lost",
      "lost:1",
      "lost:2",
    ]);
  });
});

Deno.test("hub settle delivers what other isolates committed before a deletion here", () => {
  withHub((f) => {
    const job = createJob(f.store, "x");
    f.hub.jobCreated(job);
    const one = subscribe(f.hub, "x", 0).recorder;
    const all = firehose();
    f.hub.subscribeAll(all);
    // Committed elsewhere, acknowledged there; the message is still on the way when the
    // DELETE reaches this isolate.
    const late = commit(f.store, "x", ...logs(1, 3));
    f.hub.settle("x");
    f.store.deleteJob("x", T0 + 1000);
    f.hub.jobDeleted("x", "job deleted", job);
    assert.deepEqual(one.sequences, [1, 2, 3]);
    assert.deepEqual(one.ended, ["job deleted"]);
    assert.deepEqual(all.events.map((e) => e.sequence), [1, 2, 3]);
    assert.deepEqual(all.deletedIds, ["x"]);
    // The message, when it comes, delivers nothing.
    f.fanout.remote(late);
    assert.equal(one.events.length, 3);
    assert.equal(all.events.length, 3);
  });
});

Deno.test("hub all=1: a job made again elsewhere before its deletion's notice came", () => {
  withHub((f) => {
    const first = createJob(f.store, "x");
    f.fanout.remoteNotice({ kind: "created", job: first });
    const all = firehose();
    f.hub.subscribeAll(all);
    const old = subscribe(f.hub, "x", 0).recorder;
    // Elsewhere: deleted, made again, an event; the created notice overtakes the deletion's.
    f.store.deleteJob("x", T0 + 1000);
    const second = createJob(f.store, "x", T0 + 2000);
    f.fanout.remoteNotice({ kind: "created", job: second });
    const fresh = subscribe(f.hub, "x", 0).recorder;
    f.fanout.remote(commit(f.store, "x", log("new")));
    f.fanout.remoteNotice({ kind: "deleted", jobId: "x", job: first, reason: "job deleted" });
    assert.deepEqual(old.ended, ["job deleted"]);
    assert.deepEqual(all.order, ["deleted x", "created x", "x:1"], "the deletion once, before");
    assert.deepEqual(all.createdJobs.map((j) => j.created_at), [second.created_at]);
    assert.deepEqual(all.events.map((e) => e.sequence), [1]);
    assert.deepEqual(fresh.sequences, [1], "the late notice leaves the new job's streams alone");
    assert.deepEqual(fresh.ended, []);
  });
});

Deno.test("hub all=1: an event that overtakes its job's created notice comes after a created", () => {
  withHub((f) => {
    const all = firehose();
    f.hub.subscribeAll(all);
    const job = createJob(f.store, "y");
    // Made elsewhere; an event published here (or its commit message) comes first.
    publish(f, "y", status("running"));
    f.fanout.remote(commit(f.store, "y", log(2)));
    f.fanout.remoteNotice({ kind: "created", job });
    assert.deepEqual(all.createdJobs.map((j) => [j.id, j.last_sequence]), [["y", 0]]);
    assert.deepEqual(all.order, ["created y", "y:1", "y:2"]);
  });
});

Deno.test("hub all=1: a job a stream here subscribed to by name before its created notice came", () => {
  withHub((f) => {
    const all = firehose();
    f.hub.subscribeAll(all);
    const job = createJob(f.store, "z");
    // Made elsewhere; a client here opens its stream before the notice comes.
    const one = subscribe(f.hub, "z", 0).recorder;
    f.fanout.remote(commit(f.store, "z", status("running"), log(2)));
    f.fanout.remoteNotice({ kind: "created", job });
    f.fanout.remote(commit(f.store, "z", log(3)));
    assert.deepEqual(one.sequences, [1, 2, 3]);
    assert.deepEqual(all.order, ["created z", "z:1", "z:2", "z:3"]);
  });
});

Deno.test("hub all=1: a stream that opened after a job's events came here, before its notice", () => {
  withHub((f) => {
    const job = createJob(f.store, "z");
    const one = subscribe(f.hub, "z", 0).recorder;
    f.fanout.remote(commit(f.store, "z", status("running"), log(2)));
    const all = firehose();
    f.hub.subscribeAll(all);
    f.fanout.remoteNotice({ kind: "created", job });
    assert.deepEqual(one.sequences, [1, 2]);
    assert.deepEqual(all.order, ["created z", "z:1", "z:2"]);
    assert.equal(all.createdJobs[0]!.last_sequence, 0);
    assert.equal(all.createdJobs[0]!.status, "running", "as the job is now");
  });
});

Deno.test("hub all=1: a job made again here before the earlier one's deletion notice came", () => {
  withHub((f) => {
    const first = createJob(f.store, "x");
    f.fanout.remoteNotice({ kind: "created", job: first });
    const all = firehose();
    f.hub.subscribeAll(all);
    f.store.deleteJob("x", T0 + 1000);
    const second = createJob(f.store, "x", T0 + 2000);
    f.hub.jobCreated(second);
    f.fanout.remoteNotice({ kind: "deleted", jobId: "x", job: first, reason: "job deleted" });
    assert.deepEqual(all.createdJobs.map((j) => j.created_at), [second.created_at]);
    const fresh = subscribe(f.hub, "x", 0).recorder;
    publish(f, "x", log(1));
    assert.deepEqual(all.order, ["deleted x", "created x", "x:1"]);
    assert.deepEqual(fresh.sequences, [1]);
    assert.deepEqual(fresh.ended, []);
  });
});

Deno.test("hub firehose subscribers receive deleted notices", () => {
  withHub((f) => {
    const all = firehose();
    f.hub.subscribeAll(all);
    f.hub.jobDeleted("a", "job deleted");
    f.fanout.remoteNotice({ kind: "deleted", jobId: "b" });
    assert.deepEqual(all.deletedIds, ["a", "b"]);
  });
});

Deno.test("hub firehose subscribers get each job's events in order with gaps filled", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const all = firehose();
    f.hub.subscribeAll(all);
    const committed = commit(f.store, "j", ...logs(1, 4));
    f.fanout.remote([committed[0]!]);
    f.fanout.remote([committed[3]!]);
    f.fanout.remote([committed[2]!]);
    assert.deepEqual(all.events.map((e) => e.sequence), [1, 2, 3, 4]);
  });
});

Deno.test("hub firehose subscribers get an event that arrives after a later one of a new job", () => {
  withHub((f) => {
    const all = firehose();
    f.hub.subscribeAll(all);
    // The job is created after the firehose joined, so the firehose must see all its events.
    f.hub.jobCreated(createJob(f.store, "j"));
    const committed = commit(f.store, "j", log(1), log(2));
    // Two isolates committed 1 and 2; their messages arrive in the other order.
    f.fanout.remote([committed[1]!]);
    f.fanout.remote([committed[0]!]);
    assert.deepEqual(all.events.map((e) => e.sequence), [1, 2]);
  });
});

Deno.test("hub delivers each event once to a firehose subscriber that also follows the job", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const all = firehose();
    f.hub.subscribeAll(all);
    const one = subscribe(f.hub, "j", 0).recorder;
    publish(f, "j", log(1), log(2));
    assert.deepEqual(all.events.map((e) => e.sequence), [1, 2]);
    assert.deepEqual(one.sequences, [1, 2]);
  });
});

Deno.test("hub unsubscribeAll stops firehose delivery", () => {
  withHub((f) => {
    f.hub.jobCreated(createJob(f.store, "j"));
    const all = firehose();
    f.hub.subscribeAll(all);
    publish(f, "j", log(1));
    f.hub.unsubscribeAll(all);
    publish(f, "j", log(2));
    f.hub.jobCreated(createJob(f.store, "k"));
    assert.deepEqual(all.events.map((e) => e.sequence), [1]);
    assert.deepEqual(all.createdJobs, []);
    assert.equal(f.hub.counts.firehose, 0);
  });
});

// ---------------------------------------------------------------------------------------
// Counting

Deno.test("hub watchers counts the subscribers of each job", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    assert.equal(f.hub.watchers("a"), 0);
    const a1 = subscribe(f.hub, "a", 0).recorder;
    const a2 = subscribe(f.hub, "a", 0).recorder;
    subscribe(f.hub, "b", 0);
    assert.equal(f.hub.watchers("a"), 2);
    assert.equal(f.hub.watchers("b"), 1);
    assert.equal(f.hub.watchers("c"), 0);
    f.hub.unsubscribe("a", a1);
    assert.equal(f.hub.watchers("a"), 1);
    f.hub.unsubscribe("a", a2);
    assert.equal(f.hub.watchers("a"), 0);
    assert.equal(f.hub.watchers("b"), 1);
  });
});

Deno.test("hub jobs lists subscriber counts and delivered sequences of followed jobs", () => {
  withHub((f) => {
    createJob(f.store, "a");
    createJob(f.store, "b");
    subscribe(f.hub, "a", 0);
    subscribe(f.hub, "a", 0);
    publish(f, "a", log(1), log(2));
    publish(f, "b", log(1));
    assert.deepEqual([...f.hub.jobs()], [["a", { connections: 2, last_sequence: 2 }]]);
    assert.equal(f.hub.lastSequence("a"), 2);
  });
});

Deno.test("hub counts deliveries to subscribers", () => {
  withHub((f) => {
    createJob(f.store, "j");
    subscribe(f.hub, "j", 0);
    subscribe(f.hub, "j", 0);
    publish(f, "j", log(1), log(2), log(3));
    assert.equal(f.hub.counts.delivered, 6);
  });
});

type HubOp =
  | { op: "remoteCommit"; count: number }
  | { op: "arrive"; pick: number }
  | { op: "local"; count: number }
  | { op: "join"; since: number | null }
  | { op: "leave"; pick: number };

for (
  const [name, recent] of [
    ["", DEFAULT_RECENT],
    [" (recent events: 4 per job, 1,200 bytes)", { events: 4, bytes: 1200 }],
  ] as const
) {
  Deno.test(`hub gives every subscriber a gap-free, duplicate-free run whatever the arrival order${name}`, () => {
    const opArb: fc.Arbitrary<HubOp> = fc.oneof(
      fc.record({
        op: fc.constant("remoteCommit" as const),
        count: fc.integer({ min: 1, max: 3 }),
      }),
      fc.record({ op: fc.constant("arrive" as const), pick: fc.nat() }),
      fc.record({ op: fc.constant("local" as const), count: fc.integer({ min: 1, max: 3 }) }),
      fc.record({
        op: fc.constant("join" as const),
        since: fc.option(fc.nat(30), { nil: null }),
      }),
      fc.record({ op: fc.constant("leave" as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        withHub(
          (f) => {
            createJob(f.store, "j");
            const inFlight: CommittedEvent[] = [];
            const active: { recorder: Recorder; start: number }[] = [];
            const all: { recorder: Recorder; start: number }[] = [];
            let line = 0;
            for (const step of ops) {
              switch (step.op) {
                case "remoteCommit":
                  inFlight.push(...commit(f.store, "j", ...logs(line + 1, line + step.count)));
                  line += step.count;
                  break;
                case "arrive": {
                  if (inFlight.length === 0) break;
                  const [event] = inFlight.splice(step.pick % inFlight.length, 1);
                  f.fanout.remote([event!]);
                  break;
                }
                case "local":
                  publish(f, "j", ...logs(line + 1, line + step.count));
                  line += step.count;
                  break;
                case "join": {
                  const { recorder, replay } = subscribe(f.hub, "j", step.since, 5);
                  // The run starts at the first replayed event, or after the job's last one.
                  const entry = { recorder, start: replay.from ?? recorder.cursor + 1 };
                  active.push(entry);
                  all.push(entry);
                  break;
                }
                case "leave": {
                  if (active.length === 0) break;
                  const [entry] = active.splice(step.pick % active.length, 1);
                  f.hub.unsubscribe("j", entry!.recorder);
                  break;
                }
              }
            }
            for (const event of inFlight.splice(0)) f.fanout.remote([event]);
            const last = f.store.getJob("j")!.last_sequence;
            const envelopes = storedEnvelopes(f.store, "j");
            for (const { recorder, start } of all) {
              const seqs = recorder.sequences;
              seqs.forEach((seq, i) => assert.equal(seq, start + i, `sequences ${seqs}`));
              for (const event of recorder.events) {
                assert.equal(event.envelope, envelopes.get(event.sequence));
              }
            }
            for (const { recorder, start } of active) {
              assert.deepEqual(recorder.sequences, range(start, last));
            }
          },
          100_000,
          { recent },
        );
      }),
      { numRuns: 300 },
    );
  });
}

type MultiJobOp =
  | { op: "remoteCommit"; job: number; count: number }
  | { op: "arrive"; pick: number; carry: boolean }
  | { op: "local"; job: number; count: number }
  | { op: "join"; job: number; since: number | null }
  | { op: "leave"; pick: number }
  | { op: "lost" }
  | { op: "firehose" };

const FUZZ_JOBS = ["a", "b", "c"];

/**
 * Plays `ops` on a fresh hub and returns, per subscriber, its replay info and every
 * envelope it received; checks the byte bound after every step.
 */
function playJobs(
  ops: MultiJobOp[],
  recent: RecentLimits,
  cap: number,
): { received: string[]; fromMemory: number } {
  const received: string[] = [];
  let fromMemory = 0;
  withHub(
    (f) => {
      for (const id of FUZZ_JOBS) f.hub.jobCreated(createJob(f.store, id));
      const inFlight: CommittedEvent[] = [];
      const active: { recorder: Recorder; job: string }[] = [];
      const all: { recorder: Recorder; replay: ReplayInfo }[] = [];
      let line = 0;
      for (const step of ops) {
        switch (step.op) {
          case "remoteCommit":
            inFlight.push(
              ...commit(f.store, FUZZ_JOBS[step.job]!, ...logs(line + 1, line + step.count)),
            );
            line += step.count;
            break;
          case "arrive": {
            if (inFlight.length === 0) break;
            const [event] = inFlight.splice(step.pick % inFlight.length, 1);
            f.fanout.remote([event!], step.carry);
            break;
          }
          case "local":
            publish(f, FUZZ_JOBS[step.job]!, ...logs(line + 1, line + step.count));
            line += step.count;
            break;
          case "join": {
            const job = FUZZ_JOBS[step.job]!;
            const { recorder, replay } = subscribe(f.hub, job, step.since, 5);
            active.push({ recorder, job });
            all.push({ recorder, replay });
            break;
          }
          case "leave": {
            if (active.length === 0) break;
            const [entry] = active.splice(step.pick % active.length, 1);
            f.hub.unsubscribe(entry!.job, entry!.recorder);
            break;
          }
          case "lost":
            f.fanout.lost();
            break;
          case "firehose":
            f.hub.subscribeAll(firehose());
            break;
        }
        assert.ok(f.hub.recentBytes >= 0 && f.hub.recentBytes <= recent.bytes, "byte bound");
      }
      for (const event of inFlight.splice(0)) f.fanout.remote([event]);
      for (const { recorder, replay } of all) {
        received.push(
          `${JSON.stringify(replay)}\n${recorder.events.map((e) => e.envelope).join("\n")}`,
        );
      }
      fromMemory = f.hub.counts.replayedFromMemory;
      for (const id of FUZZ_JOBS) f.hub.jobDeleted(id, "job deleted");
      assert.equal(f.hub.recentBytes, 0, "bytes left after every job went");
    },
    cap,
    { recent },
  );
  return { received, fromMemory };
}

for (
  const [recent, cap] of [
    [{ events: 4, bytes: 1200 }, 6],
    [{ events: 10, bytes: 100_000 }, 4],
  ] as [RecentLimits, number][]
) {
  Deno.test(`hub subscribers get the same with recent events kept as without (${recent.events} per job, ${recent.bytes} bytes, ${cap} retained)`, () => {
    const job = fc.integer({ min: 0, max: FUZZ_JOBS.length - 1 });
    const count = fc.integer({ min: 1, max: 4 });
    const opArb: fc.Arbitrary<MultiJobOp> = fc.oneof(
      fc.record({ op: fc.constant("remoteCommit" as const), job, count }),
      fc.record({ op: fc.constant("arrive" as const), pick: fc.nat(), carry: fc.boolean() }),
      { weight: 4, arbitrary: fc.record({ op: fc.constant("local" as const), job, count }) },
      {
        weight: 4,
        arbitrary: fc.record({
          op: fc.constant("join" as const),
          job,
          since: fc.option(fc.nat(15), { nil: null }),
        }),
      },
      fc.record({ op: fc.constant("leave" as const), pick: fc.nat() }),
      fc.record({ op: fc.constant("lost" as const) }),
      fc.record({ op: fc.constant("firehose" as const) }),
    );
    let fromMemory = 0;
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const kept = playJobs(ops, recent, cap);
        const none = playJobs(ops, { events: recent.events, bytes: 0 }, cap);
        assert.deepEqual(kept.received, none.received);
        assert.equal(none.fromMemory, 0);
        fromMemory += kept.fromMemory;
      }),
      { numRuns: 300 },
    );
    // The comparison means something only if replays did come from memory.
    assert.ok(fromMemory > 0, "no event was replayed from memory");
  });
}

Deno.test("hub gives a remote progress event the job's state even when a log followed it", () => {
  withHub((f) => {
    createJob(f.store, "j");
    const { recorder } = subscribe(f.hub, "j", 0);
    const reported = commit(f.store, "j", progress(40));
    commit(f.store, "j", log(2));
    // The progress came without its events (too large to carry), and the log changes nothing
    // a snapshot shows: the state must come with the progress, or snapshot streams stay on 0.
    f.fanout.remote(reported);
    assert.deepEqual(recorder.sequences, [1]);
    assert.equal(recorder.events[0]!.job?.progress, 40);
    assert.equal(recorder.events[0]!.terminal, false);
  });
});

Deno.test("a replay reads one state of the store: a deletion committed by another connection midway cuts nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-hub-" });
  const store = openSqliteStore(dir, { maxEventsPerJob: 100_000 });
  // Another isolate: its own connection to the same file.
  const other = openSqliteStore(dir, { maxEventsPerJob: 100_000 });
  try {
    createJob(store, "j");
    commit(store, "j", ...logs(1, 300));
    const hub = new Hub(store, new FakeFanout());
    const recorder = new Recorder();
    let deleted = false;
    const deliver = recorder.deliver.bind(recorder);
    recorder.deliver = (event) => {
      deliver(event);
      // The other isolate deletes the job while this one is on its first page.
      if (!deleted) deleted = other.deleteJob("j", T0);
    };
    const joined = hub.subscribe("j", recorder, 0, 100, () => {});
    assert.ok(deleted);
    assert.equal(joined?.replay.count, 300);
    // What the greeting announced is what was sent.
    assert.deepEqual(recorder.sequences, Array.from({ length: 300 }, (_, i) => i + 1));
    assert.equal(store.getJob("j"), undefined);
  } finally {
    other.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a gap fill reads one state of the store: a deletion committed by another connection midway skips nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-hub-" });
  const store = openSqliteStore(dir, { maxEventsPerJob: 100_000 });
  const other = openSqliteStore(dir, { maxEventsPerJob: 100_000 });
  try {
    createJob(store, "j");
    const fanout = new FakeFanout();
    const hub = new Hub(store, fanout);
    const { recorder } = subscribe(hub, "j", 0);
    // Committed on another isolate: more than one page of the store to fill.
    const committed = commit(store, "j", ...logs(1, 2300));
    let deleted = false;
    const deliver = recorder.deliver.bind(recorder);
    recorder.deliver = (event) => {
      deliver(event);
      if (!deleted) deleted = other.deleteJob("j", T0);
    };
    fanout.remote(committed.slice(-1));
    assert.ok(deleted);
    // Not 1-1000 and then 2300, as if the rest had been dropped by the per-job cap.
    assert.deepEqual(recorder.sequences, range(1, 2300));
  } finally {
    other.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hub tells all=1 subscribers of a finished job once, however late another isolate's events of it come", () => {
  withHub((f) => {
    const fire = firehose();
    f.hub.subscribeAll(fire);
    const job = createJob(f.store, "j");
    f.hub.jobCreated(job);
    publish(f, "j", status("running"));
    // Committed on another isolate; its message crosses with the end committed here.
    const elsewhere = commit(f.store, "j", ...logs(2, 4));
    publish(f, "j", status("completed"));
    assert.deepEqual(fire.order, ["created j", "j:1", "j:2", "j:3", "j:4", "j:5"]);
    f.fanout.remote(elsewhere);
    f.fanout.remote(elsewhere, true);
    // Nor does a late notice of its creation start it over.
    f.fanout.remoteNotice({ kind: "created", job: publicJob(job) });
    assert.deepEqual(fire.order, ["created j", "j:1", "j:2", "j:3", "j:4", "j:5"]);
    // A subscriber of the finished job replays it whole, and late messages change nothing.
    const { recorder } = subscribe(f.hub, "j", 0);
    f.fanout.remote(elsewhere);
    assert.deepEqual(recorder.sequences, range(1, 5));
    assert.deepEqual(fire.order, ["created j", "j:1", "j:2", "j:3", "j:4", "j:5"]);
  });
});
