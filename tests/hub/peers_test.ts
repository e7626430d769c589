import assert from "node:assert/strict";
import { type IsolateFigures, Peers } from "../../src/hub/peers.ts";
import { LossyChannel } from "../_helpers/lossy_channel.ts";

const figures = () => ({}) as IsolateFigures;

async function until(done: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

Deno.test("peers: a count change lost on the way is made good from the sender's whole counts", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const local: Record<string, number> = {};
  let lose = false;
  const sender = new Peers(
    name,
    () => ({ ...local }),
    figures,
    new LossyChannel(name, (wire) => lose && wire.kind === "count"),
  );
  const receiver = new Peers(name, () => ({}), figures);
  try {
    const set = (key: string, count: number) => {
      if (count === 0) delete local[key];
      else local[key] = count;
      sender.setCount(key, count);
    };
    set("c:alice", 3);
    set("c:bob", 1);
    await until(() => receiver.remoteCount("c:alice") === 3 && receiver.remoteCount("c:bob") === 1);
    assert.equal(receiver.remoteCount("c:alice"), 3);
    // The last changes are lost, and nothing follows them but the sender's alive.
    lose = true;
    set("c:alice", 5);
    set("c:bob", 0);
    lose = false;
    await until(() => receiver.remoteCount("c:alice") === 5 && receiver.remoteCount("c:bob") === 0);
    assert.equal(receiver.remoteCount("c:alice"), 5);
    assert.equal(receiver.remoteCount("c:bob"), 0, "a key gone at the sender goes here too");
    // A lost change followed by another is noticed at once by its number.
    lose = true;
    set("c:carol", 2);
    lose = false;
    set("c:dave", 1);
    await until(() => receiver.remoteCount("c:carol") === 2);
    assert.equal(receiver.remoteCount("c:carol"), 2);
    assert.equal(receiver.remoteCount("c:dave"), 1);
  } finally {
    sender.close();
    receiver.close();
  }
});

Deno.test("peers: counts that all arrive stay as they were sent", async () => {
  const name = `test-${crypto.randomUUID()}`;
  const local: Record<string, number> = {};
  const sender = new Peers(name, () => ({ ...local }), figures);
  const receiver = new Peers(name, () => ({}), figures);
  try {
    for (let i = 1; i <= 50; i++) {
      local["c:total"] = i;
      sender.setCount("c:total", i);
    }
    await until(() => receiver.remoteCount("c:total") === 50);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(receiver.remoteCount("c:total"), 50);
    assert.equal(receiver.count, 1);
  } finally {
    sender.close();
    receiver.close();
  }
});

Deno.test("peers: an isolate that does not answer in time is counted with the figures it last gave", async () => {
  const name = `test-${crypto.randomUUID()}`;
  let published = 10;
  let silent = false;
  const busy = new Peers(
    name,
    () => ({}),
    () => ({ published }) as IsolateFigures,
    new LossyChannel(name, (wire) => silent && wire.kind === "stats-reply"),
  );
  const asker = new Peers(name, () => ({}), figures);
  try {
    await until(() => asker.count === 1);
    // Busy before it ever answered: nothing to count it with.
    silent = true;
    assert.deepEqual(await asker.gather(100), { figures: [], stale: 0 });
    silent = false;
    let answer = await asker.gather(2000);
    assert.deepEqual([answer.figures.map((f) => f.published), answer.stale], [[10], 0]);
    published = 25;
    silent = true;
    answer = await asker.gather(100);
    // Not a sum that drops by its share (a counter read as reset), but its last figures.
    assert.deepEqual([answer.figures.map((f) => f.published), answer.stale], [[10], 1]);
    silent = false;
    answer = await asker.gather(2000);
    assert.deepEqual([answer.figures.map((f) => f.published), answer.stale], [[25], 0]);
  } finally {
    busy.close();
    asker.close();
  }
});
