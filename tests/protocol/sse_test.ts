import assert from "node:assert/strict";
import { formatSse, formatSseComment } from "../../src/protocol/sse.ts";

Deno.test("formatSse frames data alone as one data line and a blank line", () => {
  assert.equal(formatSse({ data: "hello" }), "data: hello\n\n");
});

Deno.test("formatSse writes id, event and data in that order", () => {
  assert.equal(
    formatSse({ id: 42, event: "progress", data: '{"a":1}' }),
    'id: 42\nevent: progress\ndata: {"a":1}\n\n',
  );
});

Deno.test("formatSse accepts a string id", () => {
  assert.equal(formatSse({ id: "job-1:7", data: "x" }), "id: job-1:7\ndata: x\n\n");
});

Deno.test("formatSse writes an id of 0 and an empty id", () => {
  assert.equal(formatSse({ id: 0, data: "x" }), "id: 0\ndata: x\n\n");
  assert.equal(formatSse({ id: "", data: "x" }), "id: \ndata: x\n\n");
});

Deno.test("formatSse splits multi-line data into one data line each", () => {
  assert.equal(formatSse({ data: "a\nb\nc" }), "data: a\ndata: b\ndata: c\n\n");
});

Deno.test("formatSse treats \\r\\n and a lone \\r as one line break each in data", () => {
  assert.equal(
    formatSse({ data: "a\r\nb\rc\n\nd" }),
    "data: a\ndata: b\ndata: c\ndata: \ndata: d\n\n",
  );
});

Deno.test("formatSse keeps a trailing line break in data as an empty data line", () => {
  assert.equal(formatSse({ data: "a\n" }), "data: a\ndata: \n\n");
});

Deno.test("formatSse frames empty data as one empty data line", () => {
  assert.equal(formatSse({ data: "" }), "data: \n\n");
});

Deno.test("formatSse writes retry before the other fields", () => {
  assert.equal(
    formatSse({ retry: 3000, id: 1, event: "e", data: "d" }),
    "retry: 3000\nid: 1\nevent: e\ndata: d\n\n",
  );
  assert.equal(formatSse({ retry: 0, data: "d" }), "retry: 0\ndata: d\n\n");
});

Deno.test("formatSse throws RangeError when retry is negative or not an integer", () => {
  for (const retry of [-1, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => formatSse({ retry, data: "x" }), RangeError, String(retry));
  }
});

Deno.test("formatSse throws SyntaxError when the id holds a line break or NUL", () => {
  for (const id of ["1\n2", "1\r2", "1\r\nevent: forged", "a\0b"]) {
    assert.throws(() => formatSse({ id, data: "x" }), SyntaxError, JSON.stringify(id));
  }
});

Deno.test("formatSse throws SyntaxError when the event holds a line break", () => {
  for (const event of ["a\nb", "a\rb", "progress\r\ndata: forged"]) {
    assert.throws(() => formatSse({ event, data: "x" }), SyntaxError, JSON.stringify(event));
  }
});

Deno.test("formatSse output keeps a forged field inside data lines", () => {
  const frame = formatSse({ data: "x\nevent: admin\n\nid: 99" });
  assert.equal(frame, "data: x\ndata: event: admin\ndata: \ndata: id: 99\n\n");
  assert.equal(frame.split("\n\n").length, 2);
});

Deno.test("formatSseComment frames a comment line and a blank line", () => {
  assert.equal(formatSseComment("ping"), ": ping\n\n");
});

Deno.test("formatSseComment splits a multi-line comment into comment lines", () => {
  assert.equal(formatSseComment("a\nb\r\nc\rd"), ": a\n: b\n: c\n: d\n\n");
});

Deno.test("formatSseComment frames an empty comment", () => {
  assert.equal(formatSseComment(""), ": \n\n");
});
