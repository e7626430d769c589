/**
 * Serving on every core: prepares the data directory (schema, secret), then runs
 * `deno serve --parallel` on `src/worker.ts` with one isolate per worker, listening on
 * the configured address, and reports when it answers. Signals are passed on; the
 * isolates close their streams with 1001 and their database before the process ends.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { join } from "node:path";
import { DATABASE_FILE, openSqliteStore, startCheckpointer } from "./store/sqlite_store.ts";
import { loadOrCreateSecret } from "./auth/secret.ts";
import { freePort, SHUTDOWN_GRACE_MS } from "./server.ts";
import { log } from "./log.ts";
import { StartupRefusal } from "./startup_errors.ts";

/** Environment variable carrying the resolved configuration to each isolate. */
export const WORKER_CONFIG_ENV = "JOBWIRE_WORKER_CONFIG";
/** Environment variable naming the channel the isolates of one server share. */
export const WORKER_CLUSTER_ENV = "JOBWIRE_CLUSTER";
/**
 * Environment variable with the launcher's pid: the isolates stop once their parent is not
 * that process (it died, maybe before they read their parent).
 */
export const WORKER_LAUNCHER_ENV = "JOBWIRE_LAUNCHER_PID";

/** Permissions each isolate runs with (those of `deno task start`, less spawning). */
const WORKER_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];

/** Longest wait for every isolate to answer after spawning, in milliseconds. */
const READY_TIMEOUT_MS = 60_000;
/** Wait for the last isolates once the first answers, in milliseconds (they take ~1 s). */
const ISOLATE_WAIT_MS = 10_000;
/** Spawns of the isolates before giving up when one of them does not start. */
const START_ATTEMPTS = 3;
/** Time after the shutdown grace before a process that ignores SIGTERM is killed, in ms. */
const STOP_MARGIN_MS = 5_000;
/** Unexpected ends of the isolates' process started again at once within a window. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** Longest wait before starting the isolates again after many ends, in milliseconds. */
const MAX_RESTART_WAIT_MS = 30_000;
/** How often the launcher asks `/healthz` how many isolates serve, in milliseconds. */
const HEALTH_INTERVAL_MS = 2_000;
/** Answers in a row with an isolate missing before they are all started again. */
const HEALTH_MISSES = 3;

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
  let address: string | undefined;
  try {
    [address] = await Deno.resolveDns(host, "A");
  } catch (error) {
    throw new Deno.errors.NotFound(`cannot resolve --host ${host}: ${(error as Error).message}`);
  }
  if (address === undefined) throw new Deno.errors.NotFound(`cannot resolve --host ${host}`);
  return address;
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
 * Starts `workers` isolates serving `config`. Resolves once `/healthz` counts them all.
 *
 * @throws {Error} with the cause when the isolates exit or do not answer in time
 */
export async function startCluster(config: Config, workers: number): Promise<Cluster> {
  // The port first: a server that cannot listen upgrades no database (one an older server
  // may still be using).
  const ip = await ipOf(config.host);
  const port = freePort(ip, config.port);
  // Schema and secret are made once here, before the isolates open the same files. This
  // connection stays open until they have started: the WAL's files it made stay with it, so
  // isolates on a disk that filled meanwhile need make none of their own.
  const store = openSqliteStore(config.dataDir, {
    maxEventsPerJob: config.maxEventsPerJob,
    checkpoints: "commits",
  });
  try {
    store.assertWritable();
    return await startIsolates(config, workers, ip, port);
  } finally {
    store.close();
  }
}

async function startIsolates(
  config: Config,
  workers: number,
  ip: string,
  port: number,
): Promise<Cluster> {
  const secret = config.noAuth ? undefined : loadOrCreateSecret(config.dataDir, config.jwtSecret);
  const url = `http://${ip}:${port}`;
  const probe = `http://${
    ip === "0.0.0.0" ? "127.0.0.1" : ip === "[::]" ? "[::1]" : ip
  }:${port}/healthz`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  // One thread of this process checkpoints the WAL for every isolate (each would otherwise
  // start its own, about 10 MB apiece); it stops once they have exited.
  const checkpointer = config.dataDir === ":memory:"
    ? undefined
    : startCheckpointer(join(config.dataDir, DATABASE_FILE));
  for (let attempt = 1;; attempt++) {
    const isolates = spawnIsolates(config, workers, ip, port);
    const outcome = await waitReady(isolates, probe, workers, deadline);
    if (outcome === "ready") {
      const supervised = supervise(
        isolates,
        () => spawnIsolates(config, workers, ip, port),
        probe,
        workers,
      );
      return {
        url,
        port,
        secret: config.jwtSecret === undefined ? secret : undefined,
        stop: supervised.stop,
        exited: supervised.exited.then((code) => {
          checkpointer?.stop();
          return code;
        }),
      };
    }
    isolates.kill();
    const code = await isolates.exited;
    if (outcome === "partial" && attempt < START_ATTEMPTS && Date.now() < deadline) {
      log("warn", `an isolate did not start (attempt ${attempt}): starting them again`);
      continue;
    }
    checkpointer?.stop();
    throw new StartupRefusal(
      outcome === "exited"
        ? `the server isolates exited with code ${code} before answering (their output is above)`
        : `the server isolates did not all answer ${probe} within ${READY_TIMEOUT_MS / 1000} s`,
    );
  }
}

/** Resolves after `ms`, without keeping the process alive for it. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => Deno.unrefTimer(setTimeout(resolve, ms)));
}

/**
 * How many isolates `/healthz` says serve, when the answer is from `isolates`' own server
 * (`undefined` when it does not answer: the process itself is watched for that).
 */
async function isolatesServing(probe: string, isolates: Isolates): Promise<number | undefined> {
  try {
    const reply = await fetch(probe, { signal: AbortSignal.timeout(1000) });
    const health = await reply.json() as { isolates?: unknown; instance?: unknown };
    if (health.instance !== isolates.cluster || typeof health.isolates !== "number") {
      return undefined;
    }
    return health.isolates;
  } catch {
    return undefined;
  }
}

/**
 * Keeps the isolates serving: when their process ends without being asked to (the runtime
 * stops serving for good when it runs out of file descriptors, say), or one isolate stops
 * while the process goes on (its accept loop ends the same way), they are all started
 * again on the same port and data, which hold every acknowledged event. Ends that come
 * more than {@link MAX_RESTARTS} times within {@link RESTART_WINDOW_MS} are started again
 * after a wait that doubles each time, up to {@link MAX_RESTART_WAIT_MS}.
 */
export function supervise(
  first: Isolates,
  spawn: () => Isolates,
  probe: string,
  workers: number,
): { stop(): void; exited: Promise<number> } {
  let current = first;
  let stopping = false;
  let restarting = false;
  let stoppedWhileRestarting = false;
  /** Resolved by `stop()`: ends a wait before starting the isolates again. */
  const stopAsked = Promise.withResolvers<void>();
  const ends: number[] = [];
  /** Isolates the health watch stopped (their end is logged there, not as unexpected). */
  const restartAsked = new WeakSet<Isolates>();
  const exited = (async () => {
    for (;;) {
      const code = await current.exited;
      // Asked to stop while starting again: the new isolates may end by the signal itself,
      // before they could take it gracefully.
      if (stopping) return stoppedWhileRestarting ? 0 : code;
      const now = Date.now();
      ends.push(now);
      while (ends[0]! < now - RESTART_WINDOW_MS) ends.shift();
      restarting = true;
      if (ends.length > MAX_RESTARTS) {
        const wait = Math.min(MAX_RESTART_WAIT_MS, 1000 * 2 ** (ends.length - MAX_RESTARTS - 1));
        log(
          "error",
          `the server isolates ended (code ${code}) ${ends.length} times within ` +
            `${RESTART_WINDOW_MS / 1000} s: starting them again in ${wait / 1000} s`,
        );
        await Promise.race([pause(wait), stopAsked.promise]);
        if (stopping) return 0;
      } else if (restartAsked.has(current)) {
        // The health watch stopped them, and has said why.
      } else if (code === 0) {
        // A graceful end that this launcher did not ask for: a signal sent to the isolates'
        // process itself (to stop jobwire, signal the launcher).
        log(
          "warn",
          `the server isolates stopped on a signal sent to their process (pid ${current.pid}), ` +
            `not to this launcher (pid ${Deno.pid}, the one to signal to stop jobwire): ` +
            "starting them again",
        );
      } else {
        log("error", `the server isolates ended unexpectedly (code ${code}): starting them again`);
      }
      current = spawn();
      const outcome = await waitReady(current, probe, workers, Date.now() + READY_TIMEOUT_MS);
      restarting = false;
      if (stopping) current.stop();
      else if (outcome !== "ready") current.kill();
      else log("info", "the server isolates are serving again");
    }
  })();
  // One isolate that stops serving leaves the process running: /healthz then counts fewer
  // (an isolate not heard from for 5 s is no longer counted).
  (async () => {
    let short = 0;
    while (!stopping) {
      await pause(HEALTH_INTERVAL_MS);
      const watched = current;
      if (stopping || restarting || watched.ended()) {
        short = 0;
        continue;
      }
      const serving = await isolatesServing(probe, watched);
      if (serving === undefined || serving >= workers || watched !== current) {
        short = 0;
        continue;
      }
      if (++short < HEALTH_MISSES) continue;
      short = 0;
      log("error", `only ${serving} of ${workers} isolates are serving: starting them again`);
      // Its end is then one the loop above did not ask for, and has said why already.
      restartAsked.add(watched);
      watched.stop();
    }
  })();
  return {
    stop() {
      stopping = true;
      if (restarting) stoppedWhileRestarting = true;
      stopAsked.resolve();
      current.stop();
    },
    exited,
  };
}

/** A running `deno serve --parallel` process. */
export interface Isolates {
  /** Name the isolates answer `/healthz` with, so another server on the port is not taken for them. */
  readonly cluster: string;
  /** Process id of `deno serve`. */
  readonly pid: number;
  readonly exited: Promise<number>;
  readonly ended: () => boolean;
  /** SIGTERM, then SIGKILL if it has not exited after the shutdown grace. */
  stop(): void;
  kill(): void;
}

function spawnIsolates(config: Config, workers: number, ip: string, port: number): Isolates {
  const cluster = `jobwire-${crypto.randomUUID()}`;
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
      [WORKER_CLUSTER_ENV]: cluster,
      [WORKER_LAUNCHER_ENV]: String(Deno.pid),
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
  let ended = false;
  const exited = child.status.then(async (status) => {
    ended = true;
    await forwarding.catch(() => {});
    return status.code;
  });
  const signal = (name: Deno.Signal) => {
    if (ended) return;
    try {
      child.kill(name);
    } catch {
      // Already gone.
    }
  };
  return {
    cluster,
    pid: child.pid,
    exited,
    ended: () => ended,
    stop() {
      signal("SIGTERM");
      // The isolates close their streams and database within the grace; a process still
      // running well after it is wedged (see waitReady), and only SIGKILL ends it.
      const timer = setTimeout(() => signal("SIGKILL"), SHUTDOWN_GRACE_MS + STOP_MARGIN_MS);
      exited.then(() => clearTimeout(timer));
    },
    kill: () => signal("SIGKILL"),
  };
}

/**
 * Waits until `/healthz` counts every isolate. `partial`: the server answered but an
 * isolate was still missing after {@link ISOLATE_WAIT_MS}. deno serve --parallel
 * occasionally starts without one of its workers; such a process also ignores SIGTERM, so
 * it is replaced rather than used.
 */
async function waitReady(
  isolates: Isolates,
  probe: string,
  workers: number,
  deadline: number,
): Promise<"ready" | "partial" | "exited" | "timeout"> {
  let answeredAt: number | undefined;
  for (;;) {
    if (isolates.ended()) return "exited";
    // Not listening yet, or another server answering on this port (the isolates failed to
    // bind), is no answer.
    const serving = await isolatesServing(probe, isolates);
    if (serving !== undefined) {
      // Ready once every isolate is up: one still loading would not have its SIGTERM
      // listener yet, and a stop sent then would leave it (and the process) running.
      if (serving >= workers) return "ready";
      answeredAt ??= Date.now();
      if (Date.now() - answeredAt > ISOLATE_WAIT_MS) return "partial";
    }
    if (Date.now() > deadline) return "timeout";
    await new Promise((r) => setTimeout(r, 50));
  }
}
