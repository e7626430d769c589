/**
 * Command lines of the terminal tools (`run`, `watch`, `wait`, `demo`): their flags, and
 * the server and token they talk to (`--server` > `JOBWIRE_SERVER` > the default;
 * `--token` > `JOBWIRE_TOKEN`).
 *
 * @module
 */
import { ConfigError, parseDuration, unknownOption } from "../config.ts";
import { JobwireError } from "../client/errors.ts";

/** Server the tools talk to when neither `--server` nor `JOBWIRE_SERVER` names one. */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** A split command line. */
export interface CommandLine {
  flags: Map<string, string | true>;
  positional: string[];
  /** Arguments after `--` (or, with `stopAtPositional`, from the first positional on). */
  rest: string[];
}

/** Which flags a command takes. */
export interface FlagSpec {
  /** Flags that take a value (`--server URL` or `--server=URL`). */
  values: readonly string[];
  /** Flags that take none (`--json`); `help` is always accepted, also as `-h`. */
  booleans: readonly string[];
  /** Whether the first positional argument starts `rest` (the command of `run`). */
  stopAtPositional?: boolean;
}

/**
 * Splits `args` by `spec`.
 *
 * @throws {ConfigError} for an unknown flag or a missing value
 */
export function parseCommandLine(args: readonly string[], spec: FlagSpec): CommandLine {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  const booleans = new Set([...spec.booleans, "help"]);
  const values = new Set(spec.values);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return { flags, positional, rest: args.slice(i + 1) };
    if (arg === "-h") {
      flags.set("help", true);
      continue;
    }
    if (!arg.startsWith("--")) {
      if (spec.stopAtPositional) return { flags, positional, rest: args.slice(i) };
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (booleans.has(name)) {
      if (eq !== -1) throw new ConfigError(`Option --${name} takes no value`);
      flags.set(name, true);
    } else if (values.has(name)) {
      const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
      if (value === undefined) throw new ConfigError(`Option --${name} needs a value`);
      flags.set(name, value);
    } else {
      throw unknownOption(name, [...booleans, ...values]);
    }
  }
  return { flags, positional, rest: [] };
}

/** The value of a flag that takes one, or `undefined`. */
export function flagValue(line: CommandLine, name: string): string | undefined {
  const value = line.flags.get(name);
  return typeof value === "string" ? value : undefined;
}

/** Where the tools connect. */
export interface Connection {
  /** Base URL without a trailing slash, such as `http://127.0.0.1:8080`. */
  server: string;
  token: string | undefined;
}

/**
 * The server and token: flags first, then `JOBWIRE_SERVER` and `JOBWIRE_TOKEN`.
 *
 * @throws {ConfigError} when the server is not an http(s) URL
 */
export function connectionOf(
  line: CommandLine,
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Connection {
  const connection = looseConnectionOf(line, env);
  if (connection.invalid !== undefined) throw new ConfigError(connection.invalid);
  return connection;
}

/**
 * The server and token as {@link connectionOf} reads them, with what is wrong with the
 * server's URL in `invalid` instead of thrown (for `run`, whose command runs anyway).
 */
export function looseConnectionOf(
  line: CommandLine,
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Connection & { invalid?: string } {
  const raw = flagValue(line, "server") ?? nonEmpty(env.JOBWIRE_SERVER) ?? DEFAULT_SERVER;
  let invalid: string | undefined;
  if (!URL.canParse(raw)) {
    invalid = `Invalid server URL ${JSON.stringify(raw)}: expected http://host:port`;
  } else if (!["http:", "https:"].includes(new URL(raw).protocol)) {
    invalid = `Invalid server URL ${JSON.stringify(raw)}: expected http or https`;
  }
  const given = flagValue(line, "token") ?? nonEmpty(env.JOBWIRE_TOKEN);
  // A token pasted with the header's word before it ("Bearer eyJ…") is the token after it.
  const token = given?.replace(/^\s*Bearer(\s+|$)/i, "").trim();
  return {
    server: raw.replace(/\/+$/, ""),
    token: token === "" ? undefined : token,
    ...(invalid === undefined ? {} : { invalid }),
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** The status-page URL of a job (the `urls.status` of `POST /jobs`). */
export function statusPageUrl(server: string, jobId: string): string {
  return `${server}/#/jobs/${encodeURIComponent(jobId)}`;
}

/**
 * A duration flag in seconds: plain seconds (`30`, `2.5`) or with a unit (`500ms`, `10m`, `1h`).
 *
 * @throws {ConfigError} when it is not a non-negative duration
 */
export function secondsFlag(line: CommandLine, name: string): number | undefined {
  const value = flagValue(line, name);
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw new ConfigError(`Invalid value for --${name}: expected seconds, such as 30 or 10m`);
  }
  return ms / 1000;
}

/**
 * A hint to add to an authentication refusal: how to give a token when none was given.
 * Refusals arrive as HTTP 401 or, on a WebSocket, as close 1008 "authentication required".
 */
export function authHint(error: unknown, tokenGiven: boolean): string {
  if (tokenGiven || !(error instanceof JobwireError)) return "";
  const auth = error.status === 401 || /authenticat/i.test(error.message);
  return auth ? " (pass --token or set JOBWIRE_TOKEN; the server prints one at start)" : "";
}
