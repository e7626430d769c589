/**
 * `main.ts demo`: a simulated multi-stage job (queued, three stages with progress, logs
 * at every level, a custom event, a result) published through the client's
 * `JobReporter`, with instructions to follow it in a browser, with `watch` and with
 * curl — and, unless `--no-watch`, followed live in this terminal through the server.
 *
 * @module
 */
import { JobReporter } from "../client/job_reporter.ts";
import { sleep } from "../client/backoff.ts";
import { ConfigError } from "../config.ts";
import {
  authHint,
  connectionOf,
  parseCommandLine,
  secondsFlag,
  statusPageUrl,
} from "./client_args.ts";
import { createOutput, STDIO } from "./watch_output.ts";
import { colourWanted, EXIT_CODES, EXIT_UNFOLLOWABLE, followJob, outputMode } from "./watch.ts";

export const DEMO_USAGE =
  `Usage: main.ts demo [--server URL] [--token T] [--duration S] [--fail] [--no-watch]

Creates a demo job and runs it: queued, then download, process and upload stages with
progress, logs at every level, a custom event and a result. Prints how to follow it in a
browser, with watch and with curl, then follows it here. Exits as watch does: 0
completed, 1 failed, 130 cancelled (Ctrl-C cancels the job), 3 when the server refuses.

  --server <url>   jobwire server [JOBWIRE_SERVER, else http://127.0.0.1:8080]
  --token <token>  bearer token with the write scope [JOBWIRE_TOKEN]
  --duration <s>   how long the job runs [20]
  --fail           end in failure during the process stage
  --no-watch       do not follow the job here (only print how to)`;

/** Default run time of the demo, in seconds. */
const DEFAULT_DURATION_SECONDS = 20;

/** One simulated stage. */
interface Stage {
  name: string;
  from: number;
  to: number;
  steps: number;
}

const STAGES: readonly Stage[] = [
  { name: "download", from: 0, to: 30, steps: 10 },
  { name: "process", from: 30, to: 85, steps: 20 },
  { name: "upload", from: 85, to: 100, steps: 5 },
];

/** Step of the process stage at which `--fail` fails the job. */
const FAIL_AT_STEP = 15;

/** A word for the shell: quoted unless it is plain. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The lines that tell how to follow `jobId`, with the real server and token. */
export function howToFollow(server: string, jobId: string, token: string | undefined): string[] {
  const auth = token === undefined ? "" : ` -H ${shellWord(`Authorization: Bearer ${token}`)}`;
  const flags = ` --server ${shellWord(server)}${
    token === undefined ? "" : ` --token ${shellWord(token)}`
  }`;
  const events = `${server}/jobs/${encodeURIComponent(jobId)}/events`;
  const lines = [
    `Demo job ${jobId}. Follow it:`,
    `  in a browser:       ${statusPageUrl(server, jobId)}`,
  ];
  if (token !== undefined) {
    lines.push(`                      (sign in first with ${server}/#token=${token})`);
  }
  lines.push(
    `  in a terminal:      deno task watch ${shellWord(jobId)}${flags}`,
    `  with curl (SSE):    curl -N -H 'Accept: text/event-stream'${auth} ${shellWord(events)}`,
    `  with curl (NDJSON): curl -N${auth} ${shellWord(`${events}?format=ndjson`)}`,
    `  until it ends:      deno task wait ${shellWord(jobId)}${flags}`,
    "",
  );
  return lines;
}

/** Runs the simulated job on `reporter`; each step lasts `stepMs`. Returns how it ended. */
export async function simulateJob(
  reporter: JobReporter,
  options: { stepMs: number; queuedMs: number; fail: boolean; signal: AbortSignal },
): Promise<"completed" | "failed"> {
  const { stepMs, signal } = options;
  await reporter.queued("Waiting for a worker");
  await sleep(options.queuedMs, signal);
  await reporter.started("Worker demo-1 picked up the job");
  reporter.log("worker demo-1: 4 CPUs, 8 GiB of memory, cache warm", "debug");
  for (const stage of STAGES) {
    reporter.log(`${stage.name}: started`);
    for (let step = 1; step <= stage.steps; step++) {
      await sleep(stepMs, signal);
      const progress = stage.from + ((stage.to - stage.from) * step) / stage.steps;
      const message = stage.name === "download"
        ? `Fetching part ${step} of the input`
        : stage.name === "process"
        ? `Processing batch ${step}`
        : `Uploading part ${step} of the output`;
      if (stage.name === "download") {
        reporter.log(`downloaded chunk ${step}/${stage.steps} (4.0 MB)`, "debug");
        if (step === 7) reporter.log("mirror is slow: chunk 7 took 3 tries", "warning");
      }
      if (stage.name === "process") {
        if (step % 5 === 0) await reporter.event("items_processed", { count: step * 50 });
        if (step === 12) reporter.log("record 1234 is malformed: skipped", "error");
        if (options.fail && step === FAIL_AT_STEP) {
          reporter.log("worker demo-1 ran out of memory", "error");
          await reporter.fail("Out of memory while processing batch 15", "demo_failure", {
            batch: 15,
          });
          return "failed";
        }
      }
      await reporter.progress(Math.round(progress * 10) / 10, {
        stage: stage.name,
        message,
        current: step,
        total: stage.steps,
      });
    }
    reporter.log(`${stage.name}: done`);
  }
  await reporter.complete(
    { items: 1000, skipped: 1, artifact: "s3://demo-bucket/output.tar.gz" },
    "All stages done",
  );
  return "completed";
}

/** `main.ts demo …`: returns the exit code. */
export async function demoCommand(args: string[]): Promise<number> {
  const line = parseCommandLine(args, {
    values: ["server", "token", "duration"],
    booleans: ["fail", "no-watch"],
  });
  if (line.flags.has("help")) {
    console.log(DEMO_USAGE);
    return 0;
  }
  if (line.positional.length > 0) {
    throw new ConfigError(`Unexpected argument ${JSON.stringify(line.positional[0])}`);
  }
  const duration = secondsFlag(line, "duration") ?? DEFAULT_DURATION_SECONDS;
  const { server, token } = connectionOf(line);
  let reporter: JobReporter;
  try {
    reporter = await JobReporter.create(server, {
      token,
      kind: "demo",
      metadata: { demo: true, stages: STAGES.map((s) => s.name) },
      retries: 2,
    });
  } catch (error) {
    const hint = authHint(error, token !== undefined);
    console.error(`jobwire: cannot create the demo job on ${server}: ${describe(error)}${hint}`);
    return EXIT_UNFOLLOWABLE;
  }
  console.log(howToFollow(server, reporter.jobId, token).join("\n"));

  const abort = new AbortController();
  const onInterrupt = () => abort.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  const steps = STAGES.reduce((n, s) => n + s.steps, 0);
  const produced = simulateJob(reporter, {
    stepMs: (duration * 1000 * 0.9) / steps,
    queuedMs: duration * 1000 * 0.1,
    fail: line.flags.has("fail"),
    signal: abort.signal,
  }).then(
    (status) => EXIT_CODES[status],
    async (error) => {
      if (abort.signal.aborted) {
        await reporter.cancel("Interrupted (SIGINT)").catch(() => {});
        return EXIT_CODES.cancelled;
      }
      console.error(`jobwire: the demo job stopped: ${describe(error)}`);
      return EXIT_UNFOLLOWABLE;
    },
  );
  try {
    if (line.flags.has("no-watch")) return await produced;
    const output = createOutput(outputMode(false), STDIO, colourWanted());
    const [followed, code] = await Promise.all([
      followJob(server, reporter.jobId, { token, output }),
      produced,
    ]);
    return followed.code === EXIT_UNFOLLOWABLE ? code : followed.code;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await reporter.close().catch(() => {});
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
