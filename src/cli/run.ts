/**
 * `main.ts run -- CMD ARGS…`: runs any command as a job. Its output reaches the
 * terminal unchanged while each line is published as a `log` event and progress found
 * in it as `progress` events; its exit decides how the job ends; Ctrl-C is forwarded to
 * it and cancels the job. Publishing happens in the background and never slows the
 * command (see {@link RunPublisher}).
 *
 * @module
 */
import { ConfigError, TIMER_MAX_MS } from "../config.ts";
import { JOB_ID_PATTERN } from "../http/schemas.ts";
import type { JobReporter } from "../client/job_reporter.ts";
import type { JobSnapshot } from "../client/types.ts";
import { JobwireError } from "../client/errors.ts";
import {
  flagValue,
  looseConnectionOf,
  parseCommandLine,
  secondsFlag,
  statusPageUrl,
} from "./client_args.ts";
import { LineSplitter } from "./line_splitter.ts";
import { killLeftAt, type Proc, signalAll, signalTree, stillRunning } from "./process_tree.ts";
import { parseProgress } from "./progress_parse.ts";
import { RunPublisher } from "./publisher.ts";
import { cleanLine, MAX_LINE_CHARS } from "./terminal_text.ts";
import { waitForJob } from "./wait.ts";

export const RUN_USAGE =
  `Usage: main.ts run [--server URL] [--token T] [--id ID] [--kind K] [--kill-after S] -- CMD [ARGS…]

Runs CMD as a jobwire job and exits with its exit code (128 + N when signal N killed it).
Its output reaches this terminal unchanged; meanwhile each stdout line becomes a log event
at info, each stderr line one at warning (source stdout or stderr), and progress in the
output (45%, 45.5 %, 12/200, tqdm and pip bars) becomes progress events, a few per second
at most. Exit 0 completes the job with result {"exit_code": 0}; another code or a signal
fails it (error_type exit_code or signal); Ctrl-C is passed to CMD and cancels the job.
Cancelling the job elsewhere (the status page, POST /jobs/ID/cancel) sends CMD SIGTERM,
then SIGKILL if it still runs after --kill-after. The job's page is printed to stderr once
the job is started. If the server cannot be reached the command runs anyway and one warning
says so.

  --server <url>      jobwire server [JOBWIRE_SERVER, else http://127.0.0.1:8080]
  --token <token>     bearer token with the write scope [JOBWIRE_TOKEN]
  --id <id>           job id; an existing job with this id is reported to [a new UUID]
  --kind <kind>       the job's kind [command]
  --kill-after <s>    after a cancel, how long CMD has to stop before SIGKILL: seconds,
                      or 30s, 2m [10]

CMD sees JOBWIRE_JOB_ID, JOBWIRE_JOB_URL and JOBWIRE_SERVER in its environment, and
PYTHONUNBUFFERED=1 unless set (its output is a pipe, which Python would otherwise buffer).`;

/** Longest progress message taken from the line it was read in. */
const MAX_MESSAGE = 200;

/**
 * Longest time the pipes are read after CMD exited, when a process it left behind (`cmd &`,
 * a daemon) holds them open: what that process prints meanwhile is CMD's output too, but the
 * job's end is CMD's.
 */
const PIPE_DRAIN_MAX_MS = 3_000;

/**
 * Longest wait for the job to be created and started before CMD starts, in milliseconds: CMD
 * may publish to it (`JOBWIRE_JOB_ID`) first thing, and a server slow to answer never holds
 * it back longer (one out of reach answers at once).
 */
const OPEN_WAIT_MS = 3_000;

/**
 * Longest wait, after a signal that came before CMD started, for the job being made, so that
 * it is cancelled rather than left pending: about what the create's own tries take.
 */
const EARLY_CANCEL_WAIT_MS = 20_000;

/** Default of `--kill-after`: how long CMD has to stop after its job was cancelled, in seconds. */
const KILL_AFTER_SECONDS = 10;

/** Numbers of the signals forwarded to CMD, for the exit code (128 + N) of a run they end. */
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGINT: 2, SIGTERM: 15 };

/**
 * Waits for `opened`, or `ms`, or a signal CMD would be forwarded, whichever comes first:
 * gives that signal, if it came, and the release of its listeners. They stay until released
 * (once CMD's own listeners are in place): a signal with no listener at all ends the
 * process at once, however short the moment between them.
 */
async function beforeStart(
  opened: Promise<boolean>,
  ms: number,
): Promise<{ caught: Deno.Signal | undefined; release: () => void }> {
  let caught: Deno.Signal | undefined;
  let signalled!: () => void;
  const came = new Promise<void>((resolve) => (signalled = resolve));
  const release = onForwarded((signal) => {
    caught ??= signal;
    signalled();
  });
  await within(Promise.race([opened, came]), ms);
  return { caught, release };
}

/**
 * Calls `listener` with each signal of {@link FORWARDED} that comes, where the platform lets
 * a program listen for it (not SIGTERM on Windows).
 *
 * @returns stops listening
 */
function onForwarded(listener: (signal: Deno.Signal) => void): () => void {
  const added = new Map<Deno.Signal, () => void>();
  for (const signal of FORWARDED) {
    const each = () => listener(signal);
    try {
      Deno.addSignalListener(signal, each);
      added.set(signal, each);
    } catch {
      // Not listened for on this platform.
    }
  }
  return () => {
    for (const [signal, each] of added) Deno.removeSignalListener(signal, each);
    added.clear();
  };
}

/** Waits for `promise` to settle, for at most `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Signals forwarded to CMD; each one cancels the job. */
const FORWARDED: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

const utf8 = new TextEncoder();

function stderrLine(text: string): void {
  try {
    Deno.stderr.writeSync(utf8.encode(`${text}\n`));
  } catch {
    // Nowhere to say it.
  }
}

/** Where passed-through output goes (`Deno.stdout`, `Deno.stderr`). */
interface Output {
  write(bytes: Uint8Array): Promise<number>;
}

async function writeAll(out: Output, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await out.write(bytes.subarray(written));
  }
}

/** `main.ts run …`: returns the exit code. */
export async function runCommand(args: string[]): Promise<number> {
  const line = parseCommandLine(args, {
    values: ["server", "token", "id", "kind", "kill-after"],
    booleans: [],
    stopAtPositional: true,
  });
  if (line.flags.has("help")) {
    console.log(RUN_USAGE);
    return 0;
  }
  const command = line.rest;
  if (command.length === 0 || command[0] === "") {
    throw new ConfigError("run needs a command: main.ts run -- CMD [ARGS…] (see --help)");
  }
  // A server URL that is no URL (a mistyped JOBWIRE_SERVER in CI) keeps the run from being
  // reported, not the command from running.
  const { server, token, invalid } = looseConnectionOf(line);
  const givenId = flagValue(line, "id");
  if (givenId !== undefined && !JOB_ID_PATTERN.test(givenId)) {
    throw new ConfigError(
      `Invalid --id ${JSON.stringify(givenId)}: 1-128 letters, digits and . _ : - (not first)`,
    );
  }
  const killAfter = secondsFlag(line, "kill-after") ?? KILL_AFTER_SECONDS;
  if (killAfter * 1000 > TIMER_MAX_MS) {
    // A longer timer would fire at once.
    throw new ConfigError("Invalid value for --kill-after: expected at most 24d");
  }
  const jobId = givenId ?? crypto.randomUUID();
  const pageUrl = statusPageUrl(server, jobId);
  const cwd = commandDirectory();

  const publisher = new RunPublisher({
    server,
    token,
    jobId,
    givenId: givenId !== undefined,
    kind: flagValue(line, "kind") ?? "command",
    metadata: { command, cwd },
    warn: stderrLine,
    ...(invalid === undefined ? {} : { unusable: invalid }),
  });
  // The job's page, once there is a job to show.
  void publisher.opened.then((opened) => {
    if (opened) stderrLine(`jobwire: job ${jobId}: ${pageUrl}`);
  });
  // The command starts once its job exists, so that what it publishes to it at once is not
  // refused for a job not made yet; or after a short wait, whatever the server does. A
  // signal meanwhile ends the run before the command starts.
  const waited = await beforeStart(publisher.opened, OPEN_WAIT_MS);
  const early = waited.caught;
  if (early !== undefined) {
    waited.release();
    stderrLine(`jobwire: ${early} before the command started: it was not run`);
    // The job still being made is cancelled once it is (a finish now would cut its making
    // short when the server is slow), for as long as the create's own tries last; another
    // signal meanwhile ends run at once.
    await within(publisher.opened, EARLY_CANCEL_WAIT_MS);
    await publisher.finish((r) => r.cancel(`Interrupted (${early}) before the command started`));
    return 128 + (SIGNAL_NUMBERS[early] ?? 0);
  }

  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command[0]!, {
      args: command.slice(1),
      cwd,
      stdin: "inherit",
      stdout: "piped",
      stderr: "piped",
      env: {
        JOBWIRE_JOB_ID: jobId,
        JOBWIRE_JOB_URL: pageUrl,
        JOBWIRE_SERVER: server,
        PYTHONUNBUFFERED: Deno.env.get("PYTHONUNBUFFERED") ?? "1",
      },
    }).spawn();
  } catch (error) {
    waited.release();
    // As a shell: 127 when the program is missing, 126 when it cannot be executed.
    const code = error instanceof Deno.errors.NotFound ? 127 : 126;
    const reason = error instanceof Error ? error.message : String(error);
    stderrLine(`jobwire: cannot run ${command[0]}: ${reason}`);
    await publisher.finish((r) =>
      r.fail(`Cannot run ${command[0]}: ${reason}`, "spawn_error", { exit_code: code })
    );
    return code;
  }

  let exited = false;
  /** Between the command's exit and the end of reading what it left holding its pipes. */
  let draining = false;
  /** A signal came meanwhile: stop reading. */
  let hurried = false;
  let interrupted: Deno.Signal | undefined;
  /** The command's processes were told to stop: when, and who they were. */
  let stopping: { started: Promise<Proc[]>; killAt: number } | undefined;
  const stopListening = onForwarded((signal) => {
    if (exited) {
      if (draining) {
        // While what the command left behind is read: stop reading it; the job's end
        // still goes out.
        hurried = true;
        return;
      }
      // While the last events go out: stop waiting for the server.
      publisher.abort(true);
      return;
    }
    // The first signal is passed on for CMD to stop by itself; another one while it has
    // not stopped (it ignores them, or takes too long) kills it.
    const again = interrupted !== undefined;
    interrupted ??= signal;
    if (again) {
      stderrLine(`jobwire: ${signal} again: killing the command (SIGKILL)`);
      void signalTree(child, "SIGKILL");
      return;
    }
    if (signal === "SIGTERM") {
      // From a supervisor (timeout(1), systemd, a container's stop), which no other process
      // of the command's hears: they get it too, and what still runs when the command has
      // exited gets what is left of --kill-after, then SIGKILL.
      stopping ??= { started: signalTree(child, signal), killAt: Date.now() + killAfter * 1000 };
      return;
    }
    try {
      child.kill(signal);
    } catch {
      // It has just exited.
    }
  });
  // Only now: until CMD's listeners were in place, the wait's caught what came.
  waited.release();

  // The job may end on the server while CMD runs. Cancelled there (the status page, an API
  // call), CMD is stopped; ended any way, the server takes no more of its events.
  const watch = new AbortController();
  let endedElsewhere: JobSnapshot | undefined;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  /** After a cancel: what the command had started, and when whatever of it runs is killed. */
  const watching = endOnServer(publisher, server, token, jobId, watch.signal).then((job) => {
    if (job === undefined) return;
    endedElsewhere = job;
    publisher.abort();
    // Ended as the command exited: nothing is left to stop, and no end of run's own is due.
    if (exited) {
      stderrLine(`jobwire: job ${jobId} was ${job.status} elsewhere as the command ended`);
      return;
    }
    if (job.status !== "cancelled") {
      stderrLine(
        `jobwire: job ${jobId} was marked ${job.status} elsewhere; the command runs on, ` +
          `its output is no longer published`,
      );
      return;
    }
    const reason = job.message === null ? "" : ` (${job.message})`;
    stderrLine(
      `jobwire: job ${jobId} was cancelled${reason}: stopping the command ` +
        `(SIGTERM, then SIGKILL after ${killAfter}s)`,
    );
    stopping = { started: signalTree(child, "SIGTERM"), killAt: Date.now() + killAfter * 1000 };
    const started = stopping.started;
    killTimer = setTimeout(async () => {
      stderrLine(`jobwire: the command still runs ${killAfter}s after SIGTERM: killing it`);
      await signalTree(child, "SIGKILL");
      signalAll(await stillRunning(await started), "SIGKILL");
    }, killAfter * 1000);
  });

  const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    out: Output,
    source: "stdout" | "stderr",
  ): Promise<void> => {
    const level = source === "stdout" ? "info" : "warning";
    const splitter = new LineSplitter();
    const sink = (text: string, complete: boolean, omitted: number) => {
      const clean = cleanLine(text, MAX_LINE_CHARS, omitted);
      if (complete) publisher.log(clean, level, source);
      const progress = parseProgress(clean);
      if (progress !== undefined) {
        publisher.progress({ ...progress, message: clean.trim().slice(0, MAX_MESSAGE) });
      }
    };
    const reader = stream.getReader();
    readers.push(reader);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let passed = true;
        try {
          await writeAll(out, value);
        } catch {
          passed = false;
        }
        // Published whether or not it could be passed on: CMD wrote it.
        if (publisher.active) splitter.push(value, sink);
        if (!passed) {
          // Our own output is gone (`run … | head`): close the pipe so CMD gets SIGPIPE
          // as it would without us in between.
          await reader.cancel().catch(() => {});
          break;
        }
      }
    } catch {
      // The pipe was closed under us (the grace after exit ran out).
    } finally {
      reader.releaseLock();
    }
    if (publisher.active) splitter.end(sink);
  };
  const stdoutPump = pump(child.stdout, Deno.stdout, "stdout");
  const stderrPump = pump(child.stderr, Deno.stderr, "stderr");
  const pumped = Promise.all([stdoutPump, stderrPump]);

  const status = await child.status;
  exited = true;
  draining = true;
  clearTimeout(killTimer);
  watch.abort();
  const exitedAt = Date.now();
  let done = false;
  pumped.then(() => (done = true));
  while (!done && !hurried && Date.now() - exitedAt < PIPE_DRAIN_MAX_MS) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!done) {
    await Promise.all(readers.map((reader) => reader.cancel().catch(() => {})));
  }
  await pumped;
  draining = false;
  await watching;
  if (stopping !== undefined) {
    // What the command started may outlive it (a shell killed by SIGTERM leaves its
    // children to init): they get what is left of --kill-after, then SIGKILL.
    const killed = await killLeftAt(await stopping.started, stopping.killAt);
    if (killed > 0) {
      stderrLine(
        `jobwire: ${killed} process${killed === 1 ? "" : "es"} the command started still ` +
          `run${killed === 1 ? "s" : ""} ${killAfter}s after SIGTERM: killing them`,
      );
    }
  }

  const code = status.code;
  const stopped = interrupted;
  let end: (reporter: JobReporter) => Promise<unknown>;
  if (endedElsewhere !== undefined) {
    // The job's end is recorded already; nothing more is published.
    if (stopping !== undefined) stderrLine(`jobwire: the command ${exitText(status)}`);
    end = () => Promise.resolve();
  } else if (stopped !== undefined) {
    end = (r) => {
      r.log(
        `jobwire: ${stopped} was passed to the command, which then ${exitText(status)}`,
        "warning",
        "jobwire",
      );
      return r.cancel(`Interrupted (${stopped})`);
    };
  } else if (status.signal !== null) {
    end = (r) =>
      r.fail(`Killed by ${status.signal}`, "signal", { signal: status.signal, exit_code: code });
  } else if (code === 0) {
    end = (r) => r.complete({ exit_code: 0 });
  } else {
    end = (r) => r.fail(`Exited with code ${code}`, "exit_code", { exit_code: code });
  }
  await publisher.finish(async (reporter) => {
    try {
      await end(reporter);
    } catch (error) {
      // Ended elsewhere in the moment the command exited (the follow was already stopped).
      if (!(error instanceof JobwireError && error.code === "job_finished")) throw error;
      stderrLine(`jobwire: job ${jobId} had ended elsewhere as the command ended`);
    }
  });
  stopListening();
  return code;
}

/**
 * The job's snapshot once it has ended on the server; `undefined` when it cannot be
 * followed (the job could not be opened, is refused or deleted) or `signal` stops the wait.
 * Connection problems are retried for as long as it takes.
 */
async function endOnServer(
  publisher: RunPublisher,
  server: string,
  token: string | undefined,
  jobId: string,
  signal: AbortSignal,
): Promise<JobSnapshot | undefined> {
  // The command may end while the job is still being made (a server that takes connections
  // and never answers): the wait for it ends then too, and run with it.
  const stopped = new Promise<false>((resolve) => {
    if (signal.aborted) resolve(false);
    else signal.addEventListener("abort", () => resolve(false), { once: true });
  });
  if (!(await Promise.race([publisher.opened, stopped])) || signal.aborted) return undefined;
  try {
    const outcome = await waitForJob(
      { baseUrl: server, token, fetch },
      jobId,
      undefined,
      () => {},
      signal,
    );
    return outcome.kind === "ended" ? outcome.job : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the command runs: the directory `deno task run` was typed in (the task runs in the
 * project's, and says the user's in `JOBWIRE_TASK_CWD`), else this process's. The variable
 * is taken out, so that a command that runs jobwire itself is not sent back there.
 */
function commandDirectory(): string {
  const fromTask = Deno.env.get("JOBWIRE_TASK_CWD");
  Deno.env.delete("JOBWIRE_TASK_CWD");
  if (fromTask === undefined || fromTask === "") return Deno.cwd();
  try {
    return Deno.statSync(fromTask).isDirectory ? fromTask : Deno.cwd();
  } catch {
    return Deno.cwd();
  }
}

function exitText(status: Deno.CommandStatus): string {
  return status.signal !== null
    ? `was killed by ${status.signal}`
    : `exited with code ${status.code}`;
}
