/**
 * The server's own HS256 secret: given by `--jwt-secret`, or made once and kept in the
 * data directory (mode 0600) so tokens survive restarts and every isolate shares it.
 *
 * @module
 */
import { join } from "node:path";
import { mkdirSync } from "node:fs";

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
  try {
    // createNew: of several isolates starting together exactly one writes; the others read.
    Deno.writeTextFileSync(path, randomSecret() + "\n", { createNew: true, mode: 0o600 });
    Deno.chmodSync(path, 0o600);
    return { secret: utf8.encode(Deno.readTextFileSync(path).trim()), created: true, path };
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  // Another isolate may have created the file a moment ago and still be writing it.
  const deadline = Date.now() + 2000;
  let text = Deno.readTextFileSync(path).trim();
  while (text.length < 16 && Date.now() < deadline) {
    const wait = new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(wait, 0, 0, 20);
    text = Deno.readTextFileSync(path).trim();
  }
  if (text.length < 16) {
    throw new RangeError(`The secret in ${path} is too short: delete it to make a new one`);
  }
  return { secret: utf8.encode(text), created: false, path };
}
