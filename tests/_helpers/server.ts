/**
 * Starting the real server for tests: in-process on a free loopback port (fast), or as
 * a child process of `main.ts` (for start-up, signals and restarts).
 *
 * @module
 */
import { type Config, resolveConfig } from "../../src/config.ts";
import { type ServerHandle, type ServerOptions, startServer } from "../../src/server.ts";

/** Options named as on the command line (`"replay-window": 5`). */
export type Overrides = Record<string, string | number | boolean>;

/**
 * A config for tests: loopback, port 0, a fresh temp data dir, quiet logs, and no auth
 * unless the overrides turn it on with `"no-auth": false`.
 */
export function testConfig(dataDir: string, overrides: Overrides = {}): Config {
  const flags = new Map<string, string | true>();
  const values: Overrides = {
    host: "127.0.0.1",
    port: 0,
    "data-dir": dataDir,
    "log-level": "error",
    "no-auth": true,
    ...overrides,
  };
  for (const [key, value] of Object.entries(values)) {
    if (key === "no-auth" && value === false) continue;
    flags.set(key, value === true ? true : String(value));
  }
  return resolveConfig({ flags, env: {} });
}

/** A running in-process server and its data directory. */
export interface TestServer extends ServerHandle {
  dataDir: string;
  config: Config;
  /** Shuts down and removes the data directory. */
  close(): Promise<void>;
}

/** Starts an in-process server on a fresh data directory. */
export async function startTestServer(
  overrides: Overrides = {},
  options: ServerOptions & { dataDir?: string } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "jobwire-test-" });
  const config = testConfig(dataDir, overrides);
  const server = await startServer(config, options);
  return {
    ...server,
    dataDir,
    config,
    async close() {
      await server.shutdown();
      if (options.dataDir === undefined) {
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      }
    },
  };
}

/** Runs `fn` with a fresh server, always shutting it down. */
export async function withServer(
  overrides: Overrides,
  fn: (server: TestServer) => Promise<void>,
): Promise<void> {
  const server = await startTestServer(overrides);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/** Path of `main.ts`. */
export const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Permissions the server process runs with (as `deno task start`). */
export const SERVER_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--allow-run",
];

/** A server running as a child process. */
export interface ChildServer {
  url: string;
  process: Deno.ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Sends a signal and waits for the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Starts `main.ts` with `args` and waits for its "listening on" line.
 *
 * @throws {Error} with the output when it exits or does not listen within `timeoutMs`
 */
export async function spawnServer(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number; maxFiles?: number } = {},
): Promise<ChildServer> {
  const deno = [Deno.execPath(), "run", ...SERVER_PERMISSIONS, MAIN, ...args];
  // With a descriptor limit, through a shell that sets it and then becomes the server.
  const [program, ...programArgs] = options.maxFiles === undefined
    ? deno
    : ["sh", "-c", `ulimit -n ${options.maxFiles} && exec "$0" "$@"`, ...deno];
  const command = new Deno.Command(program!, {
    args: programArgs,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  });
  const process = command.spawn();
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const pumps = Promise.all([pump(process.stdout), pump(process.stderr)]);
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let exited = false;
  process.status.then(() => (exited = true));
  while (Date.now() < deadline) {
    const match = /listening on (http:\/\/\S+)/.exec(text);
    if (match !== null) {
      const url = match[1]!;
      return {
        url,
        process,
        output: () => text,
        async stop(signal: Deno.Signal = "SIGTERM") {
          try {
            process.kill(signal);
          } catch {
            // Already exited.
          }
          const status = await process.status;
          await pumps;
          return status;
        },
      };
    }
    if (exited) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  try {
    process.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await process.status;
  await pumps;
  throw new Error(`Server did not start:\n${text}`);
}

/**
 * Runs `test` against `main.ts` serving without auth on `workers` isolates, on a port of
 * its own and a temporary data directory (`args` are added to the command line). The
 * server is stopped and the directory removed afterwards; stopping it in `test` too is
 * harmless.
 */
export async function withChildServer(
  workers: number,
  args: string[],
  test: (server: ChildServer, dataDir: string) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-child-" });
  try {
    const server = await spawnServer([
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--no-auth",
      "--workers",
      String(workers),
      ...args,
    ]);
    try {
      await test(server, dataDir);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

/** Runs `main.ts` to completion with `args`; returns its exit code and output. */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", ...SERVER_PERMISSIONS, "--allow-run", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: options.stdin === undefined ? "null" : "piped",
    env: { NO_COLOR: "1", ...options.env },
  });
  const child = command.spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}
