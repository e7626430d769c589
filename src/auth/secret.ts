/**
 * The server's own HS256 secret: given by `--jwt-secret`, or made once and kept in the
 * data directory (mode 0600) so tokens survive restarts and every isolate shares it.
 *
 * @module
 */
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { StartupRefusal } from "../startup_errors.ts";

/** File of the generated secret inside the data directory. */
export const SECRET_FILE = "jwt-secret";

const utf8 = new TextEncoder();

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replaceAll(
    "=",
    "",
  );
}

/**
 * The signing secret and whether this call created it. With `:memory:` the secret lives
 * only as long as the process.
 */
export function loadOrCreateSecret(
  dataDir: string,
  configured: string | undefined,
): { secret: Uint8Array; created: boolean; path: string | null } {
  if (configured !== undefined) {
    return { secret: utf8.encode(configured), created: false, path: null };
  }
  if (dataDir === ":memory:") {
    return { secret: utf8.encode(randomSecret()), created: true, path: null };
  }
  // Private, as the store makes it: this may be the first to make it (`main.ts token`).
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, SECRET_FILE);
  const made = createSecretFile(path);
  if (made !== undefined) return { secret: utf8.encode(made), created: true, path };
  let text = Deno.readTextFileSync(path).trim();
  if (text === "") {
    // Left empty by a version that wrote it in place and ran out of space: it signed
    // nothing, so a new one replaces it.
    try {
      Deno.removeSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error; // another isolate's doing
    }
    const again = createSecretFile(path);
    if (again !== undefined) return { secret: utf8.encode(again), created: true, path };
    text = Deno.readTextFileSync(path).trim();
  }
  if (text.length < 16) {
    throw new StartupRefusal(`The secret in ${path} is too short: delete it to make a new one`);
  }
  return { secret: utf8.encode(text), created: false, path };
}

/**
 * Makes the secret file whole or not at all: written under a name of its own, then linked
 * to `path`, which fails if it exists (of several isolates starting together exactly one
 * makes it; the others read it). A disk that fills meanwhile leaves no half-written file.
 *
 * @returns the new secret, or `undefined` when the file was there already
 */
function createSecretFile(path: string): string | undefined {
  const secret = randomSecret();
  const draft = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    Deno.writeTextFileSync(draft, secret + "\n", { createNew: true, mode: 0o600 });
    Deno.chmodSync(draft, 0o600);
    Deno.linkSync(draft, path);
    return secret;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return undefined;
    throw error;
  } finally {
    try {
      Deno.removeSync(draft);
    } catch {
      // Never made (the write failed before creating it).
    }
  }
}
