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

Deno.test("LineSplitter cuts a line longer than MAX_PENDING_CHARS instead of holding it", () => {
  const segments: string[] = [];
  const splitter = new LineSplitter();
  splitter.push(utf8.encode("x".repeat(MAX_PENDING_CHARS * 2 + 5)), (t) => segments.push(t));
  assert.deepEqual(segments.map((s) => s.length), [MAX_PENDING_CHARS, MAX_PENDING_CHARS]);
  splitter.end((t) => segments.push(t));
  assert.equal(segments.at(-1), "xxxxx");
});
