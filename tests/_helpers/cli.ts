/**
 * Helpers for tests of the terminal tools: `main.ts` as a real child process with its
 * output captured byte for byte, small scripts written to a temp dir, and reading a
 * job's stored events.
 *
 * @module
 */
import { MAIN, SERVER_PERMISSIONS } from "./server.ts";
import { http, waitFor } from "./clients.ts";
import { concat } from "./bytes.ts";

/** A running `main.ts` subcommand. */
export interface CliProcess {
  process: Deno.ChildProcess;
  /** Bytes written to stdout so far. */
  stdoutBytes(): Uint8Array;
  /** Text written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Waits until stdout or stderr (`which`) matches. */
  waitForOutput(pattern: RegExp, which?: "stdout" | "stderr", timeoutMs?: number): Promise<void>;
  /** Waits for the exit; output is complete afterwards. */
  finished(): Promise<{ code: number; signal: Deno.Signal | null }>;
  /** Kills it if still running and waits (for `finally`). */
  kill(): Promise<void>;
}

/** Starts `main.ts ARGS` with stdin closed, `NO_COLOR=1` and `env`. */
export function spawnMain(args: string[], env: Record<string, string> = {}): CliProcess {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", ...SERVER_PERMISSIONS, MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", JOBWIRE_SERVER: "", JOBWIRE_TOKEN: "", ...env },
  }).spawn();
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, into: Uint8Array[]) => {
    for await (const chunk of stream) into.push(chunk);
  };
  const pumps = Promise.all([pump(process.stdout, out), pump(process.stderr, err)]);
  const decoder = new TextDecoder();
  const text = (chunks: Uint8Array[]) => decoder.decode(concat(chunks));
  let exited = false;
  const status = process.status.then(async (s) => {
    exited = true;
    await pumps;
    return { code: s.code, signal: s.signal };
  });
  const self: CliProcess = {
    process,
    stdoutBytes: () => concat(out),
    stdout: () => text(out),
    stderr: () => text(err),
    async waitForOutput(pattern, which = "stdout", timeoutMs = 15_000) {
      try {
        await waitFor(
          () => pattern.test(which === "stdout" ? self.stdout() : self.stderr()) || exited,
          timeoutMs,
          `${pattern} on ${which}`,
        );
      } catch (error) {
        throw new Error(
          `${(error as Error).message}\nstdout: ${self.stdout()}\nstderr: ${self.stderr()}`,
        );
      }
      if (!pattern.test(which === "stdout" ? self.stdout() : self.stderr())) {
        throw new Error(
          `Exited before ${pattern} on ${which}\nstdout: ${self.stdout()}\nstderr: ${self.stderr()}`,
        );
      }
    },
    finished: () => status,
    async kill() {
      if (!exited) {
        try {
          process.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await status;
    },
  };
  return self;
}

/** Runs `main.ts ARGS` to the end. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<
  { code: number; signal: Deno.Signal | null; stdout: string; stderr: string; bytes: Uint8Array }
> {
  const child = spawnMain(args, env);
  try {
    const status = await child.finished();
    return {
      ...status,
      stdout: child.stdout(),
      stderr: child.stderr(),
      bytes: child.stdoutBytes(),
    };
  } finally {
    await child.kill();
  }
}

/** A stored event as read back. */
export interface StoredEvent {
  type: string;
  sequence: number;
  timestamp: string;
  data: Record<string, unknown>;
}

/** Every retained event of a job, in order (follows pages). */
export async function storedEvents(
  base: string,
  jobId: string,
  headers: Record<string, string> = {},
): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  let since = 0;
  for (;;) {
    const page = await http(
      base,
      "GET",
      `/jobs/${encodeURIComponent(jobId)}/events?since=${since}&limit=1000`,
      undefined,
      headers,
    );
    if (page.status !== 200) throw new Error(`events: ${page.status} ${page.text}`);
    events.push(...page.json.events);
    if (!page.json.has_more) return events;
    since = page.json.next_since;
  }
}

/** Progress data without the fields the server estimates from timing (`eta_*`). */
export function withoutEstimates(event: StoredEvent): StoredEvent {
  if (event.type !== "progress" || event.data.eta_estimated !== true) return event;
  const { eta_seconds: _eta, eta_estimated: _estimated, ...data } = event.data;
  return { ...event, data };
}

/** A temp dir for scripts, removed by the returned function. */
export async function scriptDir(): Promise<
  { dir: string; write(name: string, text: string): Promise<string>; remove(): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-cli-" });
  return {
    dir,
    async write(name, text) {
      const path = `${dir}/${name}`;
      await Deno.writeTextFile(path, text);
      await Deno.chmod(path, 0o755);
      return path;
    },
    remove: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

/** `deno run` with the permissions a child script needs, for `main.ts run -- …`. */
export function denoScript(path: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "--allow-net", "--allow-env", "--allow-read", path, ...args];
}

/** A loopback port nothing listens on (bound, then released). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Waits until the job has `status`. */
export function waitForStatus(base: string, jobId: string, status: string): Promise<unknown> {
  return waitFor(
    async () => {
      const reply = await http(base, "GET", `/jobs/${encodeURIComponent(jobId)}`);
      return reply.status === 200 && reply.json.status === status;
    },
    15_000,
    `job ${jobId} ${status}`,
  );
}
