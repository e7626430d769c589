import assert from "node:assert/strict";
import { BroadcastFanout } from "../../src/hub/broadcast_fanout.ts";
import type { FanoutMessage } from "../../src/hub/fanout.ts";
import { LossyChannel } from "../_helpers/lossy_channel.ts";

/** Runs a receiving fanout on another thread, as another isolate of the server would be. */
function receiver(name: string, stallMs: number): Worker {
  const source = `
    import { BroadcastFanout } from ${
    JSON.stringify(new URL("../../src/hub/broadcast_fanout.ts", import.meta.url).href)
  };
    const fanout = new BroadcastFanout(${JSON.stringify(name)});
    const seen = { events: [], notices: 0, lost: 0 };
    let stalled = false;
    fanout.listen(
      (message) => {
        if (!stalled) {
          stalled = true;
          // Busy, as an isolate replaying a long history is: the channel backs up.
          const until = Date.now() + ${stallMs};
          while (Date.now() < until) { /* hold the thread */ }
        }
        for (const entry of message.jobs) seen.events.push(entry[2]);
      },
      () => { seen.notices++; },
      () => { seen.lost++; },
    );
    self.onmessage = (e) => {
      if (e.data === "report") self.postMessage(seen);
      if (e.data === "close") { fanout.close(); self.close(); }
    };
    self.postMessage("ready");
  `;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  return new Worker(url, { type: "module" });
}

function next(worker: Worker): Promise<unknown> {
  return new Promise((resolve) => {
    worker.onmessage = (e) => resolve(e.data);
  });
}

/** What the receiver got, once the notice sent after the messages arrived. */
async function received(
  worker: Worker,
): Promise<{ events: number[]; notices: number; lost: number }> {
  while (true) {
    await new Promise((r) => setTimeout(r, 20));
    worker.postMessage("report");
    const seen = await next(worker) as { events: number[]; notices: number; lost: number };
    if (seen.notices > 0) return seen;
  }
}

function message(sequence: number): FanoutMessage {
  return { jobs: [["j", sequence, sequence, false, "2026-01-01T00:00:00.000Z"]] };
}

Deno.test("broadcast fanout delivers messages in order to another isolate, none lost, wakes unseen", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const worker = receiver(name, 0);
  assert.equal(await next(worker), "ready");
  const fanout = new BroadcastFanout(name);
  try {
    for (let i = 1; i <= 100; i++) {
      // Wakes go between the messages: the receiver neither sees them nor counts a gap.
      if (i % 10 === 0) fanout.wake();
      fanout.publish(message(i));
    }
    fanout.notify({ kind: "deleted", jobId: "j" });
    const seen = await received(worker);
    assert.deepEqual(seen.events, Array.from({ length: 100 }, (_, i) => i + 1));
    assert.equal(seen.lost, 0);
  } finally {
    fanout.close();
    worker.postMessage("close");
  }
});

Deno.test("broadcast fanout tells a receiver that fell behind that messages were lost", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const worker = receiver(name, 500);
  assert.equal(await next(worker), "ready");
  const fanout = new BroadcastFanout(name);
  try {
    // More than the 256 messages Deno's channel holds, while the receiver is busy.
    fanout.publish(message(1));
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 2; i <= 1000; i++) fanout.publish(message(i));
    fanout.notify({ kind: "deleted", jobId: "j" });
    const seen = await received(worker);
    assert.ok(seen.events.length < 1000, "the channel dropped messages");
    assert.ok(seen.lost >= 1, "the receiver was told");
    assert.ok(seen.events.every((n, i) => i === 0 || n > seen.events[i - 1]!), "in order");
  } finally {
    fanout.close();
    worker.postMessage("close");
  }
});

Deno.test("broadcast fanout: a message the channel cannot take makes the receiver catch up at once", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const worker = receiver(name, 0);
  assert.equal(await next(worker), "ready");
  const fanout = new BroadcastFanout(name);
  try {
    fanout.publish(message(1));
    // A function cannot be cloned: postMessage throws, and nothing of this message goes out.
    const uncloneable = message(2);
    uncloneable.jobs[0]![5] = { timestamp: "t", types: [], data: [], job: (() => {}) as never };
    fanout.publish(uncloneable);
    fanout.notify({ kind: "deleted", jobId: "j" });
    const seen = await received(worker);
    assert.deepEqual(seen.events, [1]);
    assert.equal(seen.lost, 1, "told before any later commit");
  } finally {
    fanout.close();
    worker.postMessage("close");
  }
});

/** What the receiver has seen, once `done` holds for it (within ten seconds). */
async function seenWhen(
  worker: Worker,
  done: (seen: { events: number[]; lost: number }) => boolean,
): Promise<{ events: number[]; notices: number; lost: number }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    worker.postMessage("report");
    const seen = await next(worker) as { events: number[]; notices: number; lost: number };
    if (done(seen) || Date.now() > deadline) return seen;
  }
}

Deno.test("broadcast fanout: a lost last message is noticed with nothing sent after it", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const worker = receiver(name, 0);
  assert.equal(await next(worker), "ready");
  const fanout = new BroadcastFanout(
    name,
    new LossyChannel(name, (wire) => wire.kind === "events" && wire.n === 5),
  );
  try {
    for (let i = 1; i <= 5; i++) fanout.publish(message(i));
    // Nothing follows the lost message: the sender's word on how many it sent tells.
    const seen = await seenWhen(worker, (s) => s.lost > 0);
    assert.deepEqual(seen.events, [1, 2, 3, 4]);
    assert.equal(seen.lost, 1);
  } finally {
    fanout.close();
    worker.postMessage("close");
  }
});

Deno.test("broadcast fanout: when the word after the last message is lost too, a later one tells", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const worker = receiver(name, 0);
  assert.equal(await next(worker), "ready");
  let tails = 0;
  const fanout = new BroadcastFanout(
    name,
    new LossyChannel(
      name,
      (wire) => (wire.kind === "events" && wire.n === 3) || (wire.kind === "tail" && tails++ === 0),
    ),
  );
  try {
    for (let i = 1; i <= 3; i++) fanout.publish(message(i));
    const seen = await seenWhen(worker, (s) => s.lost > 0);
    assert.equal(tails >= 2, true, "the first tail was lost, a later one went");
    assert.deepEqual(seen.events, [1, 2]);
    assert.equal(seen.lost, 1);
  } finally {
    fanout.close();
    worker.postMessage("close");
  }
});

Deno.test("broadcast fanout: messages that all arrive are never taken for lost, tails and all", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const worker = receiver(name, 0);
  assert.equal(await next(worker), "ready");
  const fanout = new BroadcastFanout(name);
  try {
    for (let i = 1; i <= 3; i++) {
      fanout.publish(message(i));
      // Quiet spells long enough for a tail after each message.
      await new Promise((r) => setTimeout(r, 60));
    }
    const seen = await seenWhen(worker, (s) => s.events.length === 3);
    await new Promise((r) => setTimeout(r, 1200));
    const later = await seenWhen(worker, () => true);
    assert.deepEqual(seen.events, [1, 2, 3]);
    assert.equal(later.lost, 0);
  } finally {
    fanout.close();
    worker.postMessage("close");
  }
});
