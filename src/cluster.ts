/**
 * Serving on every core: prepares the data directory (schema, secret), then runs
 * `deno serve --parallel` on `src/worker.ts` with one isolate per worker, listening on
 * the configured address, and reports when it answers. Signals are passed on; the
 * isolates close their streams with 1001 and their database before the process ends.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { openSqliteStore } from "./store/sqlite_store.ts";
import { loadOrCreateSecret } from "./auth/secret.ts";

/** Environment variable carrying the resolved configuration to each isolate. */
export const WORKER_CONFIG_ENV = "JOBWIRE_WORKER_CONFIG";
/** Environment variable naming the channel the isolates of one server share. */
export const WORKER_CLUSTER_ENV = "JOBWIRE_CLUSTER";

/** Permissions each isolate runs with (those of `deno task start`, less spawning). */
const WORKER_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];

/** Longest wait for the isolates to answer after spawning, in milliseconds. */
const READY_TIMEOUT_MS = 60_000;

/** A running multi-isolate server. */
export interface Cluster {
  readonly url: string;
  readonly port: number;
  /** The generated secret's file, when no key was configured. */
  readonly secret: { secret: Uint8Array; path: string | null; created: boolean } | undefined;
  /** Asks the isolates to stop: streams close with 1001, requests finish, the database closes. */
  stop(): void;
  /** The exit code of the serving process, once it has ended. */
  readonly exited: Promise<number>;
}

/**
 * Why this process cannot start `deno serve`, or `undefined` when it can: a `deno compile`
 * binary has no `deno` to run, and spawning needs `--allow-run`.
 */
export function parallelUnavailable(): string | undefined {
  const name = Deno.execPath().split(/[\\/]/).pop() ?? "";
  if (!/^deno(\.exe)?$/.test(name)) return "a compiled binary serves in one isolate";
  if (Deno.permissions.querySync({ name: "run" }).state !== "granted") {
    return "without --allow-run the server cannot start its isolates";
  }
  return undefined;
}

/** An IP literal for `DENO_SERVE_ADDRESS`, which takes no host names. */
async function ipOf(host: string): Promise<string> {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return host;
  if (host.includes(":")) return `[${host.replace(/^\[|\]$/g, "")}]`;
  if (host === "localhost") return "127.0.0.1";
  const [address] = await Deno.resolveDns(host, "A");
  if (address === undefined) throw new Error(`Cannot resolve --host ${host}`);
  return address;
}

/** A free TCP port on `hostname` (the isolates must all bind the same one). */
function freePort(hostname: string): number {
  const listener = Deno.listen({ hostname: hostname.replace(/^\[|\]$/g, ""), port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function forward(stream: ReadableStream<Uint8Array>, to: typeof Deno.stdout): Promise<void> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, newline + 1);
      buffer = buffer.slice(newline + 1);
      // The launcher prints the one listening line; deno serve's own would repeat it.
      if (!line.startsWith("deno serve: Listening on")) await to.write(encoder.encode(line));
    }
  }
  if (buffer !== "") await to.write(encoder.encode(buffer));
}

/**
 * Starts `workers` isolates serving `config`. Resolves once they answer `/healthz`.
 *
 * @throws {Error} with the cause when the isolates exit or do not answer in time
 */
export async function startCluster(config: Config, workers: number): Promise<Cluster> {
  // Schema and secret are made once here, before the isolates open the same files.
  openSqliteStore(config.dataDir, {
    maxEventsPerJob: config.maxEventsPerJob,
    backgroundCheckpoints: false,
  }).close();
  const secret = config.noAuth ? undefined : loadOrCreateSecret(config.dataDir, config.jwtSecret);
  const ip = await ipOf(config.host);
  const port = config.port === 0 ? freePort(ip) : config.port;
  const url = `http://${ip}:${port}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--parallel",
      ...WORKER_PERMISSIONS,
      // A small young generation: idle connections then cost the heap little (about 4 KiB
      // each less per WebSocket), at no measurable cost in throughput.
      "--v8-flags=--max-semi-space-size=4",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      new URL("./worker.ts", import.meta.url).pathname,
    ],
    env: {
      DENO_SERVE_ADDRESS: `tcp:${ip}:${port}`,
      DENO_JOBS: String(workers),
      [WORKER_CONFIG_ENV]: JSON.stringify({ ...config, port }),
      [WORKER_CLUSTER_ENV]: `jobwire-${crypto.randomUUID()}`,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // Its own process group: Ctrl-C in a terminal reaches only this launcher, which then
    // asks the isolates to stop with SIGTERM (the signal deno serve shuts down gracefully on).
    detached: true,
  }).spawn();
  const forwarding = Promise.all([
    forward(child.stdout, Deno.stdout),
    forward(child.stderr, Deno.stderr),
  ]);
  const exited = child.status.then(async (status) => {
    await forwarding.catch(() => {});
    return status.code;
  });
  let ended = false;
  exited.then(() => (ended = true));
  const probe = `http://${
    ip === "0.0.0.0" ? "127.0.0.1" : ip === "[::]" ? "[::1]" : ip
  }:${port}/healthz`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (ended) {
      throw new Error(`The server isolates exited with code ${await exited} before answering`);
    }
    try {
      const reply = await fetch(probe, { signal: AbortSignal.timeout(1000) });
      await reply.body?.cancel();
      if (reply.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(
        `The server isolates did not answer ${probe} within ${READY_TIMEOUT_MS / 1000} s`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    port,
    secret: config.jwtSecret === undefined ? secret : undefined,
    stop() {
      if (ended) return;
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    },
    exited,
  };
}
