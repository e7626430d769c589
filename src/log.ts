/**
 * Server log lines on stderr: one line each, `LEVEL message key=value…`. Secrets never
 * reach a line: values under secret-looking keys, and query parameters with credential
 * names (`token`, `ticket`, `api_key`, `signature`…) in URLs, are replaced by `[redacted]`.
 *
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold: LogLevel = "info";

/** Sets the lowest level written. */
export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

const SECRET_KEYS = /^(token|ticket|password|secret|authorization|cookie|access_token)$/i;
/**
 * Query parameters that carry a credential, by their decoded name: jobwire's own (`token`,
 * `ticket`) and what other services name theirs (`--jwks-url …?api_key=`, `X-Amz-Signature`).
 */
const SECRET_PARAM =
  /token|ticket|secret|passw|pwd|api[_-]?key|^key$|private|jwt|signature|^sig$|credential|^auth|session|^code$/i;
const QUERY_PARAM = /([?&])([^=&#\s]*)=([^&#\s]*)/g;

/** A query parameter's name as the server reads it (`%74oken` is `token`). */
function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw.replaceAll("+", " ")).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/** A URL's user name and password (`scheme://user:password@host`). */
const USER_INFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#@\s]*@/i;

/**
 * Replaces secrets in a URL: its user name and password, and query parameters that carry a
 * credential, however their names are encoded.
 */
export function redactUrl(url: string): string {
  return url.replace(USER_INFO, "$1[redacted]@").replace(
    QUERY_PARAM,
    (whole, separator: string, name: string) =>
      SECRET_PARAM.test(paramName(name)) ? `${separator}${name}=[redacted]` : whole,
  );
}

function format(value: unknown): string {
  // Quoted (and so escaped) when it holds a space, quote, equals sign or control character:
  // a NUL or an escape sequence written raw would garble the log for grep and terminals.
  if (typeof value === "string") {
    // deno-lint-ignore no-control-regex
    return /[\s"=\x00-\x1f\x7f]/.test(value) ? JSON.stringify(value) : value;
  }
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

/** Writes one log line when `level` is at or above the threshold. */
export function log(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
  if (RANK[level] < RANK[threshold]) return;
  let line = `${level.toUpperCase()} ${message}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const shown = SECRET_KEYS.test(key)
      ? "[redacted]"
      : typeof value === "string"
      ? redactUrl(value)
      : value;
    line += ` ${key}=${format(shown)}`;
  }
  try {
    console.error(line);
  } catch {
    // Standard error closed or broken: the line is lost, and no caller fails for it.
  }
}

/** Whether lines of `level` are written (to skip building what would not be). */
export function logs(level: LogLevel): boolean {
  return RANK[level] >= RANK[threshold];
}

/** Logs an unexpected error with its stack, for faults that must not crash the server. */
export function logError(message: string, error: unknown, fields: Record<string, unknown> = {}) {
  const text = error instanceof Error ? error.message : String(error);
  // The same failure over and over (a full disk fails every commit) is told once per
  // window, with a count of the others: a log on the same disk would fill it faster.
  const key = `${message}\u0000${text}`;
  const now = Date.now();
  const seen = repeats.get(key);
  if (seen !== undefined && now - seen.at < REPEAT_WINDOW_MS) {
    seen.count++;
    return;
  }
  if (repeats.size >= 1000) repeats.clear();
  repeats.set(key, { at: now, count: 0 });
  const repeated = seen !== undefined && seen.count > 0 ? { repeated: seen.count } : {};
  log("error", message, { ...fields, error: text, ...repeated });
  if (error instanceof Error && error.stack !== undefined && RANK[threshold] <= RANK.error) {
    console.error(redactUrl(error.stack));
  }
}

/** Window in which the same error is logged once. */
const REPEAT_WINDOW_MS = 10_000;
/** Per message and error text: when it was last logged, and how often since. */
const repeats = new Map<string, { at: number; count: number }>();
