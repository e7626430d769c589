/**
 * Formatting for the status page: durations, clock times, percentages, statuses.
 *
 * @module
 */

/** Statuses after which a job accepts no more events. */
export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/**
 * A duration as `1h 2m`, `3m 4s` or `5s`.
 *
 * @param {number} seconds
 * @returns {string}
 */
export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/**
 * Seconds a job has been running: to now while it runs, to its end once it ended.
 *
 * @param {{status: string, created_at: string, started_at: string | null, completed_at: string | null}} job
 * @param {number} now epoch ms
 * @returns {number | null}
 */
export function elapsedSeconds(job, now) {
  const start = Date.parse(job.started_at ?? job.created_at);
  if (Number.isNaN(start)) return null;
  const end = TERMINAL.has(job.status) && job.completed_at ? Date.parse(job.completed_at) : now;
  return Math.max(0, (end - start) / 1000);
}

/**
 * Seconds left, counted down from the ETA the job last reported.
 *
 * @param {{status: string, eta_seconds: number | null, updated_at: string}} job
 * @param {number} now epoch ms
 * @returns {number | null}
 */
export function etaSeconds(job, now) {
  if (TERMINAL.has(job.status) || typeof job.eta_seconds !== "number") return null;
  const since = (now - Date.parse(job.updated_at)) / 1000;
  return Math.max(0, job.eta_seconds - (Number.isFinite(since) ? Math.max(0, since) : 0));
}

/**
 * The ETA as shown: `1m 30s`, or `overdue` once the estimate has run out while the job
 * goes on; `null` when there is none.
 *
 * @param {any} job
 * @param {number} now
 */
export function etaText(job, now) {
  const eta = etaSeconds(job, now);
  if (eta === null) return null;
  return eta > 0 ? duration(eta) : "overdue";
}

/**
 * `45.5%` (one decimal at most).
 *
 * @param {number} progress 0–100
 */
export function percent(progress) {
  const value = Math.min(100, Math.max(0, Number(progress) || 0));
  return `${Math.round(value * 10) / 10}%`;
}

/**
 * `14:03:09.123` in local time.
 *
 * @param {string} iso
 */
export function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${
    pad(date.getMilliseconds(), 3)
  }`;
}

/**
 * A date and time for humans (`2026-11-22 14:03:09`), local time.
 *
 * @param {string | null | undefined} iso
 */
export function dateTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "–";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${
    pad(date.getHours())
  }:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Human names of the transports. */
export const TRANSPORT_NAMES = { websocket: "WebSocket", sse: "SSE", poll: "long-poll" };

// Matching control characters is the point of these expressions. Terminal escapes (CSI,
// OSC, two-character ones), then other C0/C1 controls but tab, as the terminal tools do:
const ESCAPES =
  // deno-lint-ignore no-control-regex
  /\x1b\[[0-?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -\/]*[@-~]|\x9d[^\x07\x9c]*[\x07\x9c]?/g;
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
// Bidirectional embeddings, overrides and isolates: one in a log line would turn the
// text around it ("txet" for "text"), which can make a line read as another.
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;
// deno-lint-ignore no-control-regex
const ANY = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

/**
 * Text a producer sent, fit to show in one row: colours and other terminal escapes and
 * control characters removed (a tab stays), bidirectional overrides removed, and line
 * breaks shown as `↵`.
 *
 * @param {string} text
 */
export function displayText(text) {
  const oneLine = text.replace(/\r\n|\r|\n/g, "↵");
  if (!ANY.test(oneLine)) return oneLine;
  return oneLine.replace(ESCAPES, "").replace(CONTROLS, "").replace(BIDI_CONTROLS, "");
}
