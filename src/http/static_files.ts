/**
 * The status page and other files of `static/`, read once at start into memory. Paths
 * resolve from this module's directory, so they work from a checkout and inside a
 * `deno compile` binary built with `--include static`.
 *
 * @module
 */
import { extname, join } from "node:path";
import type { App } from "./app.ts";

/** One file: its bytes, media type and entity tag. */
export interface StaticFile {
  body: Uint8Array;
  type: string;
  /** A strong `ETag` of the bytes, so that a browser revalidating gets 304. */
  etag: string;
}

/**
 * A quoted tag of `bytes`: their length and two 32-bit FNV-1a hashes of them (from two
 * offsets), plenty to tell versions of a few files apart; not a security hash.
 */
function entityTag(bytes: Uint8Array): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    a = Math.imul(a ^ bytes[i]!, 0x01000193);
    b = Math.imul(b ^ bytes[i]!, 0x01000193);
  }
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0");
  return `"${bytes.length.toString(16)}-${hex(a)}${hex(b)}"`;
}

/** URL path (`/app.js`) → file. */
export type StaticFiles = Map<string, StaticFile>;

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** The `static/` directory next to `src/`. */
export const STATIC_DIR = join(import.meta.dirname ?? ".", "..", "..", "static");

/** Reads every file under `dir` (recursively). A missing directory gives no files. */
export function loadStaticFiles(dir: string = STATIC_DIR): StaticFiles {
  const files: StaticFiles = new Map();
  const walk = (path: string, prefix: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(path)];
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      const full = join(path, entry.name);
      const url = `${prefix}/${entry.name}`;
      if (entry.isDirectory) walk(full, url);
      else if (entry.isFile) {
        const body = Deno.readFileSync(full);
        files.set(url, {
          body,
          type: TYPES[extname(entry.name).toLowerCase()] ?? "application/octet-stream",
          etag: entityTag(body),
        });
      }
    }
  };
  walk(dir, "");
  return files;
}

/**
 * The status page loads only its own scripts, styles and connections, and no other site
 * may frame it (a signed-in page in a hidden frame could be clicked through).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Serves the files; `/` is `index.html`. Registered last, after every API route. */
export function registerStaticRoutes(app: App, files: StaticFiles): void {
  app.get("*", (c, next) => {
    const path = new URL(c.req.url).pathname;
    const file = files.get(path === "/" ? "/index.html" : path);
    if (file === undefined) return next();
    // `no-cache` makes a browser ask again each time; with the tag it gets 304 and no body
    // when the file has not changed.
    const wanted = c.req.header("if-none-match");
    if (wanted !== undefined && matches(wanted, file.etag)) {
      return c.body(null, 304, { etag: file.etag, "cache-control": "no-cache" });
    }
    return c.body(file.body.slice(), 200, {
      "content-type": file.type,
      etag: file.etag,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "content-security-policy": CONTENT_SECURITY_POLICY,
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
    });
  });
}

/** Whether an `If-None-Match` header names `etag` (or is `*`); weak tags compare alike. */
function matches(header: string, etag: string): boolean {
  return header.split(",").some((tag) => {
    const trimmed = tag.trim();
    return trimmed === "*" || trimmed.replace(/^W\//, "") === etag;
  });
}
