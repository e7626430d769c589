import assert from "node:assert/strict";
import { LineSplitter, MAX_PENDING_CHARS } from "../../src/cli/line_splitter.ts";

const utf8 = new TextEncoder();

/** Feeds `chunks` and returns the segments as `L:text` (line) or `T:text` (transient). */
function split(chunks: (string | number[])[]): string[] {
  const out: string[] = [];
  const sink = (text: string, complete: boolean) => out.push(`${complete ? "L" : "T"}:${text}`);
  const splitter = new LineSplitter();
  for (const chunk of chunks) {
    splitter.push(typeof chunk === "string" ? utf8.encode(chunk) : new Uint8Array(chunk), sink);
  }
  splitter.end(sink);
  return out;
}

Deno.test("LineSplitter splits at LF and CRLF and keeps empty lines", () => {
  assert.deepEqual(split(["a\nb\r\n\nc\n"]), ["L:a", "L:b", "L:", "L:c"]);
});

Deno.test("LineSplitter joins a line split across chunks and ends with the partial line", () => {
  assert.deepEqual(split(["hel", "lo\nwor", "ld"]), ["L:hello", "L:world"]);
});

Deno.test("LineSplitter treats a lone CR as a redraw: transient segments, the last one logged", () => {
  assert.deepEqual(split(["\r 10%|#\r 50%|#####\r100%|##########\n"]), [
    "T:",
    "T: 10%|#",
    "T: 50%|#####",
    "L:100%|##########",
  ]);
});

Deno.test("LineSplitter waits for the next chunk when a chunk ends with CR", () => {
  assert.deepEqual(split(["a\r", "\nb\r", "c\n"]), ["L:a", "T:b", "L:c"]);
  assert.deepEqual(split(["last\r"]), ["L:last"]);
});

Deno.test("LineSplitter decodes UTF-8 split across chunks and replaces invalid bytes", () => {
  const euro = [...utf8.encode("€")];
  assert.deepEqual(split([[euro[0]!], [euro[1]!, euro[2]!, 10], [0xff, 10]]), [
    "L:€",
    "L:\ufffd",
  ]);
});

Deno.test("LineSplitter keeps the start of a line longer than MAX_PENDING_CHARS and counts the rest", () => {
  const segments: [string, boolean, number][] = [];
  const splitter = new LineSplitter();
  const sink = (t: string, c: boolean, o: number) => segments.push([t, c, o]);
  // 10 MB without a line end, in chunks, then the end: one line, not 153 pieces.
  const chunk = utf8.encode("x".repeat(1_000_000));
  for (let i = 0; i < 10; i++) splitter.push(chunk, sink);
  assert.equal(segments.length, 0, "nothing before the line ends");
  splitter.push(utf8.encode("yz\nnext\n"), sink);
  assert.equal(segments.length, 2);
  const [text, complete, omitted] = segments[0]!;
  assert.equal(complete, true);
  assert.equal(text.slice(0, MAX_PENDING_CHARS), "x".repeat(MAX_PENDING_CHARS));
  // What is kept plus what is counted is the whole line.
  assert.equal(text.length + omitted, 10_000_002);
  assert.deepEqual(segments[1], ["next", true, 0]);
  splitter.end(sink);
  assert.equal(segments.length, 2);
});

Deno.test("LineSplitter never cuts a long line inside a surrogate pair", () => {
  const segments: string[] = [];
  const splitter = new LineSplitter();
  splitter.push(
    utf8.encode("A".repeat(MAX_PENDING_CHARS - 1) + "😀".repeat(3) + "B".repeat(70_000) + "\n"),
    (t) => segments.push(t),
  );
  assert.equal(segments.length, 1);
  const line = segments[0]!;
  // Every surrogate kept is in a pair.
  assert.doesNotMatch(
    line,
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/,
  );
});

Deno.test("LineSplitter logs what stays on screen when a line ends with an empty overwrite (abc\\r\\r\\n)", () => {
  assert.deepEqual(split(["abc\r\r\nxyz\r\n\r\n"]), ["T:abc", "L:abc", "L:xyz", "L:"]);
});
