/**
 * Checks on untrusted input that schemas do not make: JSON nested too deeply to serialize
 * again, numbers JSON cannot carry, and text a SQLite text column would not give back as
 * sent.
 *
 * @module
 */
import { z } from "zod";

/**
 * Deepest nesting of arrays and objects accepted in a request body or client message.
 * Serializing a value is recursive, so a small body nested some thousands deep would
 * overflow the stack when it is stored, sent to another isolate or delivered.
 */
export const MAX_JSON_DEPTH = 100;

/** A problem found in a parsed JSON value, with the path of the offending part. */
export interface JsonProblem {
  path: string;
  message: string;
}

/**
 * What makes a parsed JSON value unfit to keep: nesting deeper than
 * {@link MAX_JSON_DEPTH}, or a number too large for a double (`JSON.parse` reads `1e400`
 * as `Infinity`, which would be stored and sent as `null`).
 *
 * @returns the first problem, or `undefined` when there is none
 */
export function jsonProblem(value: unknown): JsonProblem | undefined {
  const path: (string | number)[] = [];
  const message = walk(value, 0, path);
  return message === undefined ? undefined : { path: path.join("."), message };
}

/** Walks `value` at nesting `level`; on a problem, fills `path` (innermost last) as it returns. */
function walk(value: unknown, level: number, path: (string | number)[]): string | undefined {
  if (typeof value === "number") {
    return Number.isFinite(value) ? undefined : "Number out of range for JSON (a double)";
  }
  if (typeof value !== "object" || value === null) return undefined;
  if (level === MAX_JSON_DEPTH) {
    return `Nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const message = walk(value[i], level + 1, path);
      if (message !== undefined) {
        path.unshift(i);
        return message;
      }
    }
    return undefined;
  }
  for (const key in value) {
    const message = walk((value as Record<string, unknown>)[key], level + 1, path);
    if (message !== undefined) {
      path.unshift(key);
      return message;
    }
  }
  return undefined;
}

/**
 * The own fields of a JSON object other than `left`, as own fields of a new object: a key
 * named `__proto__` stays a field (assigning it would set the copy's prototype instead).
 */
export function fieldsExcept(
  object: Record<string, unknown>,
  left: readonly string[],
): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([key]) => !left.includes(key)));
}

const utf8 = new TextEncoder();

/**
 * UTF-8 size of `text` when it is over `limit` bytes, else `undefined`. A UTF-16 code unit
 * takes one to three UTF-8 bytes, so only strings near the limit are encoded.
 */
export function sizeOver(text: string, limit: number): number | undefined {
  if (text.length * 3 <= limit) return undefined;
  const size = text.length > limit ? text.length : utf8.encode(text).byteLength;
  return size > limit ? size : undefined;
}

/**
 * Why `text` would not come back from a SQLite text column as sent, or `undefined`. SQLite
 * hands text back up to its first NUL, and stores UTF-8, where a lone surrogate becomes
 * U+FFFD: a job's kind or owner would then read back as another one.
 */
export function textProblem(text: string): string | undefined {
  if (text.includes("\0")) return "Must not contain NUL characters (U+0000)";
  if (!text.isWellFormed()) return "Must be well-formed Unicode (no unpaired surrogates)";
  return undefined;
}

/** A string kept in a text column of its own: no NUL, no unpaired surrogate. */
export function storedText(): z.ZodString {
  return z.string().check((ctx) => {
    const message = textProblem(ctx.value);
    if (message !== undefined) {
      ctx.issues.push({ code: "custom", message, input: ctx.value });
    }
  });
}
