import assert from "node:assert/strict";
import { SseParser } from "../../src/client/sse_parser.ts";

Deno.test("SseParser reads fields, joins data lines and skips comments", () => {
  const parser = new SseParser();
  const out = parser.feed(
    'retry: 2000\n: jobwire\n\nid: 7\nevent: progress\ndata: {"a":1}\ndata: x\n\n',
  );
  assert.deepEqual(out, [{ event: "progress", data: '{"a":1}\nx', id: "7", retry: undefined }]);
});

Deno.test("SseParser gives the same messages whatever the chunking and line endings", () => {
  const text = "event: log\r\ndata: one\r\n\r\nid: 2\rdata: two\r\rdata:three\n\n";
  const whole = new SseParser().feed(text);
  assert.deepEqual(whole.map((m) => [m.event, m.data, m.id]), [
    ["log", "one", undefined],
    ["message", "two", "2"],
    ["message", "three", "2"],
  ]);
  for (let size = 1; size <= 5; size++) {
    const parser = new SseParser();
    const got = [];
    for (let i = 0; i < text.length; i += size) got.push(...parser.feed(text.slice(i, i + size)));
    assert.deepEqual(got, whole, `chunks of ${size}`);
  }
});

Deno.test("SseParser dispatches nothing for an event without data", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.feed("event: x\n\n"), []);
  assert.deepEqual(parser.feed("data: y\n\n").map((m) => m.event), ["message"]);
});
