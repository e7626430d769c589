/**
 * Administration commands: `token` mints a JWT with the server's key, `user` adds,
 * removes and lists the users who may sign in on the status page or `POST /auth/login`.
 * Both work on the data directory directly, also while the server runs.
 *
 * @module
 */
import {
  BOOLEAN_FLAGS,
  type Config,
  ConfigError,
  MAX_TOKEN_TTL_MS,
  OPTION_NAMES,
  parseArgs,
  parseDuration,
  readConfigFile,
  resolveConfig,
} from "../config.ts";
import { loadOrCreateSecret } from "../auth/secret.ts";
import { signToken } from "../auth/keys.ts";
import { SCOPES } from "../auth/principal.ts";
import { hashPassword } from "../auth/passwords.ts";
import { DATABASE_FILE, openSqliteStore } from "../store/sqlite_store.ts";
import { join } from "node:path";
import { refuseFileAsDataDir } from "../store/data_lock.ts";

/** Shortest password `user add` accepts. */
const MIN_PASSWORD = 8;

export const TOKEN_USAGE =
  `Usage: main.ts token --sub SUBJECT --scope "SCOPES" [--jobs a,b] [--ttl 1h] [server options]

Mints a token signed with the server's secret (--jwt-secret, JOBWIRE_JWT_SECRET, or the
secret in the data directory) and prints it.

  --sub <subject>     owner identity (jobs this token creates belong to it)
  --scope <scopes>    space-separated: ${SCOPES.join(", ")}
  --jobs <ids>        comma-separated job ids this token may read whoever owns them
  --ttl <duration>    lifetime, such as 30m, 1h, 7d [default 1h]
  --data-dir, --jwt-secret, --jwt-issuer, --jwt-audience, --config as for the server`;

export const USER_USAGE = `Usage: main.ts user add NAME [--scope "read write"] [server options]
       main.ts user remove NAME
       main.ts user list

Users sign in with POST /auth/login or on the status page. The password of "user add" is
read from JOBWIRE_PASSWORD or standard input (at least ${MIN_PASSWORD} characters); adding an
existing user replaces its password and scopes. Removing a user, or giving it a new password
or scopes, ends the tokens it got by signing in before.

  --scope <scopes>    space-separated: ${SCOPES.join(", ")} [default "read write"]
  --data-dir, --config as for the server`;

/** The flags a command takes: the server's options, `--config` and its own `extra`. */
function takes(extra: string[]): ReadonlySet<string> {
  return new Set([...OPTION_NAMES, "config", ...extra]);
}

function configOf(flags: Map<string, string | true>, extra: string[]): Config {
  const known = new Set(["config", "help", ...extra]);
  const serverFlags = new Map([...flags].filter(([name]) => !extra.includes(name)));
  const configFlag = flags.get("config");
  const file = readConfigFile(typeof configFlag === "string" ? configFlag : undefined);
  const config = resolveConfig(
    { flags: serverFlags, env: Deno.env.toObject(), ...(file === undefined ? {} : { file }) },
    known,
  );
  refuseFileAsDataDir(config.dataDir);
  return config;
}

function existsDatabase(dataDir: string): boolean {
  if (dataDir === ":memory:") return false;
  try {
    Deno.statSync(join(dataDir, DATABASE_FILE));
    return true;
  } catch {
    return false;
  }
}

function scopesOf(text: string): string[] {
  const scopes = text.split(/\s+/).filter((s) => s !== "");
  for (const scope of scopes) {
    if (!(SCOPES as readonly string[]).includes(scope)) {
      throw new ConfigError(`Unknown scope ${JSON.stringify(scope)}: use ${SCOPES.join(", ")}`);
    }
  }
  if (scopes.length === 0) throw new ConfigError("Give at least one scope");
  return scopes;
}

/** `main.ts token …`: prints a token; returns the exit code. */
export async function tokenCommand(args: string[]): Promise<number> {
  const extra = ["sub", "scope", "jobs", "ttl"];
  const parsed = parseArgs(args, new Set([...BOOLEAN_FLAGS, "help"]), takes(extra));
  if (parsed.flags.has("help")) {
    console.log(TOKEN_USAGE);
    return 0;
  }
  if (parsed.positional.length > 0) {
    throw new ConfigError(
      `token takes no arguments, got ${JSON.stringify(parsed.positional[0])} (see --help)`,
    );
  }
  const config = configOf(parsed.flags, extra);
  const sub = parsed.flags.get("sub");
  const scope = parsed.flags.get("scope");
  if (typeof sub !== "string" || sub === "") {
    throw new ConfigError("token needs --sub (see --help)");
  }
  if (typeof scope !== "string") throw new ConfigError("token needs --scope (see --help)");
  // Checked before the secret is read, which may make one: a typo leaves nothing behind.
  const scopes = scopesOf(scope);
  const ttlText = parsed.flags.get("ttl");
  const ttlMs = typeof ttlText === "string" ? parseDuration(ttlText) : 3_600_000;
  if (ttlMs === undefined || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) {
    throw new ConfigError(
      "Invalid value for --ttl: expected a duration such as 1h, 30d or 365d, at most 3650d",
    );
  }
  const jobsText = parsed.flags.get("jobs");
  const jobs = typeof jobsText === "string"
    ? jobsText.split(",").map((s) => s.trim()).filter((s) => s !== "")
    : undefined;
  if (config.dataDir === ":memory:" && config.jwtSecret === undefined) {
    // A secret made for no directory would sign a token no server can check.
    throw new ConfigError(
      "--data-dir :memory: keeps no secret, so a token signed now would match no server: " +
        "give the server's --data-dir, or --jwt-secret as the server has it",
    );
  }
  const { secret, created, path } = loadOrCreateSecret(config.dataDir, config.jwtSecret);
  if (created && path !== null) {
    // A mistyped --data-dir would otherwise give a token no running server accepts.
    console.error(
      `jobwire: made a new secret in ${path}: the token works on a server started with ` +
        `--data-dir ${config.dataDir}`,
    );
  }
  const token = await signToken(
    { secret, issuer: config.jwtIssuer, audience: config.jwtAudience },
    { sub, scope: scopes.join(" "), ...(jobs === undefined ? {} : { jobs }) },
    ttlMs,
  );
  console.log(token);
  return 0;
}

/** Ctrl-C at the password prompt: the command exits 130, as after SIGINT. */
export class CancelledError extends Error {
  constructor() {
    super("Cancelled");
  }
}

/** UTF-8 `bytes` without their last character (a lead byte and its continuation bytes). */
export function withoutLastCharacter(bytes: number[]): number[] {
  let end = bytes.length - 1;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.slice(0, Math.max(0, end));
}

async function readPassword(): Promise<string> {
  const fromEnv = Deno.env.get("JOBWIRE_PASSWORD");
  if (fromEnv !== undefined) return fromEnv;
  if (Deno.stdin.isTerminal()) {
    // Echo goes off before the prompt shows: what is typed after it is never shown.
    Deno.stdin.setRaw(true);
    await Deno.stderr.write(new TextEncoder().encode("Password: "));
    // The terminal sends UTF-8: bytes are gathered and decoded whole ("ä" is two of them),
    // and a backspace takes back the last character, however many bytes it had.
    let bytes: number[] = [];
    const buffer = new Uint8Array(1);
    try {
      for (;;) {
        const n = await Deno.stdin.read(buffer);
        if (n === null || buffer[0] === 13 || buffer[0] === 10) break;
        if (buffer[0] === 3) throw new CancelledError();
        if (buffer[0] === 127 || buffer[0] === 8) bytes = withoutLastCharacter(bytes);
        else bytes.push(buffer[0]!);
      }
    } finally {
      Deno.stdin.setRaw(false);
      await Deno.stderr.write(new TextEncoder().encode("\n"));
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }
  const text = await new Response(Deno.stdin.readable).text();
  return text.replace(/\r?\n$/, "");
}

/** `main.ts user …`: returns the exit code. */
export async function userCommand(args: string[]): Promise<number> {
  const parsed = parseArgs(args, new Set([...BOOLEAN_FLAGS, "help"]), takes(["scope"]));
  const [action, name] = parsed.positional;
  if (parsed.flags.has("help") || action === undefined) {
    console.log(USER_USAGE);
    return action === undefined && !parsed.flags.has("help") ? 2 : 0;
  }
  const stray = parsed.positional[action === "list" ? 1 : 2];
  if (stray !== undefined) {
    throw new ConfigError(`user ${action} got an extra argument ${JSON.stringify(stray)}`);
  }
  // What was asked is checked before the database is opened, which makes one: a usage error
  // leaves nothing behind.
  if (action !== "add" && action !== "remove" && action !== "list") {
    throw new ConfigError(
      `Unknown user action ${JSON.stringify(action)}: use add, remove or list`,
    );
  }
  if (action === "remove" && name === undefined) throw new ConfigError("user remove needs a NAME");
  let scopes: string[] = [];
  if (action === "add") {
    if (name === undefined || !/^[A-Za-z0-9._@-]{1,128}$/.test(name)) {
      throw new ConfigError("user add needs a NAME of letters, digits and . _ @ -");
    }
    const scopeFlag = parsed.flags.get("scope");
    scopes = scopesOf(typeof scopeFlag === "string" ? scopeFlag : "read write");
  }
  const config = configOf(parsed.flags, ["scope"]);
  if (config.dataDir === ":memory:") {
    // Users live in the data directory's database: one in memory would be gone at once.
    throw new ConfigError(
      "--data-dir :memory: keeps no users: give the --data-dir of the server they are for",
    );
  }
  const fresh = !existsDatabase(config.dataDir);
  if (action !== "add" && fresh) {
    // Listing or removing makes no database in a directory no server has used (a typo).
    console.error(`jobwire: no database in ${config.dataDir} (no server has used it yet)`);
    return action === "list" ? 0 : 1;
  }
  const store = openSqliteStore(config.dataDir, {
    maxEventsPerJob: config.maxEventsPerJob,
    checkpoints: "commits",
  });
  try {
    const users = store.authStore();
    switch (action) {
      case "add": {
        if (name === undefined) throw new ConfigError("user add needs a NAME");
        const password = await readPassword();
        if (password.length < MIN_PASSWORD) {
          throw new ConfigError(`The password must have at least ${MIN_PASSWORD} characters`);
        }
        const { salt, hash } = await hashPassword(password);
        const existed = users.getUser(name) !== undefined;
        const now = new Date().toISOString();
        users.putUser({ username: name, salt, hash, scopes, created_at: now, changed_at: now });
        console.log(`${existed ? "Updated" : "Added"} user ${name} (${scopes.join(" ")})`);
        if (fresh) {
          // A directory no server has used: a typo would leave the user where no server looks.
          console.error(
            `jobwire: made a new database in ${config.dataDir}: the user signs in on a server ` +
              `started with --data-dir ${config.dataDir}`,
          );
        }
        return 0;
      }
      case "remove": {
        if (!users.removeUser(name!)) {
          console.error(`No user ${name}`);
          return 1;
        }
        console.log(`Removed user ${name}`);
        return 0;
      }
      case "list": {
        const all = users.listUsers();
        if (all.length === 0) console.log("No users");
        for (const user of all) {
          console.log(`${user.username}\t${user.scopes.join(" ")}\t${user.created_at}`);
        }
        return 0;
      }
    }
  } finally {
    store.close();
  }
}
