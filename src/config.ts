/**
 * Server configuration: flags > `JOBWIRE_*` environment > `jobwire.json` > defaults,
 * validated with zod into one complete, readonly {@link Config}. A bad value stops
 * start-up with a message naming the flag, variable or file key it came from.
 *
 * @module
 */
import { z } from "zod";
import { ipLiteral, proxyEntry } from "./http/proxies.ts";

/** Parses a duration: `500ms`, `30s`, `10m`, `1h`, `2d`, or a plain number of seconds. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0 ? input * 1000 : undefined;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(input);
  if (match === null) return undefined;
  const value = Number(match[1]);
  const unit = match[2] ?? "s";
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!;
  return Math.round(value * factor);
}

/** Longest interval a timer takes (2^31 - 1 ms, about 24.8 days; longer fire at once). */
export const TIMER_MAX_MS = 24 * 86_400_000;

/** Longest lifetime of a token (ten years): one much longer would expire past any date. */
export const MAX_TOKEN_TTL_MS = 3650 * 86_400_000;

/**
 * A duration in milliseconds, at most `maxMs`; with `minMs`, at least that (0 stays allowed
 * where `zeroAllowed`: it turns the thing off).
 */
const duration = (what: string, maxMs = Infinity, minMs = 0, zeroAllowed = true) =>
  // Any value, as for integers: a JSON number that overflows (1e400) is told what is expected.
  z.unknown().transform((value, ctx) => {
    const ms = typeof value === "string" || typeof value === "number"
      ? parseDuration(value)
      : undefined;
    if (ms === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `expected a ${what} such as 30s, 10m, 1h or a number of seconds`,
      });
      return z.NEVER;
    }
    if (ms < minMs && !(ms === 0 && zeroAllowed)) {
      ctx.addIssue({
        code: "custom",
        message: `expected a ${what} of at least ${
          minMs < 1000 ? `${minMs}ms` : `${minMs / 1000}s`
        }${zeroAllowed ? " (or 0)" : ""}`,
      });
      return z.NEVER;
    }
    if (ms > maxMs) {
      ctx.addIssue({
        code: "custom",
        message: `expected a ${what} of at most ${maxMs / 86_400_000}d`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** A value as a message shows it: JSON, but Infinity and NaN by name (JSON says null). */
function shown(value: unknown): string {
  return typeof value === "number" && !Number.isFinite(value)
    ? String(value)
    : JSON.stringify(value);
}

/** Schemas of options whose value in a JSON file must be a JSON number. */
const NUMERIC = new WeakSet<z.ZodType>();

const integer = (min: number, max: number) => {
  // Any value: a number too large for JSON (1e400) reads as Infinity, which z.number() would
  // refuse with a message that does not say what is expected.
  const schema = z.unknown().transform((value, ctx) => {
    const n = typeof value === "number"
      ? value
      : typeof value === "string" && value.trim() !== ""
      ? Number(value.trim())
      : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: "custom", message: `expected an integer from ${min} to ${max}` });
      return z.NEVER;
    }
    return n;
  });
  NUMERIC.add(schema);
  return schema;
};

const boolean = z.union([z.boolean(), z.string()]).transform((value, ctx) => {
  if (typeof value === "boolean") return value;
  const lower = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(lower)) return true;
  if (["0", "false", "no", "off"].includes(lower)) return false;
  ctx.addIssue({ code: "custom", message: "expected true or false" });
  return z.NEVER;
});

/** One option: its flag (kebab-case), the schema of its value, its default and meaning. */
interface OptionSpec {
  schema: z.ZodType;
  default: unknown;
  /** Shown in `--help` and the README table. */
  help: string;
  /** A flag that takes no value (`--no-auth`). */
  flag?: boolean;
  /** Never echoed in error messages. */
  secret?: boolean;
  /** The default as `--help` and the README show it, when it depends on the machine. */
  shownDefault?: string;
}

/** Default of `--max-connections`, before the open-file limit lowers it. */
export const MAX_CONNECTIONS_DEFAULT = 100_000;

/**
 * Every server option. Flags are `--<name>`, environment variables `JOBWIRE_<NAME>` (upper
 * case, `-` → `_`), file keys `<name>` with `-` → `_`.
 */
export const OPTIONS = {
  host: {
    schema: z.string().regex(
      /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*|\[[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\])$/,
      "expected a host name or IP address such as 127.0.0.1, 0.0.0.0 or ::, without a scheme " +
        "or port (the port is --port)",
    ),
    default: "127.0.0.1",
    help: "Interface to listen on: a name or address (0.0.0.0, ::), no scheme or port",
  },
  port: { schema: integer(0, 65535), default: 8080, help: "TCP port (0 picks a free one)" },
  workers: {
    schema: integer(1, 256),
    default: Math.max(1, navigator.hardwareConcurrency || 1),
    shownDefault: "core count",
    help: "Isolates serving in parallel (deno serve --parallel); 1 serves in this process",
  },
  "data-dir": {
    schema: z.string().min(1),
    default: "./data",
    help:
      "Directory of the SQLite database, one server each (`:memory:` keeps nothing, on one isolate)",
  },
  retention: {
    schema: duration("duration"),
    default: "1h",
    help: "How long a finished job and its events are kept after it ends",
  },
  "replay-window": {
    schema: integer(0, 1_000_000),
    default: 100,
    help: "Events replayed to a stream that gives no `since`",
  },
  heartbeat: {
    schema: duration("duration", TIMER_MAX_MS, 100),
    default: "30s",
    help: "Interval of heartbeats on every stream (at least 100ms; 0 disables them)",
  },
  "no-auth": {
    schema: boolean,
    default: false,
    flag: true,
    help: "Allow every request without a token (for local development)",
  },
  "stall-after": {
    schema: duration("duration"),
    default: "10m",
    help: "A running job with no event for this long is flagged stalled (0 disables)",
  },
  "max-events-per-job": {
    schema: integer(1, 100_000_000),
    default: 10_000,
    help: "Events retained per job; the oldest are dropped first",
  },
  "max-event-bytes": {
    schema: integer(256, 16 * 1024 * 1024),
    default: 64 * 1024,
    help: "Largest event (its `data` as JSON), in bytes",
  },
  "max-body-bytes": {
    schema: integer(1024, 256 * 1024 * 1024),
    default: 1024 * 1024,
    help: "Largest request body, in bytes (at least 1024)",
  },
  "max-batch": {
    schema: integer(1, 100_000),
    default: 1000,
    help: "Most events in one publish request",
  },
  "replay-cache-bytes": {
    schema: integer(0, 1024 * 1024 * 1024 * 1024),
    default: 32 * 1024 * 1024,
    help: "Memory per isolate for recent events, replayed without a database read (0 disables)",
  },
  "send-buffer": {
    schema: integer(1, 10_000_000),
    default: 1000,
    help: "Messages waiting for a slow client before it is disconnected (4008)",
  },
  "tombstone-ttl": {
    schema: duration("duration"),
    default: "24h",
    help: "How long a purged job's id answers 410 Gone before it answers 404",
  },
  "idempotency-ttl": {
    schema: duration("duration"),
    default: "24h",
    help: "How long an Idempotency-Key is remembered",
  },
  "log-level": {
    // `warning` as log events spell it, in any letter case.
    schema: z.preprocess(
      (v) => typeof v === "string" ? v.toLowerCase().replace(/^warning$/, "warn") : v,
      z.enum(["debug", "info", "warn", "error"], {
        error: "expected debug, info, warn (or warning) or error",
      }),
    ),
    default: "info",
    help: "Lowest level of log lines written to stderr (debug, info, warn or warning, error)",
  },
  "jwt-secret": {
    schema: z.string().min(16, "must be at least 16 characters").optional(),
    default: undefined,
    secret: true,
    help: "HS256 secret that signs and verifies tokens (else one is made in the data directory)",
  },
  "jwt-public-key": {
    schema: z.string().min(1).optional(),
    default: undefined,
    help: "File with a public key (PEM SPKI, JWK or JWKS; RS256, ES256 or EdDSA) to verify tokens",
  },
  "jwks-url": {
    schema: z.url({ protocol: /^https?$/ }).optional(),
    default: undefined,
    help: "URL of a JWKS to verify tokens with",
  },
  "jwt-issuer": {
    schema: z.string().min(1).optional(),
    default: undefined,
    help: "Required `iss` of tokens",
  },
  "jwt-audience": {
    schema: z.string().min(1).optional(),
    default: undefined,
    help: "Required `aud` of tokens",
  },
  "token-ttl": {
    schema: duration("duration", MAX_TOKEN_TTL_MS, 1000, false),
    default: "1h",
    help: "Lifetime of tokens issued by POST /auth/login (at most 3650d)",
  },
  "ticket-ttl": {
    schema: duration("duration", Infinity, 1000, false),
    default: "30s",
    help: "Lifetime of single-use stream tickets from POST /tickets",
  },
  "allowed-origins": {
    schema: z.string(),
    default: "",
    help: "Browser origins allowed besides the server's own (comma-separated; * for any)",
  },
  "allowed-hosts": {
    schema: z.string(),
    default: "",
    help:
      "Host names a --no-auth server answers besides localhost and IPs (comma-separated; .example.com with subdomains; * for any)",
  },
  "max-connections": {
    schema: integer(0, 10_000_000),
    default: MAX_CONNECTIONS_DEFAULT,
    help:
      "Open streams in total, beyond which new ones are refused (1013); 0 = no limit. Never above what the open-file limit holds (ulimit -n: 90%, less 64)",
  },
  "max-connections-per-principal": {
    schema: integer(0, 10_000_000),
    default: 1000,
    help: "Open streams per token subject (per IP without auth); 0 = no limit",
  },
  "max-connections-per-ip": {
    schema: integer(0, 10_000_000),
    default: 2000,
    help: "Open streams per client IP; 0 = no limit",
  },
  "max-publish-rate": {
    schema: integer(0, 100_000_000),
    default: 10_000,
    help: "Events per second each principal may publish (429 beyond); 0 = no limit",
  },
  "publish-burst": {
    schema: integer(0, 100_000_000),
    default: 0,
    help: "Events a principal may publish at once above the rate; 0 = twice the rate",
  },
  "limits-exempt-ips": {
    schema: z.string(),
    default: "loopback",
    help:
      "Client addresses the per-address limits do not count (comma-separated IPs; loopback = 127.0.0.0/8 and ::1; none)",
  },
  "trusted-proxies": {
    schema: z.string(),
    default: "none",
    help:
      "Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (comma-separated IPs or ranges such as 10.0.0.0/8; loopback; private; none)",
  },
} as const satisfies Record<string, OptionSpec>;

/** An option name (its flag without `--`). */
export type OptionName = keyof typeof OPTIONS;

/** The resolved configuration: every field present; durations in milliseconds. */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly workers: number;
  readonly dataDir: string;
  readonly retentionMs: number;
  readonly replayWindow: number;
  readonly heartbeatMs: number;
  readonly noAuth: boolean;
  readonly stallAfterMs: number;
  readonly maxEventsPerJob: number;
  readonly maxEventBytes: number;
  readonly maxBodyBytes: number;
  readonly maxBatch: number;
  readonly replayCacheBytes: number;
  readonly sendBuffer: number;
  readonly tombstoneTtlMs: number;
  readonly idempotencyTtlMs: number;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  readonly jwtSecret: string | undefined;
  readonly jwtPublicKey: string | undefined;
  readonly jwksUrl: string | undefined;
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  readonly tokenTtlMs: number;
  readonly ticketTtlMs: number;
  /** Origins allowed besides the server's own; `["*"]` allows any. */
  readonly allowedOrigins: readonly string[];
  /** Lower-case host names (a leading dot takes in subdomains), or `*`. */
  readonly allowedHosts: readonly string[];
  readonly maxConnections: number;
  readonly maxConnectionsPerPrincipal: number;
  readonly maxConnectionsPerIp: number;
  readonly maxPublishRate: number;
  readonly publishBurst: number;
  /** Addresses per-address limits skip: IP literals and `loopback`. */
  readonly limitsExemptIps: readonly string[];
  /** Reverse proxies believed about the client: addresses, `address/bits`, `loopback`, `private`. */
  readonly trustedProxies: readonly string[];
}

/** A configuration problem, with the source of the offending value in its message. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Environment variable of an option. */
export function envName(option: string): string {
  return `JOBWIRE_${option.toUpperCase().replaceAll("-", "_")}`;
}

/** The flags and positional arguments of a command line. */
export interface ParsedArgs {
  flags: Map<string, string | true>;
  positional: string[];
  /** Arguments after a lone `--`, untouched. */
  rest: string[];
}

/**
 * Splits a command line into `--flag value`, `--flag=value`, boolean flags and positionals.
 *
 * @param booleans flags that never take a value
 * @param known every flag the command takes, when given: an unknown one without a value is
 *   named as unknown (a mistyped last flag), not as one that needs a value
 */
export function parseArgs(
  args: readonly string[],
  booleans: ReadonlySet<string>,
  known?: ReadonlySet<string>,
): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return { flags, positional, rest: args.slice(i + 1) };
    if (!arg.startsWith("--") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (eq !== -1) {
      flags.set(name, arg.slice(eq + 1));
    } else if (booleans.has(name)) {
      flags.set(name, true);
    } else {
      const value = args[i + 1];
      if (value === undefined || value.startsWith("--")) {
        if (known !== undefined && !known.has(name) && !booleans.has(name)) {
          throw unknownOption(name, [...known, ...booleans]);
        }
        throw new ConfigError(`Option --${name} needs a value`);
      }
      flags.set(name, value);
      i++;
    }
  }
  return { flags, positional, rest: [] };
}

function camel(option: string): string {
  return option.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const FIELD: Record<OptionName, keyof Config> = {
  host: "host",
  port: "port",
  workers: "workers",
  "data-dir": "dataDir",
  retention: "retentionMs",
  "replay-window": "replayWindow",
  heartbeat: "heartbeatMs",
  "no-auth": "noAuth",
  "stall-after": "stallAfterMs",
  "max-events-per-job": "maxEventsPerJob",
  "max-event-bytes": "maxEventBytes",
  "max-body-bytes": "maxBodyBytes",
  "max-batch": "maxBatch",
  "replay-cache-bytes": "replayCacheBytes",
  "send-buffer": "sendBuffer",
  "tombstone-ttl": "tombstoneTtlMs",
  "idempotency-ttl": "idempotencyTtlMs",
  "log-level": "logLevel",
  "jwt-secret": "jwtSecret",
  "jwt-public-key": "jwtPublicKey",
  "jwks-url": "jwksUrl",
  "jwt-issuer": "jwtIssuer",
  "jwt-audience": "jwtAudience",
  "token-ttl": "tokenTtlMs",
  "ticket-ttl": "ticketTtlMs",
  "allowed-origins": "allowedOrigins",
  "allowed-hosts": "allowedHosts",
  "max-connections": "maxConnections",
  "max-connections-per-principal": "maxConnectionsPerPrincipal",
  "max-connections-per-ip": "maxConnectionsPerIp",
  "max-publish-rate": "maxPublishRate",
  "publish-burst": "publishBurst",
  "limits-exempt-ips": "limitsExemptIps",
  "trusted-proxies": "trustedProxies",
};

/** Where configuration comes from. */
export interface ConfigSources {
  /** Flags already split by {@link parseArgs}. */
  flags: Map<string, string | true>;
  env: Record<string, string | undefined>;
  /** Parsed `jobwire.json`, and the path it came from, when there is one. */
  file?: { path: string; values: Record<string, unknown> };
}

/** Every option's name (its flag without `--`). */
export const OPTION_NAMES: ReadonlySet<string> = new Set(Object.keys(OPTIONS));

/** Option names that are boolean flags. */
export const BOOLEAN_FLAGS: ReadonlySet<string> = new Set(
  Object.entries(OPTIONS).filter(([, spec]) => "flag" in spec && spec.flag).map(([name]) => name),
);

/** The word of `words` within two edits of `typed` (the nearest), if any. */
export function closest(typed: string, words: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const word of words) {
    const distance = editDistance(typed.toLowerCase(), word);
    if (distance < bestDistance) [best, bestDistance] = [word, distance];
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        row[j]! + 1,
        next[j - 1]! + 1,
        row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length]!;
}

/** An unknown option's error, naming the known one it is likely a typo of. */
export function unknownOption(name: string, known: Iterable<string>): ConfigError {
  const near = closest(name, [...known]);
  return new ConfigError(
    `Unknown option --${name}${near === undefined ? "" : `: did you mean --${near}?`} (see --help)`,
  );
}

/**
 * Resolves the configuration.
 *
 * @throws {ConfigError} naming the first bad or unknown option and where it came from
 */
export function resolveConfig(
  sources: ConfigSources,
  extraFlags: ReadonlySet<string> = new Set(),
): Config {
  for (const name of sources.flags.keys()) {
    if (!(name in OPTIONS) && !extraFlags.has(name)) {
      throw unknownOption(name, [...Object.keys(OPTIONS), ...extraFlags]);
    }
  }
  const fileValues = sources.file?.values ?? {};
  const fileOptions = new Map<string, string>();
  for (const key of Object.keys(fileValues)) {
    const option = key.replaceAll("_", "-");
    if (!(option in OPTIONS)) {
      throw new ConfigError(`Unknown key ${JSON.stringify(key)} in ${sources.file?.path}`);
    }
    const other = fileOptions.get(option);
    if (other !== undefined) {
      throw new ConfigError(
        `Both ${JSON.stringify(other)} and ${JSON.stringify(key)} in ${sources.file?.path}: ` +
          "keep one",
      );
    }
    fileOptions.set(option, key);
  }
  const out: Record<string, unknown> = {};
  /** Where each option's value came from, for the lists checked after the loop. */
  const sourceOf = new Map<OptionName, string>();
  for (const [name, spec] of Object.entries(OPTIONS) as [OptionName, OptionSpec][]) {
    const { raw, source, fromFile } = rawValue(sources, name);
    // Text from a command line or the environment is converted; a JSON file has types of its
    // own, and "yes" or "8080" there is more likely a mistake than a spelling.
    const kind = spec.schema === boolean ? "boolean" : NUMERIC.has(spec.schema) ? "number" : null;
    if (fromFile && kind !== null && typeof raw !== kind) {
      throw new ConfigError(
        `Invalid value for ${source}: expected a JSON ${kind}` +
          `${kind === "boolean" ? " (true or false)" : ""}, got ${shown(raw)}`,
      );
    }
    const parsed = spec.schema.safeParse(raw);
    if (!parsed.success) {
      const reason = parsed.error.issues[0]?.message ?? "invalid value";
      throw new ConfigError(
        `Invalid value for ${source}: ${reason}${spec.secret ? "" : `, got ${shown(raw)}`}`,
      );
    }
    out[FIELD[name] ?? camel(name)] = parsed.data;
    sourceOf.set(name, source);
  }
  const list = (field: string) => String(out[field] ?? "");
  out.allowedOrigins = parseOrigins(list("allowedOrigins"), sourceOf.get("allowed-origins"));
  out.allowedHosts = parseHosts(list("allowedHosts"), sourceOf.get("allowed-hosts"));
  out.limitsExemptIps = parseExemptIps(list("limitsExemptIps"), sourceOf.get("limits-exempt-ips"));
  out.trustedProxies = parseTrustedProxies(
    list("trustedProxies"),
    sourceOf.get("trusted-proxies"),
  );
  refuseConflicts(out as unknown as Config, (name) => sourceOf.get(name) ?? `--${name}`);
  return Object.freeze(out) as unknown as Config;
}

/**
 * The value an option is given and where it comes from (`--name`, `JOBWIRE_NAME`, a key of
 * the file, or "the default"): flags over the environment over the file.
 */
function rawValue(
  sources: ConfigSources,
  name: OptionName,
): { raw: unknown; source: string; fromFile: boolean } {
  let raw: unknown = OPTIONS[name].default;
  let source = "the default";
  let fromFile = false;
  const fileValues = sources.file?.values ?? {};
  // A file key may be spelled like the flag (data-dir) or with underscores (data_dir).
  for (const fileKey of [name, name.replaceAll("-", "_")]) {
    if (fileKey in fileValues) {
      raw = fileValues[fileKey];
      source = `${fileKey} in ${sources.file?.path}`;
      fromFile = true;
    }
  }
  const fromEnv = sources.env[envName(name)];
  if (fromEnv !== undefined && fromEnv !== "") {
    raw = fromEnv;
    source = envName(name);
    fromFile = false;
  }
  const fromFlag = sources.flags.get(name);
  if (fromFlag !== undefined) {
    raw = fromFlag;
    source = `--${name}`;
    fromFile = false;
  }
  return { raw, source, fromFile };
}

/** Where an option's value comes from, for messages about it: `--name`, `JOBWIRE_NAME` or a file key. */
export function optionSource(sources: ConfigSources, name: OptionName): string {
  return rawValue(sources, name).source;
}

/**
 * Refuses settings that contradict each other, which would otherwise be half ignored.
 *
 * @throws {ConfigError} naming both
 */
function refuseConflicts(config: Config, source: (name: OptionName) => string): void {
  if (config.jwtPublicKey !== undefined && config.jwksUrl !== undefined) {
    throw new ConfigError(
      `Give ${source("jwt-public-key")} or ${source("jwks-url")}, not both: ` +
        "tokens are checked with one",
    );
  }
  if (config.noAuth) {
    const key = config.jwtSecret !== undefined
      ? "jwt-secret"
      : config.jwtPublicKey !== undefined
      ? "jwt-public-key"
      : config.jwksUrl !== undefined
      ? "jwks-url"
      : undefined;
    if (key !== undefined) {
      throw new ConfigError(
        `${source("no-auth")} turns authentication off, so ${
          source(key)
        } would be ignored: give one or the other`,
      );
    }
  }
}

/**
 * Splits an origin list. Each entry must be `scheme://host[:port]` (or `*`).
 *
 * @param source where the list came from, for the error (a flag, variable or file key)
 * @throws {ConfigError} naming the entry that is not an origin
 */
export function parseOrigins(list: string, source = "--allowed-origins"): string[] {
  const origins: string[] = [];
  for (const raw of list.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    if (raw === "*") {
      origins.push("*");
      continue;
    }
    let origin: string;
    try {
      origin = new URL(raw).origin;
    } catch {
      origin = "null";
    }
    if (origin === "null" || origin !== raw.replace(/\/$/, "")) {
      throw new ConfigError(
        `Invalid value for ${source}: ${
          JSON.stringify(raw)
        } is not an origin such as https://app.example`,
      );
    }
    origins.push(origin);
  }
  return origins;
}

/**
 * Splits a host name list into lower-case names (`.example.com` takes in subdomains).
 *
 * @throws {ConfigError} naming the entry that is not a host name
 */
export function parseHosts(list: string, source = "--allowed-hosts"): string[] {
  const hosts: string[] = [];
  for (const raw of list.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "")) {
    if (raw !== "*" && !/^\.?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$/.test(raw)) {
      throw new ConfigError(
        `Invalid value for ${source}: ${
          JSON.stringify(raw)
        } is not a host name such as jobs.example.com (no scheme, no port)`,
      );
    }
    hosts.push(raw);
  }
  return hosts;
}

/**
 * Splits the list of addresses exempt from per-address limits: IP literals, `loopback`,
 * or `none` (every address counted).
 *
 * @throws {ConfigError} naming the entry that is not an address
 */
export function parseExemptIps(list: string, source = "--limits-exempt-ips"): string[] {
  const entries = list.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
  if (entries.length === 1 && entries[0] === "none") return [];
  return entries.map((entry) => {
    const address = entry === "loopback" ? entry : ipLiteral(entry);
    if (address === undefined) {
      throw new ConfigError(
        `Invalid value for ${source}: ${
          JSON.stringify(entry)
        } is not an IP address (or loopback, or none)`,
      );
    }
    return address;
  });
}

/**
 * Splits the list of reverse proxies to believe about the client: addresses, ranges
 * (`10.0.0.0/8`), `loopback`, `private`, or `none`.
 *
 * @throws {ConfigError} naming the entry that is none of those
 */
export function parseTrustedProxies(list: string, source = "--trusted-proxies"): string[] {
  const entries = list.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
  if (entries.length === 1 && entries[0] === "none") return [];
  return entries.map((entry) => {
    const normal = proxyEntry(entry);
    if (normal === undefined) {
      throw new ConfigError(
        `Invalid value for ${source}: ${
          JSON.stringify(entry)
        } is not an IP address or range (such as 10.0.0.0/8), loopback, private or none`,
      );
    }
    return normal;
  });
}

/**
 * Reads `jobwire.json` (or the file named by `--config`): `undefined` when the default
 * file does not exist.
 *
 * @throws {ConfigError} when the file is unreadable or not a JSON object
 */
export function readConfigFile(path: string | undefined): ConfigSources["file"] {
  const file = path ?? "jobwire.json";
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (error) {
    if (path === undefined && error instanceof Deno.errors.NotFound) return undefined;
    throw new ConfigError(`Cannot read config file ${file}: ${(error as Error).message}`);
  }
  let values: unknown;
  try {
    values = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`Config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new ConfigError(`Config file ${file} must hold a JSON object`);
  }
  return { path: file, values: values as Record<string, unknown> };
}

/** The options table: flag, environment variable, default, meaning. */
export function optionsHelp(): string {
  const lines: string[] = [];
  for (const [name, spec] of Object.entries(OPTIONS) as [string, OptionSpec][]) {
    const flag = spec.flag ? `--${name}` : `--${name} <value>`;
    const shown = shownDefault(name as OptionName);
    const value = spec.shownDefault === undefined ? shown : `${shown}, ${spec.default} here`;
    lines.push(`  ${flag.padEnd(30)} ${spec.help} [${envName(name)}; default ${value}]`);
  }
  return lines.join("\n");
}

/** An option's default as the README's table and `--help` show it. */
export function shownDefault(name: OptionName): string {
  const spec: OptionSpec = OPTIONS[name];
  if (spec.shownDefault !== undefined) return spec.shownDefault;
  if (spec.default === undefined || spec.default === "") return "none";
  if (spec.default === false) return "off";
  return String(spec.default);
}

/**
 * The limit on open files of this process, which the isolates' process inherits (Deno
 * raises its soft limit to the hard one on start), as a shell started from here reports it;
 * `undefined` where that cannot be asked (no `sh`, or no `--allow-run`) or there is none.
 * (`/proc/self/limits` would need `--allow-all`.)
 */
export function openFileLimit(): number | undefined {
  try {
    const { success, stdout } = new Deno.Command("sh", {
      args: ["-c", "ulimit -n"],
      stdin: "null",
      stderr: "null",
    }).outputSync();
    const text = new TextDecoder().decode(stdout).trim();
    return success && /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The most streams `openFiles` descriptors can hold: each stream is a socket, and the
 * database, listeners and the requests of publishers need the rest (a tenth, and 64).
 */
export function streamsWithin(openFiles: number): number {
  return Math.max(1, Math.floor(openFiles * 0.9) - 64);
}

/**
 * `config` with `maxConnections` no higher than the open-file limit allows: past it, the
 * runtime cannot accept connections at all and stops serving. `capped` says whether
 * it was lowered (or set, from no limit).
 */
export function fitToOpenFiles(
  config: Config,
  openFiles: number | undefined,
): { config: Config; capped: boolean } {
  if (openFiles === undefined) return { config, capped: false };
  const most = streamsWithin(openFiles);
  if (config.maxConnections !== 0 && config.maxConnections <= most) {
    return { config, capped: false };
  }
  return { config: { ...config, maxConnections: most }, capped: true };
}
