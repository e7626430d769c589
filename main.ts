/**
 * jobwire's command line: `serve` (the default) starts the server; `token` and `user`
 * administer it; `run`, `watch`, `wait` and `demo` are the terminal tools (`src/cli/`).
 *
 * @module
 */
import {
  BOOLEAN_FLAGS,
  closest,
  type Config,
  ConfigError,
  fitToOpenFiles,
  MAX_CONNECTIONS_DEFAULT,
  openFileLimit,
  OPTION_NAMES,
  optionsHelp,
  optionSource,
  parseArgs,
  readConfigFile,
  resolveConfig,
} from "./src/config.ts";
import { startServer } from "./src/server.ts";
import { type DataLock, guardDataDir, lockDataDir } from "./src/store/data_lock.ts";
import { startupFailure } from "./src/startup_errors.ts";
import { parallelUnavailable, startCluster } from "./src/cluster.ts";
import { log } from "./src/log.ts";
import { KeyError, loadPublicKeyFile, signToken } from "./src/auth/keys.ts";
import { CancelledError, tokenCommand, userCommand } from "./src/cli/admin.ts";
import { runCommand } from "./src/cli/run.ts";
import { watchCommand } from "./src/cli/watch.ts";
import { waitCommand } from "./src/cli/wait.ts";
import { demoCommand } from "./src/cli/demo.ts";

/** Lifetime of the admin token printed at a start without a configured key. */
const START_TOKEN_TTL_MS = 24 * 3_600_000;

/**
 * The subject of the admin token printed at start, and so the owner of the jobs it creates:
 * a name no user can have (`user add` takes letters, digits and `. _ @ -`), so that a user
 * named `admin` does not own them.
 */
export const START_TOKEN_SUB = "jobwire:admin";

const USAGE = `jobwire: live, replayable progress streams for long-running jobs

Usage:
  deno task start [options]          start the server (same as: main.ts serve [options])
  main.ts token --sub S --scope "…"  mint a token (main.ts token --help)
  main.ts user add|remove|list       manage users who sign in (main.ts user --help)

Terminal tools (each has --help; --server defaults to JOBWIRE_SERVER, else
http://127.0.0.1:8080, and --token to JOBWIRE_TOKEN):
  main.ts run [--id ID] -- CMD ARGS  run a command as a job: its output becomes events
  main.ts watch JOB [--json]         follow a job with a live progress bar
  main.ts wait JOB [--timeout S]     block until a job ends; the exit code says how
  main.ts demo                       run a simulated job and show how to follow it

Options (flag > JOBWIRE_* environment > jobwire.json > default):
${optionsHelp()}
  --config <file>                Configuration file [default ./jobwire.json when present]
  --help                         Show this help
`;

async function serve(args: string[]): Promise<number> {
  const parsed = parseArgs(
    args,
    new Set([...BOOLEAN_FLAGS, "help"]),
    new Set([...OPTION_NAMES, "config"]),
  );
  if (parsed.flags.has("help")) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.positional.length > 0) {
    throw new ConfigError(
      `Unexpected argument ${JSON.stringify(parsed.positional[0])} (see --help)`,
    );
  }
  const configFlag = parsed.flags.get("config");
  const file = readConfigFile(typeof configFlag === "string" ? configFlag : undefined);
  const sources = {
    flags: parsed.flags,
    env: Deno.env.toObject(),
    ...(file === undefined ? {} : { file }),
  };
  const asked = resolveConfig(sources, new Set(["config", "help"]));
  const openFiles = openFileLimit();
  const { config, capped } = fitToOpenFiles(asked, openFiles);
  if (capped) {
    // Asked for explicitly, the lower limit is worth a warning; the default says it will be.
    const chosen = asked.maxConnections !== MAX_CONNECTIONS_DEFAULT;
    log(
      chosen ? "warn" : "debug",
      `open streams are limited to ${config.maxConnections} by the open-file limit ` +
        `(ulimit -n: ${openFiles})` +
        (chosen ? `, not ${asked.maxConnections || "unlimited"} (--max-connections)` : "") +
        ": raise it to hold more",
    );
  }
  const unavailable = config.workers <= 1
    ? undefined
    : config.dataDir === ":memory:"
    ? "an in-memory database (--data-dir :memory:) lives in one isolate"
    : parallelUnavailable();
  if (unavailable !== undefined) log("warn", `serving with one isolate: ${unavailable}`);
  if (!config.noAuth && config.jwtPublicKey !== undefined) {
    // Read once here, so a bad key file is one line, not a stack trace from every isolate.
    try {
      await loadPublicKeyFile(config.jwtPublicKey, optionSource(sources, "jwt-public-key"));
    } catch (error) {
      if (error instanceof KeyError) throw new ConfigError(error.message);
      throw error;
    }
  }
  const parallel = config.workers > 1 && unavailable === undefined;
  const lock: DataLock | undefined = config.dataDir === ":memory:"
    ? undefined
    : lockDataDir(config.dataDir);
  if (lock !== undefined) {
    for (const warning of guardDataDir(config.dataDir)) {
      log("warn", warning);
    }
  }
  try {
    return await serveLocked(config, parallel);
  } finally {
    lock?.release();
  }
}

/** Serves `config` until a signal stops it; returns the exit code. */
async function serveLocked(config: Config, parallel: boolean): Promise<number> {
  let url: string;
  let secret: { secret: Uint8Array; path: string | null; created: boolean } | undefined;
  let stop: ((signal: Deno.Signal) => void) | undefined;
  let finished: Promise<number>;
  // Listen before serving: a signal sent as soon as the listening line appears must find a
  // listener (the admin token is signed after that line). A signal during start-up is held
  // until there is something to stop.
  let pending: Deno.Signal | undefined;
  const onSignal = (signal: Deno.Signal) => () => {
    log("info", "shutting down");
    if (stop === undefined) pending ??= signal;
    else stop(signal);
  };
  const onInt = onSignal("SIGINT");
  const onTerm = onSignal("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  if (parallel) {
    const cluster = await startCluster(config, config.workers);
    url = cluster.url;
    secret = cluster.secret;
    stop = () => cluster.stop();
    finished = cluster.exited;
  } else {
    const server = await startServer(config);
    url = server.url;
    secret = server.keys !== undefined && server.secret !== undefined
      ? { secret: server.keys.secret, ...server.secret }
      : undefined;
    stop = () => server.shutdown();
    finished = server.finished.then(() => 0);
  }
  if (config.noAuth) {
    log("warn", "running without authentication (--no-auth): every request is allowed");
  }
  const isolates = parallel ? `, ${config.workers} isolates` : ", 1 isolate";
  console.log(`jobwire listening on ${url} (data: ${config.dataDir}${isolates})`);
  if (secret !== undefined && config.jwtPublicKey === undefined && config.jwksUrl === undefined) {
    // Secure by default: no key was configured, so the server signs its own tokens with a
    // secret kept in the data directory and hands the operator a way in.
    const token = await signToken(
      { secret: secret.secret, issuer: config.jwtIssuer, audience: config.jwtAudience },
      { sub: START_TOKEN_SUB, scope: "admin" },
      START_TOKEN_TTL_MS,
    );
    const where = secret.path === null ? "in memory" : `in ${secret.path}`;
    console.log(
      `No key configured: tokens are signed with the secret ${where}${
        secret.created ? " (created now)" : ""
      }.`,
    );
    console.log(`Admin token (valid 24 h): ${token}`);
    console.log(`Status page: ${url}/#token=${token}`);
  }
  if (pending !== undefined) stop(pending);
  const code = await finished;
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  return code;
}

/** The subcommands, for a typo's message. */
const COMMANDS = ["serve", "token", "user", "run", "watch", "wait", "demo", "help"];

function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
      return serve([]);
    case "serve":
      return serve(rest);
    case "token":
      return tokenCommand(rest);
    case "user":
      return userCommand(rest);
    case "run":
      return runCommand(rest);
    case "watch":
      return watchCommand(rest);
    case "wait":
      return waitCommand(rest);
    case "demo":
      return demoCommand(rest);
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return Promise.resolve(0);
    default: {
      if (command.startsWith("-")) return serve(args);
      const near = closest(command, COMMANDS);
      console.error(
        `jobwire: unknown command ${JSON.stringify(command)}` +
          (near === undefined ? "" : `: did you mean ${near}?`) +
          ` Commands: ${COMMANDS.join(", ")} (help lists them with their options).`,
      );
      return Promise.resolve(2);
    }
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`jobwire: ${error.message}`);
      Deno.exit(2);
    }
    if (error instanceof CancelledError) {
      // Ctrl-C at a prompt: the exit of an interrupted command.
      console.error("jobwire: cancelled");
      Deno.exit(130);
    }
    // The machine's refusals (a port in use, a file that is not a database…) in one line.
    const failure = startupFailure(error);
    if (failure !== undefined) {
      console.error(`jobwire: ${failure}`);
      Deno.exit(1);
    }
    throw error;
  }
}
