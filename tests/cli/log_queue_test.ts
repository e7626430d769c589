import assert from "node:assert/strict";
import { LogQueue, type QueuedLine } from "../../src/cli/log_queue.ts";

const line = (text: string): QueuedLine => ({ line: text, level: "info", source: "stdout" });

Deno.test("LogQueue drops the oldest lines past its line bound and counts them", () => {
  const queue = new LogQueue(3, 1_000);
  for (const text of ["a", "b", "c", "d", "e"]) queue.push(line(text));
  assert.equal(queue.length, 3);
  assert.equal(queue.dropped, 2);
  assert.equal(queue.removed, 2);
  assert.deepEqual(queue.take(10, 1_000).map((l) => l.line), ["c", "d", "e"]);
  assert.equal(queue.removed, 5);
  assert.equal(queue.takeDropped(), 2);
  assert.equal(queue.dropped, 0);
});

Deno.test("LogQueue drops the oldest lines past its character bound, keeping the newest", () => {
  const queue = new LogQueue(100, 10);
  queue.push(line("12345"));
  queue.push(line("67890"));
  queue.push(line("abc"));
  assert.deepEqual(queue.take(10, 100).map((l) => l.line), ["67890", "abc"]);
  queue.push(line("x".repeat(50)));
  assert.equal(queue.length, 1, "one line over the bound is still kept");
});

Deno.test("LogQueue.take respects both batch bounds but always takes one line", () => {
  const queue = new LogQueue();
  for (let i = 0; i < 10; i++) queue.push(line(`line ${i}`));
  assert.equal(queue.take(3, 1_000).length, 3);
  assert.equal(queue.take(100, 13).length, 2);
  assert.equal(queue.take(100, 1).length, 1);
  assert.equal(queue.length, 4);
});

Deno.test("LogQueue keeps order and serials across many pushes and compactions", () => {
  const queue = new LogQueue(5_000, 1_000_000);
  const seen: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    assert.equal(queue.push(line(String(i))), i + 1);
    if (i % 3 === 0) seen.push(...queue.take(2, 1_000).map((l) => l.line));
  }
  seen.push(...queue.take(10_000, 10_000_000).map((l) => l.line));
  const numbers = seen.map(Number);
  assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!));
  assert.equal(numbers.length + queue.dropped, 20_000);
  assert.equal(queue.removed, 20_000);
});

Deno.test("LogQueue refuses bounds below 1", () => {
  assert.throws(() => new LogQueue(0, 10), RangeError);
});
