/**
 * Real headless Chromium for the status page tests, driven by npm `playwright-core`:
 * Debian's `/usr/bin/chromium` (never a downloaded browser), a fresh profile per test,
 * every console error and uncaught page error recorded, screenshots kept in the test's
 * temp directory.
 *
 * @module
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { join } from "node:path";

/** The browser the tests drive (Debian's package `chromium`). */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags Chromium runs with: headless, no sandbox (containers), nothing phoning home. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Whether Chromium is installed; the browser tests are skipped (and say so) when not. */
export const HAVE_CHROMIUM = exists(CHROMIUM);

let warned = false;

/**
 * Registers a browser test: skipped with a message when Chromium is absent. Playwright
 * keeps pipes and timers of its own, so Deno's op and resource sanitizers are off; each
 * test closes its browser and servers in `finally`.
 */
export function browserTest(name: string, fn: () => Promise<void>): void {
  if (!HAVE_CHROMIUM && !warned) {
    warned = true;
    console.warn(
      `Skipping the status page browser tests: ${CHROMIUM} is absent ` +
        "(install it with: apt-get install -y chromium).",
    );
  }
  Deno.test({
    name,
    ignore: !HAVE_CHROMIUM,
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });
}

/** A browser with one page, and what it logged. */
export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** The test's temp directory; screenshots go here and stay after the test. */
  dir: string;
  /** Console messages of type `error`, and uncaught exceptions, in order. */
  errors: string[];
  /** Saves a full-page PNG as `<dir>/<name>.png`; returns its path. */
  screenshot(name: string): Promise<string>;
  /** Closes the browser and removes its profile (screenshots stay). */
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile. */
export async function openBrowser(
  options: { viewport?: { width: number; height: number }; prefix?: string } = {},
): Promise<BrowserSession> {
  const dir = await Deno.makeTempDir({ prefix: options.prefix ?? "jobwire-page-" });
  const profile = join(dir, "profile");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: options.viewport ?? { width: 1280, height: 860 },
    acceptDownloads: true,
    timeout: 30_000,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  const shots: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  return {
    context,
    page,
    dir,
    errors,
    async screenshot(name: string) {
      const path = join(dir, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      shots.push(`${name}.png`);
      return path;
    },
    async close() {
      await context.close().catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      if (shots.length > 0) console.log(`screenshots in ${dir}: ${shots.join(", ")}`);
      else await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** What a check given to {@link until} returns to say "not yet", and why (for the failure). */
export class NotYet {
  constructor(readonly why: string) {}
}

/**
 * Polls `check` until it returns a value other than `undefined`, `false` or a
 * {@link NotYet}, or fails with `what` and the last value seen after `timeoutMs`.
 */
export async function until<T>(
  what: string,
  check: () => Promise<T | NotYet | undefined | false> | T | NotYet | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value instanceof NotYet) last = value.why;
      else if (value !== undefined && value !== false) return value as T;
      else last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${what} (last: ${String(last)})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
