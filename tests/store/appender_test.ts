import assert from "node:assert/strict";
import { Appender, type PublishReply, type PublishRequest } from "../../src/store/appender.ts";
import { Committer } from "../../src/store/committer.ts";
import { openSqliteStore } from "../../src/store/sqlite_store.ts";
import { checkEvent } from "../../src/jobs/events.ts";

const ADMIN = { sub: "test", scopes: ["admin" as const], jobs: [] };

function request(jobId: string, line: string): PublishRequest {
  const check = checkEvent({ type: "log", data: { line } });
  if (!check.ok) throw new TypeError("invalid test event");
  return { jobId, events: [check.event], principal: ADMIN };
}

Deno.test("the writer commits a forward sent twice once, and answers the repeat with its outcome", async () => {
  const store = openSqliteStore(":memory:", { maxEventsPerJob: 1000 });
  const name = `writer-${crypto.randomUUID()}`;
  const committed: PublishReply[][] = [];
  const committer = new Committer(store, (_outcomes, tags) => {
    committed.push(tags.filter((t) => t !== undefined) as PublishReply[]);
  });
  const writer = new Appender(committer, store, name, "writer-isolate");
  // Plays the forwarding isolate: its first forward's outcome is taken to be lost.
  const other = new BroadcastChannel(name);
  const replies: PublishReply[] = [];
  other.onmessage = (e) => {
    if (e.data.kind === "reply") replies.push(e.data.reply);
  };
  try {
    assert.equal(writer.writer, true);
    const created = store.createJob({ id: "j", kind: null, owner: null, metadata: {} }, 0);
    assert.ok(created.ok);
    const forward = { kind: "forward", from: "other-isolate", id: 7, request: request("j", "x") };
    other.postMessage(forward);
    // Heard again while it commits: nothing more happens.
    other.postMessage(forward);
    while (committed.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(committed[0], [{ to: "other-isolate", id: 7 }]);
    // Sent again after the commit (its outcome went missing): answered, not committed.
    other.postMessage(forward);
    while (replies.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.to, "other-isolate");
    assert.equal(replies[0]!.id, 7);
    assert.deepEqual(replies[0]!.outcome.ok && replies[0]!.outcome.sequences, [1]);
    assert.equal(store.getJob("j")?.last_sequence, 1, "committed once");
    assert.equal(committed.length, 1);
  } finally {
    other.close();
    writer.close();
    store.close();
  }
});

Deno.test("a forward whose outcome never arrives is sent again until the writer answers", async () => {
  const store = openSqliteStore(":memory:", { maxEventsPerJob: 1000 });
  const name = `writer-${crypto.randomUUID()}`;
  // Another owner holds the lease: this appender forwards.
  assert.ok(store.takeLease(`writer:${name}`, "elsewhere", Date.now() + 60_000, Date.now()));
  const committer = new Committer(store, () => {});
  const forwarder = new Appender(committer, store, name, "me");
  const writer = new BroadcastChannel(name);
  const heard: number[] = [];
  writer.onmessage = (e) => {
    if (e.data.kind !== "forward") return;
    heard.push(e.data.id);
    // The first copy is dropped on the way; the second is answered.
    if (heard.length === 2) {
      const reply: PublishReply = {
        to: e.data.from,
        id: e.data.id,
        outcome: { ok: true, sequences: [4], last_sequence: 4, status: "running", replayed: false },
      };
      writer.postMessage({ kind: "reply", reply });
    }
  };
  try {
    assert.equal(forwarder.writer, false);
    const outcome = await forwarder.append(request("j", "x"));
    assert.deepEqual(outcome.ok && outcome.sequences, [4]);
    assert.equal(heard.length, 2);
    assert.equal(heard[0], heard[1], "the same forward, sent again");
  } finally {
    writer.close();
    forwarder.close();
    store.close();
  }
});

Deno.test("closing a forwarder fails the forwards still waiting and stops sending them", async () => {
  const store = openSqliteStore(":memory:", { maxEventsPerJob: 1000 });
  const name = `writer-${crypto.randomUUID()}`;
  assert.ok(store.takeLease(`writer:${name}`, "elsewhere", Date.now() + 60_000, Date.now()));
  const forwarder = new Appender(new Committer(store, () => {}), store, name, "me");
  const writer = new BroadcastChannel(name);
  let heard = 0;
  writer.onmessage = () => heard++;
  try {
    const waiting = forwarder.append(request("j", "x"));
    while (heard === 0) await new Promise((r) => setTimeout(r, 5));
    forwarder.close();
    await assert.rejects(waiting, /shutting down/);
    // Past the resend interval: nothing more was sent.
    await new Promise((r) => setTimeout(r, 1_300));
    assert.equal(heard, 1);
  } finally {
    writer.close();
    forwarder.close();
    store.close();
  }
});
