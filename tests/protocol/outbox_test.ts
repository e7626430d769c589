import assert from "node:assert/strict";
import fc from "fast-check";
import type { Frame } from "../../src/protocol/codec.ts";
import { deliveryRound, Outbox, type Sink, SLOW_CONSUMER_CODE } from "../../src/protocol/outbox.ts";

/**
 * An in-memory sink whose backlog grows with what is written, as a socket's does; the
 * test lowers it by hand (the network taking bytes) or sets it to simulate a full socket.
 */
class FakeSink implements Sink {
  written: Frame[] = [];
  closes: { code: number; reason: string }[] = [];
  pending = 0;

  write(frame: Frame): void {
    if (this.closes.length > 0) throw new Error("write after close");
    this.written.push(frame);
    this.pending += typeof frame === "string" ? frame.length : frame.byteLength;
  }
  backlog(): number {
    return this.pending;
  }
  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
  }
}

function setup(highWater = 100, maxQueued = 10) {
  const sink = new FakeSink();
  const backlogCalls: Outbox[] = [];
  const outbox = new Outbox(sink, { highWater, maxQueued }, (o) => backlogCalls.push(o));
  return { sink, outbox, backlogCalls };
}

Deno.test("SLOW_CONSUMER_CODE is 4008", () => {
  assert.equal(SLOW_CONSUMER_CODE, 4008);
});

Deno.test("outbox writes frames straight through while the backlog is below highWater", () => {
  const { sink, outbox, backlogCalls } = setup(100);
  sink.pending = 97;
  outbox.push("a");
  outbox.push("b", "k");
  const bytes = new TextEncoder().encode("c");
  outbox.push(bytes);
  assert.deepEqual(sink.written, ["a", "b", bytes]);
  assert.equal(sink.written[2], bytes);
  assert.equal(outbox.waiting, 0);
  assert.equal(backlogCalls.length, 0);
});

Deno.test("outbox holds frames when the backlog reaches highWater", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  outbox.push("a");
  outbox.push("b");
  assert.deepEqual(sink.written, []);
  assert.equal(outbox.waiting, 2);
  assert.equal(outbox.closed, false);
});

Deno.test("outbox calls onBacklog once when frames start waiting", () => {
  const { sink, outbox, backlogCalls } = setup(100);
  sink.pending = 500;
  outbox.push("a");
  outbox.push("b");
  outbox.push("c");
  assert.equal(backlogCalls.length, 1);
  assert.equal(backlogCalls[0], outbox);
});

Deno.test("outbox drain sends waiting frames in order once the backlog drops", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  for (const f of ["1", "2", "3"]) outbox.push(f);
  sink.pending = 0;
  assert.equal(outbox.drain(), true);
  assert.deepEqual(sink.written, ["1", "2", "3"]);
  assert.equal(outbox.waiting, 0);
});

Deno.test("outbox drain stops and returns false while the backlog is still high", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  outbox.push("1");
  outbox.push("2");
  assert.equal(outbox.drain(), false);
  assert.deepEqual(sink.written, []);
  assert.equal(outbox.waiting, 2);
});

Deno.test("outbox drain writes only while the sink has room and resumes later", () => {
  const sink = new FakeSink();
  const outbox = new Outbox(sink, { highWater: 100, maxQueued: 10 }, () => {});
  sink.pending = 100;
  for (const f of ["1", "2", "3", "4"]) outbox.push(f);
  // A sink whose backlog grows with each write: room for two frames.
  sink.pending = 60;
  const write = sink.write.bind(sink);
  sink.write = (frame) => {
    write(frame);
    sink.pending += 20;
  };
  assert.equal(outbox.drain(), false);
  assert.deepEqual(sink.written, ["1", "2"]);
  assert.equal(outbox.waiting, 2);
  sink.pending = 0;
  sink.write = write;
  assert.equal(outbox.drain(), true);
  assert.deepEqual(sink.written, ["1", "2", "3", "4"]);
});

Deno.test("outbox queues a new frame behind waiting ones even when the backlog has dropped", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  outbox.push("1");
  sink.pending = 0;
  outbox.push("2");
  assert.deepEqual(sink.written, []);
  outbox.drain();
  assert.deepEqual(sink.written, ["1", "2"]);
});

Deno.test("outbox writes straight through again after a full drain", () => {
  const { sink, outbox, backlogCalls } = setup(100);
  sink.pending = 100;
  outbox.push("1");
  sink.pending = 0;
  outbox.drain();
  outbox.push("2");
  assert.deepEqual(sink.written, ["1", "2"]);
  assert.equal(outbox.waiting, 0);
  // Writing fills the socket: once it holds highWater bytes, frames wait again.
  outbox.push("x".repeat(98));
  outbox.push("3");
  assert.deepEqual(sink.written.length, 3);
  assert.equal(outbox.waiting, 1);
  assert.equal(backlogCalls.length, 2);
});

Deno.test("outbox coalesces waiting frames with the same key, keeping the newest at the tail", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  outbox.push("log-1");
  outbox.push("progress-10", "progress:job");
  outbox.push("log-2");
  outbox.push("progress-20", "progress:job");
  outbox.push("log-3");
  assert.equal(outbox.coalesced, 1);
  sink.pending = 0;
  outbox.drain();
  assert.deepEqual(sink.written, ["log-1", "log-2", "progress-20", "log-3"]);
});

Deno.test("outbox coalesces repeatedly so only the newest frame of a key is sent", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  for (let i = 1; i <= 5; i++) outbox.push(`p${i}`, "k");
  assert.equal(outbox.coalesced, 4);
  sink.pending = 0;
  outbox.drain();
  assert.deepEqual(sink.written, ["p5"]);
});

Deno.test("outbox keeps frames of different keys apart", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  outbox.push("a1", "a");
  outbox.push("b1", "b");
  outbox.push("a2", "a");
  outbox.push("b2", "b");
  sink.pending = 0;
  outbox.drain();
  assert.deepEqual(sink.written, ["a2", "b2"]);
  assert.equal(outbox.coalesced, 2);
});

Deno.test("outbox does not coalesce a frame with one already sent", () => {
  const { sink, outbox } = setup(100);
  outbox.push("p1", "k");
  sink.pending = 100;
  outbox.push("p2", "k");
  sink.pending = 0;
  outbox.drain();
  sink.pending = 100;
  outbox.push("p3", "k");
  sink.pending = 0;
  outbox.drain();
  assert.deepEqual(sink.written, ["p1", "p2", "p3"]);
  assert.equal(outbox.coalesced, 0);
});

Deno.test("outbox closes the sink with 4008 when more than maxQueued bounded frames wait", () => {
  const { sink, outbox } = setup(100, 3);
  sink.pending = 100;
  outbox.push("1");
  outbox.push("2");
  outbox.push("3");
  assert.equal(outbox.closed, false);
  assert.equal(sink.closes.length, 0);
  outbox.push("4");
  assert.equal(outbox.closed, true);
  assert.equal(sink.closes.length, 1);
  assert.equal(sink.closes[0]!.code, SLOW_CONSUMER_CODE);
  // What waited is dropped: only the client knows where it got to, and the reason says so.
  assert.match(sink.closes[0]!.reason, /since= the last sequence received/);
  assert.deepEqual(sink.written, []);
});

Deno.test("outbox does not count coalesced frames towards maxQueued", () => {
  const { sink, outbox } = setup(100, 2);
  sink.pending = 100;
  for (let i = 0; i < 50; i++) outbox.push(`p${i}`, "k");
  outbox.push("log");
  assert.equal(outbox.closed, false);
  sink.pending = 0;
  outbox.drain();
  assert.deepEqual(sink.written, ["p49", "log"]);
});

Deno.test("outbox writes unbounded replay frames straight out when nothing waits", () => {
  const { sink, outbox } = setup(100, 3);
  sink.pending = 100;
  for (let i = 0; i < 5; i++) outbox.push(`r${i}`, undefined, false);
  assert.deepEqual(sink.written, ["r0", "r1", "r2", "r3", "r4"]);
  assert.equal(outbox.waiting, 0);
});

Deno.test("outbox never closes with 4008 for unbounded replay frames", () => {
  const { sink, outbox } = setup(100, 3);
  sink.pending = 100;
  // A live frame waits; replay frames after it queue behind it (order) but never count.
  outbox.push("live");
  for (let i = 0; i < 100; i++) outbox.push(`r${i}`, undefined, false);
  assert.equal(outbox.closed, false);
  assert.equal(sink.closes.length, 0);
  assert.equal(outbox.waiting, 101);
  // The network empties the socket as often as needed for the whole replay to leave.
  for (let round = 0; round < 10 && !outbox.drain(); round++) sink.pending = 0;
  assert.equal(outbox.waiting, 0);
  assert.equal(sink.closes.length, 0);
  assert.equal(sink.written.length, 101);
  assert.equal(sink.written[0], "live");
  assert.equal(sink.written[1], "r0");
  assert.equal(sink.written[100], "r99");
});

Deno.test("outbox counts only bounded frames behind unbounded ones towards maxQueued", () => {
  const { sink, outbox } = setup(100, 2);
  sink.pending = 100;
  for (let i = 0; i < 10; i++) outbox.push(`r${i}`, undefined, false);
  outbox.push("live1");
  outbox.push("live2");
  assert.equal(outbox.closed, false);
  outbox.push("live3");
  assert.equal(outbox.closed, true);
  assert.equal(sink.closes[0]!.code, 4008);
});

Deno.test("outbox frees room under maxQueued as drained frames leave", () => {
  const { sink, outbox } = setup(100, 2);
  sink.pending = 100;
  outbox.push("1");
  outbox.push("2");
  sink.pending = 0;
  outbox.drain();
  sink.pending = 100;
  outbox.push("3");
  outbox.push("4");
  assert.equal(outbox.closed, false);
  sink.pending = 0;
  outbox.drain();
  assert.deepEqual(sink.written, ["1", "2", "3", "4"]);
});

Deno.test("outbox finish writes every waiting frame whatever the backlog, then closes", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 1_000_000;
  outbox.push("1");
  outbox.push("p1", "k");
  outbox.push("p2", "k");
  outbox.push("2");
  outbox.finish(1000, "job finished");
  assert.deepEqual(sink.written, ["1", "p2", "2"]);
  assert.deepEqual(sink.closes, [{ code: 1000, reason: "job finished" }]);
  assert.equal(outbox.closed, true);
});

Deno.test("outbox finish with nothing waiting just closes", () => {
  const { sink, outbox } = setup(100);
  outbox.finish(1000, "done");
  assert.deepEqual(sink.written, []);
  assert.deepEqual(sink.closes, [{ code: 1000, reason: "done" }]);
});

Deno.test("outbox close drops waiting frames and closes the sink once", () => {
  const { sink, outbox } = setup(100);
  sink.pending = 100;
  outbox.push("1");
  outbox.push("2");
  outbox.close(1001, "going away");
  outbox.close(1011, "again");
  outbox.finish(1000, "and again");
  assert.deepEqual(sink.closes, [{ code: 1001, reason: "going away" }]);
  sink.pending = 0;
  assert.equal(outbox.drain(), true);
  assert.deepEqual(sink.written, []);
  assert.equal(outbox.waiting, 0);
});

Deno.test("outbox ignores pushes after close", () => {
  const { sink, outbox } = setup(100);
  outbox.close(1000, "bye");
  outbox.push("late");
  outbox.push("late", "k");
  assert.deepEqual(sink.written, []);
  assert.equal(outbox.waiting, 0);
});

Deno.test("outbox stays closed after a 4008 and ignores later pushes and close", () => {
  const { sink, outbox } = setup(100, 1);
  sink.pending = 100;
  outbox.push("1");
  outbox.push("2");
  outbox.push("3");
  outbox.close(1000, "later");
  sink.pending = 0;
  outbox.push("4");
  assert.deepEqual(sink.closes.map((c) => c.code), [4008]);
  assert.deepEqual(sink.written, []);
});

type Op =
  | { op: "push"; key: string | undefined; bounded: boolean }
  | { op: "backlog"; bytes: number }
  | { op: "drain" };

Deno.test("outbox matches a simple queue model for any sequence of pushes and drains", () => {
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      op: fc.constant("push" as const),
      key: fc.option(fc.constantFrom("a", "b", "c"), { nil: undefined }),
      bounded: fc.boolean(),
    }),
    fc.record({ op: fc.constant("backlog" as const), bytes: fc.integer({ min: 0, max: 150 }) }),
    fc.record({ op: fc.constant("drain" as const) }),
  );
  fc.assert(
    fc.property(
      fc.array(opArb, { maxLength: 60 }),
      fc.integer({ min: 0, max: 6 }),
      (ops, maxQueued) => {
        const highWater = 100;
        const sink = new FakeSink();
        const outbox = new Outbox(sink, { highWater, maxQueued }, () => {});
        // The model: waiting frames in order; the same backlog arithmetic.
        const model: { frame: string; key: string | undefined; bounded: boolean }[] = [];
        const written: string[] = [];
        let backlog = 0;
        let closed = false;
        let n = 0;
        for (const step of ops) {
          if (step.op === "backlog") {
            // The network takes bytes: a socket's backlog only shrinks on its own.
            sink.pending = Math.min(sink.pending, step.bytes);
            backlog = Math.min(backlog, step.bytes);
          } else if (step.op === "push") {
            const frame = `f${n++}`;
            outbox.push(frame, step.key, step.bounded);
            if (closed) continue;
            if (model.length === 0 && backlog < highWater) {
              written.push(frame);
              backlog += frame.length;
              continue;
            }
            if (step.key !== undefined) {
              const older = model.findIndex((m) => m.key === step.key);
              if (older !== -1) model.splice(older, 1);
            }
            model.push({ frame, key: step.key, bounded: step.bounded });
            if (model.filter((m) => m.bounded).length > maxQueued) {
              closed = true;
              model.length = 0;
            }
          } else {
            const done = outbox.drain();
            if (!closed) {
              while (model.length > 0 && backlog < highWater) {
                const frame = model.shift()!.frame;
                written.push(frame);
                backlog += frame.length;
              }
            }
            assert.equal(done, closed || model.length === 0);
          }
          assert.deepEqual(sink.written, written);
          assert.equal(outbox.closed, closed);
          assert.deepEqual(sink.closes.map((c) => c.code), closed ? [4008] : []);
        }
      },
    ),
    { numRuns: 500 },
  );
});

/** A sink that gathers while corked, recording what each uncork sent together. */
class CorkingSink extends FakeSink {
  corked = false;
  gathered: Frame[] = [];
  sent: Frame[][] = [];

  override write(frame: Frame): void {
    if (this.corked) this.gathered.push(frame);
    else this.sent.push([frame]);
    super.write(frame);
  }
  cork(): void {
    this.corked = true;
  }
  uncork(): void {
    this.corked = false;
    if (this.gathered.length > 0) this.sent.push(this.gathered);
    this.gathered = [];
  }
  override close(code: number, reason: string): void {
    this.uncork();
    super.close(code, reason);
  }
}

Deno.test("outbox drains waiting frames through a corked sink, so they can leave together", () => {
  const sink = new CorkingSink();
  const outbox = new Outbox(sink, { highWater: 100, maxQueued: 10 }, () => {});
  sink.pending = 100;
  outbox.push("a");
  outbox.push("b");
  outbox.push("c");
  assert.deepEqual(sink.sent, []);
  sink.pending = 0;
  assert.equal(outbox.drain(), true);
  assert.deepEqual(sink.sent, [["a", "b", "c"]]);
  assert.equal(sink.corked, false);
  // With nothing waiting, a drain does not cork at all.
  outbox.drain();
  outbox.push("d");
  assert.deepEqual(sink.sent, [["a", "b", "c"], ["d"]]);
});

Deno.test("outbox uncorks a sink whose drain stops at highWater", () => {
  const sink = new CorkingSink();
  const outbox = new Outbox(sink, { highWater: 2, maxQueued: 10 }, () => {});
  sink.pending = 2;
  for (const frame of ["a", "b", "c", "d"]) outbox.push(frame);
  sink.pending = 0;
  assert.equal(outbox.drain(), false);
  assert.deepEqual(sink.sent, [["a", "b"]]);
  assert.equal(sink.corked, false);
  assert.equal(outbox.waiting, 2);
});

Deno.test("outbox finish gathers the waiting frames and the close sends them first", () => {
  const sink = new CorkingSink();
  const outbox = new Outbox(sink, { highWater: 1, maxQueued: 10 }, () => {});
  sink.pending = 1;
  outbox.push("a");
  outbox.push("b");
  outbox.finish(1000, "finished");
  assert.deepEqual(sink.sent, [["a", "b"]]);
  assert.deepEqual(sink.closes, [{ code: 1000, reason: "finished" }]);
});

Deno.test("a delivery round uncorks every outbox even when one connection's send throws", () => {
  class Failing extends CorkingSink {
    override uncork(): void {
      super.uncork();
      throw new Error("socket gone");
    }
  }
  const failing = new Failing();
  const sink = new CorkingSink();
  const first = new Outbox(failing, { highWater: 100, maxQueued: 10 }, () => {});
  const second = new Outbox(sink, { highWater: 100, maxQueued: 10 }, () => {});
  deliveryRound(() => {
    first.push("a");
    second.push("b");
  });
  assert.deepEqual(sink.sent, [["b"]]);
  assert.equal(sink.corked, false);
  // The next round corks it again and sends at its end.
  deliveryRound(() => second.push("c"));
  assert.deepEqual(sink.sent, [["b"], ["c"]]);
});

Deno.test("outbox overfull counts the frames waiting in it, replays included, not only the socket's", () => {
  const sink = new FakeSink();
  const outbox = new Outbox(sink, { highWater: 10, maxQueued: 10, maxUnread: 100 }, () => {});
  sink.pending = 10;
  outbox.push("x".repeat(5));
  assert.equal(outbox.overfull(), false);
  // A replay behind a waiting frame joins the queue, uncounted by maxQueued.
  for (let i = 0; i < 20; i++) outbox.push("r".repeat(10), undefined, false);
  assert.equal(outbox.waiting, 21);
  assert.equal(outbox.closed, false);
  assert.equal(outbox.overfull(), true);
  sink.pending = 0;
  // The socket takes what fits; what is left still counts.
  assert.equal(outbox.drain(), false);
  assert.equal(outbox.overfull(), true);
  sink.pending = 0;
  while (!outbox.drain()) sink.pending = 0;
  assert.equal(outbox.overfull(), false);
});

Deno.test("outbox drops replaced frames from its queue, so progress after progress to a stuck client holds no more", () => {
  const { sink, outbox } = setup(100, 10);
  sink.pending = 100;
  outbox.push("log-1");
  for (let i = 0; i < 10_000; i++) outbox.push(`progress-${i}`, "progress:j");
  outbox.push("log-2");
  // Two logs and the newest progress wait: not 10,002 entries.
  assert.equal(outbox.waiting, 3);
  assert.equal(outbox.coalesced, 9_999);
  assert.equal(outbox.closed, false);
  sink.pending = 0;
  assert.equal(outbox.drain(), true);
  assert.deepEqual(sink.written, ["log-1", "progress-9999", "log-2"]);
  assert.equal(outbox.waiting, 0);
});
