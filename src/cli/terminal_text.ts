/**
 * Turning what a program wrote for a terminal into plain text fit to publish: escape
 * sequences (colours, cursor moves, window titles) and other control characters are
 * removed, and very long lines are cut.
 *
 * @module
 */

/**
 * Longest line published, in UTF-16 code units. At most 3 UTF-8 bytes each, a line stays
 * well under the server's default 64 KiB event limit (`--max-event-bytes`).
 */
export const MAX_LINE_CHARS = 8192;

// Matching control characters is the point of these expressions.
// CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \), two-character escapes, and the
// one-byte C1 forms of CSI (0x9b) and OSC (0x9d):
const ESCAPES =
  // deno-lint-ignore no-control-regex
  /\x1b\[[0-?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -\/]*[@-~]|\x9d[^\x07\x9c]*[\x07\x9c]?/g;
// C0 and C1 controls except tab; a lone ESC left over by a cut-off sequence goes too:
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
// deno-lint-ignore no-control-regex
const ANY_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

/**
 * `text` without terminal escape sequences and control characters (tabs are kept),
 * cut to {@link MAX_LINE_CHARS} with a note of how much was left out.
 *
 * @example
 * ```ts
 * cleanLine("\x1b[32mok\x1b[0m"); // "ok"
 * ```
 */
export function cleanLine(
  text: string,
  maxChars: number = MAX_LINE_CHARS,
  omitted = 0,
): string {
  let clean = text;
  // Most lines have no control character at all: skip the regular expressions then.
  if (ANY_CONTROL.test(clean)) {
    clean = clean.replace(ESCAPES, "").replace(CONTROLS, "");
  }
  if (clean.length <= maxChars && omitted === 0) return clean;
  let cut = clean.slice(0, maxChars);
  // Never leave half of a surrogate pair at the cut.
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}… [${clean.length - cut.length + omitted} more characters]`;
}
