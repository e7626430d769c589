/**
 * Where `watch` shows a job: on a terminal, log lines scroll above a progress bar that
 * is redrawn in place; elsewhere (CI logs, files) one plain line per event; with
 * `--json`, the envelopes themselves, one per line. Notices (reconnecting, errors) go
 * to stderr so stdout keeps only the job's own output.
 *
 * @module
 */
import { isTerminalStatus, type JobEvent, type JobSnapshot } from "../client/types.ts";
import { eventLine, statusLine, summaryLine } from "./render.ts";

/** How events are shown. */
export type OutputMode = "tty" | "plain" | "json";

/** Where text goes. */
export interface OutputTarget {
  /** Writes to stdout. */
  out(text: string): void;
  /** Writes to stderr. */
  err(text: string): void;
  /** Width of the terminal, in columns. */
  columns(): number;
}

/** What the follower tells the output. */
export interface WatchOutput {
  /** A persisted event, in order. */
  event(event: JobEvent): void;
  /** The job's state changed. */
  snapshot(job: JobSnapshot): void;
  /** A message about the connection, on stderr. */
  notice(text: string): void;
  /** Shown at the start of the bar while set, such as `reconnecting`. */
  setNote(note: string | undefined): void;
  /** The job ended: last bar and a summary line. */
  finish(jobId: string, job: JobSnapshot | undefined): void;
  /** Stops redrawing; leaves the cursor on a fresh line. */
  close(): void;
}

const utf8 = new TextEncoder();

function writeAllSync(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = utf8.encode(text);
  for (let written = 0; written < bytes.length;) {
    written += file.writeSync(bytes.subarray(written));
  }
}

/** Exit status when stdout was closed by its reader, as a shell reports SIGPIPE. */
const EXIT_BROKEN_PIPE = 128 + 13;

/**
 * The process's stdout and stderr. When the reader of stdout goes away (`watch … | head`)
 * the process ends at once, as a program killed by SIGPIPE would.
 */
export const STDIO: OutputTarget = {
  out: (text) => {
    try {
      writeAllSync(Deno.stdout, text);
    } catch (error) {
      if (error instanceof Deno.errors.BrokenPipe) Deno.exit(EXIT_BROKEN_PIPE);
      throw error;
    }
  },
  err: (text) => writeAllSync(Deno.stderr, text),
  columns: () => {
    try {
      // A pseudo-terminal may report 0 columns (script(1), some CI runners).
      return Deno.consoleSize().columns || 80;
    } catch {
      return 80;
    }
  },
};

/** Redraw interval of the bar, for the elapsed time and the ETA countdown, in ms. */
const REDRAW_MS = 1000;

/** Makes the output of `mode`; colours only on a terminal and when `color` is true. */
export function createOutput(mode: OutputMode, target: OutputTarget, color: boolean): WatchOutput {
  if (mode === "json") return jsonOutput(target);
  if (mode === "plain") return plainOutput(target);
  return ttyOutput(target, color);
}

function jsonOutput(target: OutputTarget): WatchOutput {
  return {
    event: (event) => target.out(`${JSON.stringify(event)}\n`),
    snapshot: () => {},
    notice: (text) => target.err(`${text}\n`),
    setNote: () => {},
    finish: () => {},
    close: () => {},
  };
}

function plainOutput(target: OutputTarget): WatchOutput {
  let lastProgress = "";
  return {
    event(event) {
      if (event.type === "progress") {
        // Throttled producers still repeat themselves; a CI log needs each state once.
        const { progress, stage, message } = event.data;
        const key = JSON.stringify([progress, stage, message]);
        if (key === lastProgress) return;
        lastProgress = key;
      }
      target.out(`${eventLine(event, false)}\n`);
    },
    snapshot: () => {},
    notice: (text) => target.err(`${text}\n`),
    setNote: () => {},
    finish: (jobId, job) => target.out(`${summaryLine(jobId, job, false)}\n`),
    close: () => {},
  };
}

function ttyOutput(target: OutputTarget, color: boolean): WatchOutput {
  let job: JobSnapshot | undefined;
  let note: string | undefined;
  let count: string | undefined;
  let shown = false;
  const draw = () => {
    if (job === undefined) return;
    const line = statusLine(job, {
      now: Date.now(),
      width: target.columns() - 1,
      color,
      note,
      // The counts of an ended job's replayed progress are history: its bar is full.
      count: isTerminalStatus(job.status) ? undefined : count,
    });
    target.out(`\r\x1b[2K${line}`);
    shown = true;
  };
  const clear = () => {
    if (shown) target.out("\r\x1b[2K");
    shown = false;
  };
  const timer = setInterval(draw, REDRAW_MS);
  return {
    event(event) {
      if (event.type === "progress") {
        const { current, total } = event.data;
        count = typeof current === "number" && typeof total === "number"
          ? `${current}/${total}`
          : undefined;
        return;
      }
      clear();
      target.out(`${eventLine(event, color)}\n`);
      draw();
    },
    snapshot(next) {
      job = next;
      draw();
    },
    notice(text) {
      clear();
      target.err(`${text}\n`);
      draw();
    },
    setNote(next) {
      note = next;
      draw();
    },
    finish(jobId, last) {
      job = last ?? job;
      note = undefined;
      clearInterval(timer);
      draw();
      if (shown) target.out("\n");
      shown = false;
      target.out(`${summaryLine(jobId, job, color)}\n`);
    },
    close() {
      clearInterval(timer);
      if (shown) target.out("\n");
      shown = false;
    },
  };
}
