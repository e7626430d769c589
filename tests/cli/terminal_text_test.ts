import assert from "node:assert/strict";
import { cleanLine } from "../../src/cli/terminal_text.ts";

Deno.test("cleanLine removes colours, cursor moves, titles and control characters", () => {
  assert.equal(cleanLine("\x1b[1;32mok\x1b[0m done"), "ok done");
  assert.equal(cleanLine("\x1b[2K\x1b[1Gdownloading"), "downloading");
  assert.equal(cleanLine("\x1b]0;title\x07text"), "text");
  assert.equal(cleanLine("a\x00b\x08c\x7fd"), "abcd");
  assert.equal(cleanLine("tab\tkept"), "tab\tkept");
  assert.equal(cleanLine("plain ünïcødé ✓"), "plain ünïcødé ✓");
});

Deno.test("cleanLine cuts long lines and says how much was left out", () => {
  assert.equal(cleanLine("abcdefghij", 4), "abcd… [6 more characters]");
  assert.equal(cleanLine("ab😀cd", 3), "ab… [4 more characters]", "no half surrogate pair");
});
