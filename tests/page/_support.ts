/**
 * Shared steps of the status page tests: reading the page's live state the way a user
 * sees it (rows, badges, progress bars, the connection indicator, the log tail).
 *
 * @module
 */
import type { Download, Page } from "playwright-core";
import { NotYet, until } from "../_helpers/browser.ts";

/** The row of job `id` in the list. */
export function row(page: Page, id: string) {
  return page.locator(`li.job[data-job-id="${id}"]`);
}

/** Waits until the list row of `id` shows progress `value` (its `aria-valuenow`). */
export async function rowProgress(page: Page, id: string, value: number): Promise<void> {
  const bar = row(page, id).getByRole("progressbar");
  await until(
    `job ${id}'s bar at ${value}`,
    async () => (await bar.getAttribute("aria-valuenow")) === String(value) || undefined,
  );
}

/** Waits until the connection indicator is connected (over `transport`, if given). */
export async function connected(page: Page, transport?: string, timeoutMs = 15_000) {
  const indicator = page.locator("#connection");
  return await until(
    `the indicator to be connected${transport ? ` over ${transport}` : ""}`,
    async () => {
      const state = await indicator.getAttribute("data-state");
      const via = await indicator.getAttribute("data-transport");
      const text = (await indicator.locator(".connection-text").textContent() ?? "").trim();
      const ok = state === "connected" && (transport === undefined || via === transport);
      return ok ? text : new NotYet(`${state} over ${via}: ${text}`);
    },
    timeoutMs,
  );
}

/** Waits until the job view's log tail holds `count` lines. */
export async function logCount(page: Page, count: number, timeoutMs = 10_000): Promise<void> {
  const counter = page.locator("#log-count");
  await until(
    `${count} log lines`,
    async () => (await counter.getAttribute("data-count")) === String(count) || undefined,
    timeoutMs,
  );
}

/** Clicks "Download log" and returns the file's text. */
export async function downloadLog(page: Page): Promise<string> {
  const [download]: [Download, void] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download log" }).click(),
  ]);
  const path = await download.path();
  return await Deno.readTextFile(path);
}

/**
 * Controls and links of the page with no accessible name: no `aria-label`,
 * `aria-labelledby`, `<label>`, or text.
 */
export function unlabeledControls(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const missing: string[] = [];
    const selector = "button, input, select, textarea, a[href], [role=progressbar], [role=log]";
    for (const el of document.querySelectorAll<HTMLElement>(selector)) {
      const labelled = el.getAttribute("aria-label")?.trim() ||
        (el.getAttribute("aria-labelledby") ?? "").split(/\s+/).some((id) =>
          document.getElementById(id)?.textContent?.trim()
        ) ||
        (el as HTMLInputElement).labels?.length ||
        (["BUTTON", "A"].includes(el.tagName) && el.textContent?.trim());
      if (!labelled) missing.push(el.outerHTML.slice(0, 120));
    }
    return missing;
  });
}

/** The page's width beyond the viewport (horizontal scrolling), in CSS pixels. */
export function overflowX(page: Page): Promise<number> {
  return page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth
  );
}

/** Console errors that a lost connection causes in Chromium (a server restart). */
export const NETWORK_ERROR =
  /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|ERR_INCOMPLETE_CHUNKED_ENCODING|Failed to load resource: net::/;
