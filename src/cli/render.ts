/**
 * Text of the terminal tools: durations, the progress bar line, one line per event, and
 * the closing summary. Pure functions; colours are ANSI SGR codes, left out when
 * `color` is false (`NO_COLOR`, or output that is not a terminal).
 *
 * @module
 */
import { cleanLine } from "./terminal_text.ts";
import type { JobEvent, JobSnapshot } from "../client/types.ts";

/** `45s`, `3m02s`, `1h05m`, `2d03h`; seconds are rounded down. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

const EIGHTHS = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

/** A bar `width` cells wide filled to `percent` (0–100), with eighth-cell precision. */
export function progressBar(percent: number, width: number): string {
  const cells = Math.max(0, width);
  const eighths = Math.round((Math.min(100, Math.max(0, percent)) / 100) * cells * 8);
  const full = Math.floor(eighths / 8);
  const part = EIGHTHS[eighths % 8]!;
  return "█".repeat(full) + part + " ".repeat(Math.max(0, cells - full - (part === "" ? 0 : 1)));
}

/** `45%`, `45.5%` (at most one decimal). */
export function formatPercent(progress: number): string {
  return `${Number(progress.toFixed(1))}%`;
}

/** Seconds the job has run: from its start (or creation) to its end (or `now`, in ms). */
export function elapsedSeconds(job: JobSnapshot, now: number): number {
  const start = Date.parse(job.started_at ?? job.created_at);
  const end = job.completed_at === null ? now : Date.parse(job.completed_at);
  return Math.max(0, (end - start) / 1000);
}

/** Seconds left by the job's last ETA, counted down since it was given; `undefined` if none. */
export function remainingSeconds(job: JobSnapshot, now: number): number | undefined {
  if (job.eta_seconds === null || job.status !== "running") return undefined;
  return Math.max(0, job.eta_seconds - (now - Date.parse(job.updated_at)) / 1000);
}

/** SGR codes used for colours. */
const SGR = {
  dim: "2",
  red: "31",
  green: "32",
  yellow: "33",
  cyan: "36",
  gray: "90",
} as const;

type Colour = keyof typeof SGR;

/** `text` in `colour`, or as it is when `color` is false. */
export function paint(text: string, colour: Colour | undefined, color: boolean): string {
  return color && colour !== undefined ? `\x1b[${SGR[colour]}m${text}\x1b[0m` : text;
}

const STATUS_COLOUR: Record<string, Colour> = {
  completed: "green",
  failed: "red",
  cancelled: "yellow",
  running: "cyan",
};

const LEVEL_COLOUR: Record<string, Colour | undefined> = {
  debug: "gray",
  info: undefined,
  warning: "yellow",
  error: "red",
};

/** A piece of a line: its text and colour. */
type Part = [text: string, colour?: Colour | undefined];

/** Joins parts with two spaces, keeping the visible width under `width` (the rest is cut). */
function fit(parts: Part[], width: number, color: boolean): string {
  let out = "";
  let used = 0;
  for (const [text, colour] of parts) {
    if (text === "") continue;
    const gap = used === 0 ? 0 : 2;
    const room = width - used - gap;
    if (room <= 0) break;
    const chars = [...text];
    const shown = chars.length > room ? chars.slice(0, Math.max(0, room - 1)).join("") + "…" : text;
    out += " ".repeat(gap) + paint(shown, colour, color);
    used += gap + Math.min(chars.length, room);
  }
  return out;
}

/** Cells of the bar in a status line. */
const BAR_CELLS = 24;

/**
 * The live line under the scrolling log: status, bar, percentage, stage, count, ETA,
 * elapsed time and message, cut to `width` columns. `note` is shown first when set,
 * such as `reconnecting`.
 */
export function statusLine(
  job: JobSnapshot,
  options: {
    now: number;
    width: number;
    color: boolean;
    note?: string | undefined;
    /** Items done of all, such as `12/200`, from the last progress event. */
    count?: string | undefined;
  },
): string {
  const { now, width, color } = options;
  const eta = remainingSeconds(job, now);
  const parts: Part[] = [
    [options.note ?? "", "yellow"],
    [job.status, STATUS_COLOUR[job.status]],
    [`[${progressBar(job.progress, BAR_CELLS)}]`, "cyan"],
    [formatPercent(job.progress)],
    [shown(job.stage ?? ""), "dim"],
    [options.count ?? ""],
    [eta === undefined ? "" : `ETA ${formatDuration(eta)}`],
    [`elapsed ${formatDuration(elapsedSeconds(job, now))}`, "dim"],
    [shown(job.message ?? ""), "dim"],
  ];
  return fit(parts, Math.max(10, width), color);
}

/** `HH:MM:SS` of an ISO timestamp, in local time. */
export function clockTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "--:--:--";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** At most `max` characters of JSON text. */
function jsonText(value: unknown, max = 500): string {
  const text = shown(JSON.stringify(value) ?? "null");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * Text from a job, fit to print on one terminal line: its escape sequences and control
 * characters would otherwise reach the terminal (a log line could clear the screen, retitle
 * the window or forge lines of its own), bidirectional overrides could make it read as
 * other text, and a newline (or a Unicode line or paragraph separator) shows as `↵`.
 */
function shown(text: string): string {
  return cleanLine(text).replace(BIDI_CONTROLS, "").replace(LINE_BREAKS, " ↵ ");
}

/** Overrides and isolates of the bidirectional algorithm. */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;
/** A newline, and the line and paragraph separators some terminals break lines at. */
const LINE_BREAKS = /[\n\u2028\u2029]/g;

function str(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? shown(value) : undefined;
}

/**
 * One line for an event: `HH:MM:SS label   text`. Labels are the log level for logs,
 * and `status`, `progress`, `result`, `error` or `event` (custom types) otherwise.
 */
export function eventLine(event: JobEvent, color: boolean): string {
  const time = paint(clockTime(event.timestamp), "dim", color);
  const d = event.data;
  const line = (label: string, colour: Colour | undefined, text: string) =>
    `${time} ${paint(label.padEnd(8), colour, color)} ${text}`;
  switch (event.type) {
    case "log": {
      const level = str(d.level) ?? "info";
      const text = shown(String(d.line ?? ""));
      return line(level, LEVEL_COLOUR[level], level === "error" ? paint(text, "red", color) : text);
    }
    case "status": {
      const status = shown(String(d.status));
      const message = str(d.message);
      return line(
        "status",
        undefined,
        paint(status, STATUS_COLOUR[status], color) +
          (message === undefined ? "" : ` — ${message}`),
      );
    }
    case "progress": {
      const pieces = [formatPercent(Number(d.progress ?? 0))];
      const stage = str(d.stage);
      if (stage !== undefined) pieces.push(stage);
      if (typeof d.current === "number" && typeof d.total === "number") {
        pieces.push(`${d.current}/${d.total}`);
      }
      if (typeof d.eta_seconds === "number") pieces.push(`ETA ${formatDuration(d.eta_seconds)}`);
      const message = str(d.message);
      if (message !== undefined) pieces.push(`— ${message}`);
      return line("progress", "cyan", pieces.join(" "));
    }
    case "result":
      return line("result", "green", jsonText(d.results));
    case "error": {
      const type = str(d.error_type) ?? "general";
      return line("error", "red", `[${type}] ${shown(String(d.error ?? ""))}`);
    }
    default:
      return line("event", "dim", `${shown(event.type)} ${jsonText(d)}`);
  }
}

/** The closing line: `job ID completed in 3m02s`, or failed with its error, or cancelled. */
export function summaryLine(jobId: string, job: JobSnapshot | undefined, color: boolean): string {
  const status = job?.status ?? "unknown";
  const took = job === undefined ? "" : ` in ${formatDuration(elapsedSeconds(job, Date.now()))}`;
  const error = status === "failed" && job?.error ? `: ${shown(job.error.error)}` : "";
  return `job ${jobId} ${paint(status, STATUS_COLOUR[status], color)}${took}${error}`;
}
