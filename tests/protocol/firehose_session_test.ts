/**
 * A stream of every job (`all=1`) against a hub whose other isolates a test plays: what the
 * client is told when the jobs its greeting listed change elsewhere.
 */
import assert from "node:assert/strict";
import { Hub } from "../../src/hub/hub.ts";
import { codecFor, type Frame } from "../../src/protocol/codec.ts";
import { Session, type SessionContext } from "../../src/protocol/session.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite_store.ts";
import { checkEvent, type NewEvent } from "../../src/jobs/events.ts";
import type { JobRecord } from "../../src/jobs/job.ts";
import { FakeFanout } from "../_helpers/fake_fanout.ts";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");

function event(input: unknown): NewEvent {
  const check = checkEvent(input);
  if (!check.ok) throw new TypeError("invalid test event");
  return check.event;
}

function createJob(store: SqliteStore, id: string, at: number): JobRecord {
  const outcome = store.createJob({ id, kind: null, owner: null, metadata: {} }, at);
  if (!outcome.ok) assert.fail(`could not create ${id}`);
  return outcome.job;
}

function commit(store: SqliteStore, jobId: string, events: NewEvent[], at = T0) {
  const [outcome] = store.appendBatch([{ jobId, events }], at);
  if (outcome === undefined || !outcome.ok) assert.fail("commit refused");
  return outcome.committed;
}

/** A stream of every job over a WebSocket codec, and the messages it sent (parsed). */
function firehoseSession(store: SqliteStore, hub: Hub, jobs: JobRecord[]) {
  const sent: { type: string; job_id: string | null; sequence: number | null }[] = [];
  const context: SessionContext = {
    hub,
    job: (id) => store.getJob(id),
    visible: () => true,
    limits: { highWater: 1 << 30, maxQueued: 1_000_000 },
    onBacklog: () => {},
    onClose: () => {},
    onEnded: () => {},
    window: 100,
    expiresAt: null,
  };
  const sink = {
    write: (frame: Frame) => void sent.push(JSON.parse(frame as string)),
    backlog: () => 0,
    close: () => {},
  };
  const session = new Session(codecFor("websocket", "envelope"), sink, context, {
    closeOnFinish: false,
    single: false,
  });
  session.subscribeAll({}, jobs);
  return { session, sent };
}

Deno.test("a listed job deleted and made again elsewhere is told as deleted then created, and the new job's events all come", () => {
  const store = openSqliteStore(":memory:", { maxEventsPerJob: 1000 });
  try {
    const fanout = new FakeFanout();
    const hub = new Hub(store, fanout);
    createJob(store, "x", T0);
    commit(store, "x", [
      event({ type: "status", data: { status: "running" } }),
      event({ type: "status", data: { status: "completed" } }),
    ]);
    const finished = store.getJob("x")!;
    const { sent } = firehoseSession(store, hub, [finished]);
    assert.equal(sent[0]?.type, "connection");
    // One isolate deletes the finished job; another makes it again, and its notice comes first.
    assert.ok(store.deleteJob("x", T0 + 1000));
    const again = createJob(store, "x", T0 + 1000);
    fanout.remoteNotice({ kind: "created", job: again });
    fanout.remoteNotice({ kind: "deleted", jobId: "x", job: finished });
    fanout.remote(
      commit(store, "x", [1, 2, 3].map((n) => event({ type: "log", data: { line: `${n}` } }))),
      true,
    );
    assert.deepEqual(
      sent.slice(1).map((m) => [m.type, m.sequence]),
      [["deleted", null], ["created", null], ["log", 1], ["log", 2], ["log", 3]],
    );
  } finally {
    store.close();
  }
});

Deno.test("a listed job's events its greeting counted are not sent again, nor a created for it", () => {
  const store = openSqliteStore(":memory:", { maxEventsPerJob: 1000 });
  try {
    const fanout = new FakeFanout();
    const hub = new Hub(store, fanout);
    const made = createJob(store, "y", T0);
    // Committed on another isolate before the greeting read the list; its messages come after.
    const early = commit(
      store,
      "y",
      [1, 2].map((n) => event({ type: "log", data: { line: `${n}` } })),
    );
    const { sent } = firehoseSession(store, hub, [store.getJob("y")!]);
    fanout.remoteNotice({ kind: "created", job: made });
    fanout.remote(early, true);
    fanout.remote(commit(store, "y", [event({ type: "log", data: { line: "3" } })]), true);
    assert.deepEqual(sent.slice(1).map((m) => [m.type, m.sequence]), [["log", 3]]);
  } finally {
    store.close();
  }
});
