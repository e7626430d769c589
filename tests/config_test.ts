import assert from "node:assert/strict";
import {
  BOOLEAN_FLAGS,
  ConfigError,
  type ConfigSources,
  envName,
  fitToOpenFiles,
  MAX_CONNECTIONS_DEFAULT,
  openFileLimit,
  OPTIONS,
  parseArgs,
  parseDuration,
  parseExemptIps,
  readConfigFile,
  resolveConfig,
  streamsWithin,
} from "../src/config.ts";
import { join } from "node:path";

const FILE = "/etc/jobwire/jobwire.json";

function sources(
  flags: Record<string, string | true> = {},
  env: Record<string, string> = {},
  file?: Record<string, unknown>,
): ConfigSources {
  const out: ConfigSources = { flags: new Map(Object.entries(flags)), env };
  if (file !== undefined) out.file = { path: FILE, values: file };
  return out;
}

/** The ConfigError thrown by `fn`; fails the test when it throws nothing or something else. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

// ---------------------------------------------------------------------------------------
// parseDuration

Deno.test("parseDuration reads every unit into milliseconds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("10m"), 600_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("2d"), 172_800_000);
});

Deno.test("parseDuration reads a plain number as seconds", () => {
  assert.equal(parseDuration("45"), 45_000);
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration(45), 45_000);
  assert.equal(parseDuration(0.5), 500);
});

Deno.test("parseDuration accepts fractions and surrounding spaces", () => {
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("0.5h"), 1_800_000);
  assert.equal(parseDuration(" 10 m "), 600_000);
  assert.equal(parseDuration("2.5"), 2500);
});

Deno.test("parseDuration returns undefined for anything else", () => {
  for (const input of ["", "abc", "-1s", "1w", "1 h 2", "s", "1.s", "10M", "1e3", "Infinity"]) {
    assert.equal(parseDuration(input), undefined, JSON.stringify(input));
  }
  for (const input of [-1, Number.NaN, Infinity]) {
    assert.equal(parseDuration(input), undefined, String(input));
  }
});

// ---------------------------------------------------------------------------------------
// parseArgs

Deno.test("parseArgs reads --flag value and --flag=value", () => {
  const parsed = parseArgs(["--port", "9000", "--host=0.0.0.0"], new Set());
  assert.deepEqual([...parsed.flags], [["port", "9000"], ["host", "0.0.0.0"]]);
  assert.deepEqual(parsed.positional, []);
  assert.deepEqual(parsed.rest, []);
});

Deno.test("parseArgs keeps an empty value and an equals sign inside --flag=value", () => {
  const parsed = parseArgs(["--host=", "--data-dir=a=b"], new Set());
  assert.equal(parsed.flags.get("host"), "");
  assert.equal(parsed.flags.get("data-dir"), "a=b");
});

Deno.test("parseArgs reads boolean flags without taking the next argument", () => {
  const parsed = parseArgs(["--no-auth", "serve", "--port", "1"], new Set(["no-auth"]));
  assert.equal(parsed.flags.get("no-auth"), true);
  assert.deepEqual(parsed.positional, ["serve"]);
  assert.equal(parsed.flags.get("port"), "1");
});

Deno.test("parseArgs gives a boolean flag an explicit value with =", () => {
  const parsed = parseArgs(["--no-auth=false"], new Set(["no-auth"]));
  assert.equal(parsed.flags.get("no-auth"), "false");
});

Deno.test("parseArgs collects positionals and a lone dash", () => {
  const parsed = parseArgs(["watch", "job-1", "-", "-v"], new Set());
  assert.deepEqual(parsed.positional, ["watch", "job-1", "-", "-v"]);
  assert.equal(parsed.flags.size, 0);
});

Deno.test("parseArgs names an unknown last flag as unknown when it knows the flags", () => {
  assert.throws(
    () => parseArgs(["--port", "1", "--prot"], new Set(), new Set(["port"])),
    /Unknown option --prot: did you mean --port\? \(see --help\)/,
  );
  assert.throws(
    () => parseArgs(["--prot", "--port", "1"], new Set(), new Set(["port"])),
    /Unknown option --prot/,
  );
  assert.throws(() => parseArgs(["--port"], new Set(), new Set(["port"])), /--port needs a value/);
  assert.throws(() => parseArgs(["--prot"], new Set()), /--prot needs a value/);
});

Deno.test("parseArgs takes a value that starts with one dash", () => {
  const parsed = parseArgs(["--port", "-5"], new Set());
  assert.equal(parsed.flags.get("port"), "-5");
});

Deno.test("parseArgs leaves everything after a lone -- untouched in rest", () => {
  const parsed = parseArgs(
    ["run", "--port", "1", "--", "python", "--epochs", "3", "--"],
    new Set(),
  );
  assert.deepEqual(parsed.positional, ["run"]);
  assert.equal(parsed.flags.get("port"), "1");
  assert.deepEqual(parsed.rest, ["python", "--epochs", "3", "--"]);
  assert.equal(parsed.flags.has("epochs"), false);
});

Deno.test("parseArgs throws ConfigError when a flag misses its value", () => {
  const atEnd = configError(() => parseArgs(["--port"], new Set()));
  assert.match(atEnd.message, /--port/);
  const beforeFlag = configError(() => parseArgs(["--port", "--host", "x"], new Set()));
  assert.match(beforeFlag.message, /--port/);
});

Deno.test("parseArgs lets the last of repeated flags win", () => {
  const parsed = parseArgs(["--port", "1", "--port=2"], new Set());
  assert.equal(parsed.flags.get("port"), "2");
});

// ---------------------------------------------------------------------------------------
// resolveConfig: defaults and precedence

Deno.test("resolveConfig gives every documented default", () => {
  const config = resolveConfig(sources());
  const expected = {
    host: "127.0.0.1",
    port: 8080,
    dataDir: "./data",
    retentionMs: 3_600_000,
    replayWindow: 100,
    heartbeatMs: 30_000,
    noAuth: false,
    stallAfterMs: 600_000,
    maxEventsPerJob: 10_000,
    maxEventBytes: 65_536,
    maxBodyBytes: 1_048_576,
    maxBatch: 1000,
    replayCacheBytes: 33_554_432,
    sendBuffer: 1000,
    tombstoneTtlMs: 86_400_000,
    idempotencyTtlMs: 86_400_000,
    logLevel: "info",
  };
  const actual = Object.fromEntries(
    Object.keys(expected).map((key) => [key, config[key as keyof typeof config]]),
  );
  assert.deepEqual(actual, expected);
});

Deno.test("resolveConfig returns a frozen config", () => {
  const config = resolveConfig(sources());
  assert.ok(Object.isFrozen(config));
});

Deno.test("resolveConfig prefers a flag over env, file and default", () => {
  const config = resolveConfig(
    sources({ port: "1111" }, { JOBWIRE_PORT: "2222" }, { port: 3333 }),
  );
  assert.equal(config.port, 1111);
});

Deno.test("resolveConfig prefers env over the file and the default", () => {
  const config = resolveConfig(sources({}, { JOBWIRE_PORT: "2222" }, { port: 3333 }));
  assert.equal(config.port, 2222);
});

Deno.test("resolveConfig prefers the file over the default", () => {
  const config = resolveConfig(sources({}, {}, { port: 3333 }));
  assert.equal(config.port, 3333);
});

Deno.test("resolveConfig resolves each option from its own source", () => {
  const config = resolveConfig(
    sources(
      { host: "0.0.0.0" },
      { JOBWIRE_RETENTION: "2h", JOBWIRE_MAX_EVENTS_PER_JOB: "50" },
      { data_dir: "/var/lib/jobwire", replay_window: 7, log_level: "debug" },
    ),
  );
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.retentionMs, 7_200_000);
  assert.equal(config.maxEventsPerJob, 50);
  assert.equal(config.dataDir, "/var/lib/jobwire");
  assert.equal(config.replayWindow, 7);
  assert.equal(config.logLevel, "debug");
  assert.equal(config.port, 8080);
});

Deno.test("resolveConfig ignores an empty environment variable", () => {
  const config = resolveConfig(sources({}, { JOBWIRE_PORT: "" }, { port: 3333 }));
  assert.equal(config.port, 3333);
});

Deno.test("resolveConfig ignores environment variables of other programs", () => {
  const config = resolveConfig(sources({}, { PORT: "1", JOBWIRE: "x", HOME: "/root" }));
  assert.equal(config.port, 8080);
});

Deno.test("resolveConfig reads durations from flags, env and file numbers", () => {
  const config = resolveConfig(
    sources(
      { heartbeat: "500ms" },
      { JOBWIRE_STALL_AFTER: "90" },
      { tombstone_ttl: 60, idempotency_ttl: "1d" },
    ),
  );
  assert.equal(config.heartbeatMs, 500);
  assert.equal(config.stallAfterMs, 90_000);
  assert.equal(config.tombstoneTtlMs, 60_000);
  assert.equal(config.idempotencyTtlMs, 86_400_000);
});

Deno.test("resolveConfig reads the no-auth boolean from a flag, env or file", () => {
  assert.equal(resolveConfig(sources({ "no-auth": true })).noAuth, true);
  assert.equal(resolveConfig(sources({}, { JOBWIRE_NO_AUTH: "1" })).noAuth, true);
  assert.equal(resolveConfig(sources({}, { JOBWIRE_NO_AUTH: "false" })).noAuth, false);
  assert.equal(resolveConfig(sources({}, {}, { no_auth: true })).noAuth, true);
  assert.equal(
    resolveConfig(sources({ "no-auth": "off" }, { JOBWIRE_NO_AUTH: "yes" })).noAuth,
    false,
  );
});

Deno.test("resolveConfig accepts the port bounds 0 and 65535", () => {
  assert.equal(resolveConfig(sources({ port: "0" })).port, 0);
  assert.equal(resolveConfig(sources({ port: "65535" })).port, 65535);
});

Deno.test("resolveConfig accepts flags the caller declares as extra", () => {
  const config = resolveConfig(sources({ config: "x.json", port: "1" }), new Set(["config"]));
  assert.equal(config.port, 1);
});

// ---------------------------------------------------------------------------------------
// resolveConfig: errors name their source

Deno.test("resolveConfig names the flag when a flag value is bad", () => {
  const error = configError(() => resolveConfig(sources({ port: "http" }, { JOBWIRE_PORT: "1" })));
  assert.match(error.message, /--port/);
  assert.match(error.message, /"http"/);
  assert.doesNotMatch(error.message, /JOBWIRE_PORT/);
});

Deno.test("resolveConfig names the environment variable when an env value is bad", () => {
  const error = configError(() => resolveConfig(sources({}, { JOBWIRE_PORT: "70000" })));
  assert.match(error.message, /JOBWIRE_PORT/);
  assert.match(error.message, /70000/);
  assert.doesNotMatch(error.message, /--port/);
});

Deno.test("resolveConfig names the file key and path when a file value is bad", () => {
  const error = configError(() => resolveConfig(sources({}, {}, { max_events_per_job: 0 })));
  assert.match(error.message, /max_events_per_job/);
  assert.ok(error.message.includes(FILE));
  assert.doesNotMatch(error.message, /JOBWIRE_|--max/);
});

Deno.test("resolveConfig names where a bad list entry came from", () => {
  const lists = {
    "allowed-origins": "not a url",
    "allowed-hosts": "http://x",
    "limits-exempt-ips": "300.1.1.1",
    "trusted-proxies": "nowhere",
  };
  for (const [name, bad] of Object.entries(lists)) {
    const env = `JOBWIRE_${name.toUpperCase().replaceAll("-", "_")}`;
    const key = name.replaceAll("-", "_");
    const fromFlag = configError(() => resolveConfig(sources({ [name]: bad })));
    assert.match(fromFlag.message, new RegExp(`^Invalid value for --${name}: `));
    const fromEnv = configError(() => resolveConfig(sources({}, { [env]: bad })));
    assert.match(fromEnv.message, new RegExp(`^Invalid value for ${env}: `));
    const fromFile = configError(() => resolveConfig(sources({}, {}, { [key]: bad })));
    assert.ok(
      fromFile.message.startsWith(`Invalid value for ${key} in ${FILE}: `),
      fromFile.message,
    );
  }
});

Deno.test("resolveConfig refuses out-of-range and non-integer numbers", () => {
  for (const port of ["-1", "65536", "80.5", "", " ", "8080x", "port"]) {
    const error = configError(() => resolveConfig(sources({ port })));
    assert.match(error.message, /--port/, JSON.stringify(port));
  }
  configError(() => resolveConfig(sources({}, {}, { port: 1.5 })));
  configError(() => resolveConfig(sources({}, {}, { port: true })));
});

Deno.test("resolveConfig refuses a bad duration naming its source", () => {
  assert.match(
    configError(() => resolveConfig(sources({ retention: "forever" }))).message,
    /--retention/,
  );
  assert.match(
    configError(() => resolveConfig(sources({}, { JOBWIRE_HEARTBEAT: "-5s" }))).message,
    /JOBWIRE_HEARTBEAT/,
  );
  assert.match(
    configError(() => resolveConfig(sources({}, {}, { stall_after: -1 }))).message,
    /stall_after/,
  );
});

Deno.test("resolveConfig takes warning for warn, and log levels in any letter case", () => {
  assert.equal(resolveConfig(sources({ "log-level": "warning" })).logLevel, "warn");
  assert.equal(resolveConfig(sources({ "log-level": "Warn" })).logLevel, "warn");
  assert.equal(resolveConfig(sources({}, { JOBWIRE_LOG_LEVEL: "ERROR" })).logLevel, "error");
});

Deno.test("resolveConfig refuses a bad boolean and an unknown log level", () => {
  assert.match(
    configError(() => resolveConfig(sources({}, { JOBWIRE_NO_AUTH: "maybe" }))).message,
    /JOBWIRE_NO_AUTH/,
  );
  const level = configError(() => resolveConfig(sources({ "log-level": "verbose" }))).message;
  assert.match(level, /--log-level/);
  assert.match(level, /warn \(or warning\)/, "names every spelling it takes");
});

Deno.test("resolveConfig takes only JSON numbers and booleans for a file's number and boolean keys", () => {
  for (
    const [values, key] of [
      [{ port: "8338" }, "port"],
      [{ replay_window: "50" }, "replay_window"],
      [{ no_auth: "yes" }, "no_auth"],
      [{ no_auth: "1" }, "no_auth"],
      [{ no_auth: 1 }, "no_auth"],
      [{ "no-auth": "true" }, "no-auth"],
    ] as const
  ) {
    const error = configError(() => resolveConfig(sources({}, {}, values)));
    assert.ok(error.message.includes(`${key} in ${FILE}`), error.message);
    assert.match(error.message, /expected a JSON (number|boolean)/);
  }
  // Durations and text keep their spellings; the environment converts text as before.
  const config = resolveConfig(sources({}, {}, { stall_after: "90s", port: 9, no_auth: false }));
  assert.equal(config.stallAfterMs, 90_000);
  assert.equal(config.port, 9);
  assert.equal(config.noAuth, false);
  assert.equal(resolveConfig(sources({}, { JOBWIRE_PORT: "9" }, { port: "x" })).port, 9);
});

Deno.test("resolveConfig names what a number key expects when a file's number overflows to Infinity", () => {
  // JSON.parse reads 1e400 as Infinity, which JSON.stringify would show as null.
  for (const [raw, shown] of [[JSON.parse("1e400"), "Infinity"], [-Infinity, "-Infinity"]]) {
    const error = configError(() => resolveConfig(sources({}, {}, { port: raw })));
    assert.equal(
      error.message,
      `Invalid value for port in ${FILE}: expected an integer from 0 to 65535, got ${shown}`,
    );
  }
  assert.match(
    configError(() => resolveConfig(sources({ port: "" }))).message,
    /--port: expected an integer from 0 to 65535, got ""/,
  );
  // Durations too.
  assert.match(
    configError(() => resolveConfig(sources({}, {}, { stall_after: JSON.parse("1e400") })))
      .message,
    /stall_after in .*: expected a duration such as 30s, 10m, 1h or a number of seconds, got Infinity/,
  );
});

Deno.test("resolveConfig does not check a file value that a flag overrides", () => {
  const config = resolveConfig(sources({ port: "1" }, {}, { port: "bad" }));
  assert.equal(config.port, 1);
});

Deno.test("resolveConfig refuses an unknown flag", () => {
  const error = configError(() => resolveConfig(sources({ prot: "1" })));
  assert.match(error.message, /--prot/);
});

Deno.test("resolveConfig refuses an unknown file key naming the file", () => {
  const error = configError(() => resolveConfig(sources({}, {}, { prot: 1 })));
  assert.match(error.message, /prot/);
  assert.ok(error.message.includes(FILE));
});

Deno.test("resolveConfig never ignores a known option spelled with dashes in the file", () => {
  // File keys are `<name>` with `-` turned into `_`; a dashed key must either take effect
  // or be refused, never be accepted and silently dropped.
  let config;
  try {
    config = resolveConfig(sources({}, {}, { "data-dir": "/srv/jobwire" }));
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /data-dir/);
    return;
  }
  assert.equal(config.dataDir, "/srv/jobwire");
});

// ---------------------------------------------------------------------------------------
// Helpers around the options

Deno.test("envName turns an option into its JOBWIRE_ variable", () => {
  assert.equal(envName("port"), "JOBWIRE_PORT");
  assert.equal(envName("max-events-per-job"), "JOBWIRE_MAX_EVENTS_PER_JOB");
});

Deno.test("BOOLEAN_FLAGS holds exactly the options that take no value", () => {
  assert.deepEqual([...BOOLEAN_FLAGS], ["no-auth"]);
  assert.ok("no-auth" in OPTIONS);
});

Deno.test("readConfigFile returns undefined when the default file does not exist", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-config-" });
  const cwd = Deno.cwd();
  try {
    Deno.chdir(dir);
    assert.equal(readConfigFile(undefined), undefined);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readConfigFile reads a JSON object and refuses anything else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-config-" });
  try {
    const good = join(dir, "good.json");
    await Deno.writeTextFile(good, '{"port": 9000}');
    assert.deepEqual(readConfigFile(good), { path: good, values: { port: 9000 } });
    const array = join(dir, "array.json");
    await Deno.writeTextFile(array, "[1]");
    assert.match(configError(() => readConfigFile(array)).message, /array\.json/);
    const broken = join(dir, "broken.json");
    await Deno.writeTextFile(broken, "{port:");
    assert.match(configError(() => readConfigFile(broken)).message, /broken\.json/);
    const missing = join(dir, "missing.json");
    assert.match(configError(() => readConfigFile(missing)).message, /missing\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------
// limits-exempt-ips

Deno.test("limits-exempt-ips defaults to loopback, reads a list of addresses, and none empties it", () => {
  assert.deepEqual(resolveConfig(sources()).limitsExemptIps, ["loopback"]);
  assert.deepEqual(
    resolveConfig(sources({ "limits-exempt-ips": "10.0.0.7, loopback,0:0:0:0:0:0:0:1" }))
      .limitsExemptIps,
    ["10.0.0.7", "loopback", "::1"],
  );
  assert.deepEqual(
    resolveConfig(sources({}, { JOBWIRE_LIMITS_EXEMPT_IPS: "none" })).limitsExemptIps,
    [],
  );
  assert.deepEqual(parseExemptIps("FE80::1"), ["fe80::1"]);
});

Deno.test("limits-exempt-ips refuses an entry that is not an address, naming the option", () => {
  for (const bad of ["localhost", "300.1.1.1", "1.2.3", "::g", "none,10.0.0.1"]) {
    const error = configError(() => resolveConfig(sources({ "limits-exempt-ips": bad })));
    assert.match(error.message, /--limits-exempt-ips/, bad);
  }
});

Deno.test("resolveConfig refuses durations too short to make sense, and zero lifetimes", () => {
  assert.match(
    configError(() => resolveConfig(sources({ heartbeat: "1ms" }))).message,
    /--heartbeat: expected a duration of at least 100ms \(or 0\)/,
  );
  assert.equal(resolveConfig(sources({ heartbeat: "0" })).heartbeatMs, 0, "0 turns heartbeats off");
  assert.equal(resolveConfig(sources({ heartbeat: "100ms" })).heartbeatMs, 100);
  assert.match(
    configError(() => resolveConfig(sources({ "token-ttl": "4000d" }))).message,
    /--token-ttl: expected a duration of at most 3650d/,
  );
  for (const option of ["token-ttl", "ticket-ttl"]) {
    assert.match(
      configError(() => resolveConfig(sources({ [option]: "0" }))).message,
      new RegExp(`--${option}: expected a duration of at least 1s`),
    );
  }
});

Deno.test("resolveConfig refuses an empty no_auth in the file instead of taking it for true", () => {
  assert.match(
    configError(() => resolveConfig(sources({}, {}, { no_auth: "" }))).message,
    /no_auth in .*expected a JSON boolean \(true or false\)/,
  );
});

Deno.test("resolveConfig refuses settings that contradict each other", () => {
  const both = configError(() =>
    resolveConfig(
      sources({ "jwt-public-key": "/k.pem", "jwks-url": "https://idp.example/jwks.json" }),
    )
  );
  assert.match(both.message, /--jwt-public-key or --jwks-url, not both/);
  const open = configError(() =>
    resolveConfig(
      sources({ "no-auth": true }, { JOBWIRE_JWT_SECRET: "0123456789abcdef0123456789abcdef" }),
    )
  );
  assert.match(
    open.message,
    /--no-auth turns authentication off, so JOBWIRE_JWT_SECRET would be ignored/,
  );
  // Each setting is named where it was given.
  const mixed = configError(() =>
    resolveConfig(
      sources({ "jwks-url": "https://idp.example/jwks.json" }, {
        JOBWIRE_JWT_PUBLIC_KEY: "/k.pem",
      }),
    )
  );
  assert.match(mixed.message, /Give JOBWIRE_JWT_PUBLIC_KEY or --jwks-url, not both/);
  const filed = configError(() =>
    resolveConfig(sources({}, { JOBWIRE_NO_AUTH: "true" }, { jwks_url: "https://idp.example/" }))
  );
  assert.match(
    filed.message,
    /JOBWIRE_NO_AUTH turns authentication off, so jwks_url in \/etc\/jobwire\/jobwire\.json would be ignored/,
  );
  const twice = configError(() =>
    resolveConfig(sources({}, {}, { "data-dir": "/a", data_dir: "/b" }))
  );
  assert.match(twice.message, /Both "data-dir" and "data_dir" in \/etc\/jobwire\/jobwire\.json/);
});

Deno.test("open streams are kept within the open-file limit", () => {
  const config = resolveConfig({ flags: new Map(), env: {} });
  assert.equal(config.maxConnections, MAX_CONNECTIONS_DEFAULT);
  // 1,024 descriptors (a common default): 857 streams, the rest for the database and requests.
  assert.equal(streamsWithin(1024), 857);
  const lowered = fitToOpenFiles(config, 1024);
  assert.deepEqual([lowered.capped, lowered.config.maxConnections], [true, 857]);
  // No limit asked for still gets one; a lower one is kept; an unknown limit changes nothing.
  const unlimited = resolveConfig({ flags: new Map([["max-connections", "0"]]), env: {} });
  assert.equal(fitToOpenFiles(unlimited, 20_000).config.maxConnections, 17_936);
  const low = resolveConfig({ flags: new Map([["max-connections", "500"]]), env: {} });
  assert.deepEqual(fitToOpenFiles(low, 1024), { config: low, capped: false });
  assert.deepEqual(fitToOpenFiles(config, undefined), { config, capped: false });
  const limit = openFileLimit();
  if (Deno.build.os === "linux") assert.ok(limit === undefined || limit > 0, String(limit));
});

Deno.test("--host takes a name or an address, and refuses a URL or a port with a message naming it", () => {
  for (
    const host of [
      "0.0.0.0",
      "127.0.0.1",
      "::",
      "::1",
      "[::1]",
      "[::]",
      "fe80::1",
      "localhost",
      "jobs.local",
    ]
  ) {
    assert.equal(resolveConfig(sources({ host })).host, host);
  }
  for (const host of ["0.0.0.0:8080", "http://0.0.0.0", "-x!", "", "a b", "[::1]:80", "[::1"]) {
    const error = configError(() => resolveConfig(sources({ host })));
    assert.match(error.message, /Invalid value for --host: .*without a scheme or port/, host);
  }
  const fromEnv = configError(() => resolveConfig(sources({}, { JOBWIRE_HOST: "-x!" })));
  assert.match(fromEnv.message, /JOBWIRE_HOST/);
});
