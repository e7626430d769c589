/**
 * The status page in real headless Chromium against the real server: the job list, the
 * job view (logs, chart, result, error), 10,000 log lines, and a phone-width screen.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { browserTest, NotYet, openBrowser, until } from "../_helpers/browser.ts";
import { http, publish } from "../_helpers/clients.ts";
import { startTestServer } from "../_helpers/server.ts";
import {
  connected,
  downloadLog,
  logCount,
  overflowX,
  row,
  rowProgress,
  unlabeledControls,
} from "./_support.ts";

browserTest(
  "the page loads with no console errors and a job created through the API appears and moves",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    try {
      await page.goto(`${server.url}/`);
      assert.match(await connected(page, "websocket"), /^Live · WebSocket/);
      // The round trip shows once the first pong is back, which may be after the open.
      const measured = await until("the indicator to show the round trip", async () => {
        const text = await page.locator("#connection .connection-text").textContent() ?? "";
        return / · \d+ ms · /.test(text) ? text : new NotYet(text);
      });
      assert.match(measured, /^Live · WebSocket · \d+ ms · (excellent|good|fair|poor)$/);
      assert.equal(await page.locator("#who").textContent(), "Open server: no sign-in needed");
      // No link, no token: nothing is kept in the tab.
      assert.equal(await page.evaluate(() => sessionStorage.getItem("jobwire.token")), null);
      assert.ok(await page.locator("#sign-out").isHidden());
      assert.match(await page.locator("#jobs-empty").textContent() ?? "", /No jobs yet/);

      const created = await http(server.url, "POST", "/jobs", { id: "build-42", kind: "build" });
      assert.equal(created.status, 201);
      await row(page, "build-42").waitFor({ timeout: 10_000 });
      assert.equal(await row(page, "build-42").locator(".badge").textContent(), "pending");
      await rowProgress(page, "build-42", 0);

      await http(server.url, "POST", "/jobs/build-42/start", {});
      await http(server.url, "POST", "/jobs/build-42/progress", { progress: 30, stage: "compile" });
      await rowProgress(page, "build-42", 30);
      assert.equal(await row(page, "build-42").locator(".badge").textContent(), "running");
      await http(server.url, "POST", "/jobs/build-42/progress", {
        progress: 75,
        stage: "link",
        message: "linking app",
        eta_seconds: 90,
      });
      await rowProgress(page, "build-42", 75);
      const details = await row(page, "build-42").locator(".details").textContent() ?? "";
      assert.match(details, /Stage: link/);
      assert.match(details, /linking app/);
      assert.match(details, /ETA 1m \d+s/);
      assert.match(details, /elapsed \d+s/);
      assert.equal(await row(page, "build-42").locator(".percent").textContent(), "75%");

      // Filters: status and kind (server and page), id search.
      await http(server.url, "POST", "/jobs", { id: "train-1", kind: "train" });
      await row(page, "train-1").waitFor();
      await page.getByLabel("Status").selectOption("running");
      await until("only running jobs", async () => await page.locator("li.job").count() === 1);
      assert.equal(await page.locator("li.job").getAttribute("data-job-id"), "build-42");
      await page.getByLabel("Status").selectOption("");
      await page.getByLabel("Kind").fill("train");
      await until("only train jobs", async () =>
        await page.locator("li.job").count() === 1 &&
        await page.locator("li.job").getAttribute("data-job-id") === "train-1");
      await page.getByLabel("Kind").fill("");
      await page.getByLabel("Job id").fill("42");
      await until("the id search", async () => await page.locator("li.job").count() === 1);
      await page.getByLabel("Job id").fill("");
      await until("both jobs again", async () => await page.locator("li.job").count() === 2);
      const deleted = await http(server.url, "DELETE", "/jobs/train-1");
      assert.equal(deleted.status, 200, deleted.text);
      await until("the deleted job gone", async () => await row(page, "train-1").count() === 0);

      await http(server.url, "POST", "/jobs/build-42/complete", { result: { ok: true } });
      await rowProgress(page, "build-42", 100);
      await until(
        "the completed badge",
        async () => await row(page, "build-42").locator(".badge").textContent() === "completed",
      );

      // The server panel (an open server: everyone may read /stats).
      await until("the stats panel", async () => await page.locator("#stats-figures").isVisible());
      assert.match(await page.locator("#stat-jobs").textContent() ?? "", /^\d+$/);

      assert.deepEqual(await unlabeledControls(page), []);
      await browser.screenshot("list");
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest(
  "the job view streams logs, charts progress and shows the result and the error",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    try {
      const created = await http(server.url, "POST", "/jobs", {
        id: "train-7",
        kind: "train",
        metadata: { branch: "main", gpus: 2 },
      });
      const statusUrl = created.json.urls.status as string;
      assert.equal(statusUrl, `${server.url}/#/jobs/train-7`);
      await page.goto(statusUrl);
      await connected(page, "websocket");
      assert.equal(await page.locator("#job-title").textContent(), "train-7");

      await http(server.url, "POST", "/jobs/train-7/start", {});
      await http(server.url, "POST", "/jobs/train-7/log", {
        lines: [
          { line: "loading 10,000 rows", level: "info" },
          { line: "cache miss", level: "debug" },
          { line: "disk almost full", level: "warning" },
          { line: "retrying shard 3", level: "error" },
        ],
      });
      await logCount(page, 5); // the status change and four lines
      const warning = page.locator("#log .row.warning");
      assert.match(await warning.textContent() ?? "", /WARN\s*disk almost full/);
      const colours = await page.evaluate(() =>
        ["info", "debug", "warning", "error"].map((level) => {
          const el = document.querySelector(`#log .row.${level}`);
          return el === null ? "" : getComputedStyle(el).color;
        })
      );
      assert.equal(new Set(colours).size, 4, `levels are coloured apart: ${colours}`);

      for (const progress of [10, 40, 65]) {
        await http(server.url, "POST", "/jobs/train-7/progress", { progress, stage: "epochs" });
      }
      await until(
        "three chart points",
        async () => await page.locator("#chart").getAttribute("data-points") === "3",
      );
      assert.ok(await page.locator("#chart polyline").count() === 1);
      assert.equal(await page.locator("#job-bar").getAttribute("aria-valuenow"), "65");
      assert.equal(await page.locator("#job-stage").textContent(), "epochs");
      assert.equal(await page.locator("#job-metadata").textContent(), '{"branch":"main","gpus":2}');
      assert.ok(await page.locator("#job-metadata-row").isVisible());
      // Counts of a progress report show beside the percentage.
      await http(server.url, "POST", "/jobs/train-7/progress", { current: 1300, total: 2000 });
      await until(
        "the counts",
        async () =>
          (await page.locator("#job-percent").textContent()) === "65% (1,300/2,000)" || undefined,
      );

      // Pausing the tail and resuming it.
      const follow = page.getByRole("button", { name: "Following" });
      await follow.click();
      assert.equal(await page.locator("#log-follow").getAttribute("aria-pressed"), "false");
      await page.locator("#log-follow").click();
      assert.equal(await page.locator("#log-follow").getAttribute("aria-pressed"), "true");

      await http(server.url, "POST", "/jobs/train-7/complete", {
        result: { accuracy: 0.968, model: "cp-v33" },
      });
      await until(
        "the result",
        async () =>
          /"accuracy": 0\.968/.test(await page.locator("#result-json").textContent() ?? ""),
      );
      assert.equal(await page.locator("#job-status").textContent(), "completed");
      assert.equal(await page.locator("#job-bar").getAttribute("aria-valuenow"), "100");
      assert.ok(await page.locator("#job-error").isHidden());
      const log = await downloadLog(page);
      assert.match(log, / INFO {2}#2 loading 10,000 rows\n/);
      assert.match(log, /EVENT #\d+ status → completed/);
      await browser.screenshot("job-completed");

      await http(server.url, "POST", "/jobs", { id: "etl-3", kind: "etl" });
      await http(server.url, "POST", "/jobs/etl-3/fail", {
        error: "Insufficient memory available for training",
        error_type: "memory_error",
        details: { suggestions: ["Reduce batch size"] },
      });
      await page.goto(`${server.url}/#/jobs/etl-3`);
      await until("the error", async () => await page.locator("#job-error").isVisible());
      assert.equal(
        await page.locator("#error-text").textContent(),
        "memory_error: Insufficient memory available for training",
      );
      assert.match(await page.locator("#error-details").textContent() ?? "", /Reduce batch size/);
      assert.equal(await page.locator("#job-status").textContent(), "failed");
      await browser.screenshot("job-failed");

      await page.goto(`${server.url}/#/jobs/no-such-job`);
      await until(
        "the unknown job notice",
        async () =>
          /There is no job no-such-job/.test(await page.locator("#job-notice").textContent() ?? ""),
      );
      // Asking for a job that does not exist is the one error the browser reports.
      assert.ok(
        browser.errors.every((e) => /404|4004|no-such-job/.test(e)),
        browser.errors.join("\n"),
      );
      assert.deepEqual(await unlabeledControls(page), []);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest(
  "Load more adds jobs past the stream's first 200 at each click, and jobs past them move live",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    try {
      // 260 jobs, oldest first: the stream's greeting lists the newest 200.
      const ids = Array.from({ length: 260 }, (_, i) => `job-${String(i).padStart(3, "0")}`);
      for (const id of ids) {
        assert.equal((await http(server.url, "POST", "/jobs", { id })).status, 201);
      }
      await page.goto(`${server.url}/`);
      await connected(page);
      const count = () => page.locator("li.job").count();
      await until("the newest 200 listed", async () => await count() === 200);
      const summary = page.locator("#list-summary");
      assert.match(await summary.textContent() ?? "", /200 jobs loaded \(more on the server\)/);
      const more = page.getByRole("button", { name: "Load more" });
      await more.click();
      await until(
        "a page more",
        async () => await count() === 250 || new NotYet(`${await count()} rows`),
      );
      await more.click();
      await until(
        "every job",
        async () => await count() === 260 || new NotYet(`${await count()} rows`),
      );
      await until("no more to load", async () => await more.isHidden());
      assert.equal(await summary.textContent(), "260 jobs");
      // Back from a server-side filter, the first page read again offers nothing more.
      await page.getByLabel("Status").selectOption("running");
      await until("no job running", async () => await count() === 0);
      await page.getByLabel("Status").selectOption("");
      await until("every job again", async () => await count() === 260);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(await more.isHidden());
      assert.equal(await summary.textContent(), "260 jobs");
      // A job the greeting did not list moves, and one leaves, live.
      await http(server.url, "POST", "/jobs/job-003/start", {});
      await until(
        "job-003 running",
        async () => await row(page, "job-003").locator(".badge").textContent() === "running",
      );
      assert.equal((await http(server.url, "DELETE", "/jobs/job-004")).status, 200);
      await until("job-004 gone", async () => await row(page, "job-004").count() === 0);
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest("the log tail stays virtualized and follows at 10,000 lines", async () => {
  const server = await startTestServer();
  const browser = await openBrowser();
  const { page } = browser;
  try {
    await http(server.url, "POST", "/jobs", { id: "big-log" });
    for (let batch = 0; batch < 10; batch++) {
      const lines = Array.from({ length: 1000 }, (_, i) => `line ${batch * 1000 + i + 1}`);
      const reply = await http(server.url, "POST", "/jobs/big-log/log", { lines });
      assert.equal(reply.status, 201, reply.text);
    }
    await page.goto(`${server.url}/#/jobs/big-log`);
    await logCount(page, 10_000, 30_000);
    await publish(server.url, "big-log", { type: "log", data: { line: "line 10001" } });
    await logCount(page, 10_001);
    const rows = await page.locator("#log .row").count();
    assert.ok(rows > 10 && rows < 120, `${rows} rows in the DOM for 10,001 lines`);
    await until("the newest line in view", () => inView(page, 10_001));
    assert.match(await page.locator("#log-count").textContent() ?? "", /10,001 lines/);

    // Scrolling up pauses following; the first line is then in view.
    await page.locator("#log").evaluate((el) => el.scrollTo({ top: 0 }));
    await until(
      "following paused",
      async () => await page.locator("#log-follow").getAttribute("aria-pressed") === "false",
    );
    await until("the first line in view", () => inView(page, 1));
    assert.match(await page.locator('#log .row[data-sequence="1"]').textContent() ?? "", /line 1$/);
    await publish(server.url, "big-log", { type: "log", data: { line: "line 10002" } });
    await logCount(page, 10_002);
    assert.equal(await page.locator("#log").evaluate((el) => el.scrollTop), 0, "paused stays put");
    await page.getByRole("button", { name: "Paused: follow" }).click();
    await until("the newest line in view again", () => inView(page, 10_002));
    await browser.screenshot("big-log");
    assert.deepEqual(browser.errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

/** Whether the log row of `sequence` is rendered inside the visible part of the tail. */
function inView(page: Page, sequence: number): Promise<boolean> {
  return page.locator("#log").evaluate((log, seq) => {
    const el = log.querySelector(`.row[data-sequence="${seq}"]:not([hidden])`);
    if (el === null) return false;
    const box = el.getBoundingClientRect();
    const view = log.getBoundingClientRect();
    return box.top >= view.top - 1 && box.bottom <= view.bottom + 1;
  }, sequence);
}

browserTest("the page is readable at phone width (375 px) without sideways scrolling", async () => {
  const server = await startTestServer();
  const browser = await openBrowser({ viewport: { width: 375, height: 740 } });
  const { page } = browser;
  try {
    await http(server.url, "POST", "/jobs", {
      id: "upload-2f9c1e7a-5b0d-4d8e-9a61-0c3f5e2b7d41",
      kind: "upload",
    });
    await http(server.url, "POST", "/jobs/upload-2f9c1e7a-5b0d-4d8e-9a61-0c3f5e2b7d41/progress", {
      progress: 55,
      stage: "transfer",
      message: "uploading customer_data_2026_full_export_final.csv to the warehouse",
    });
    await page.goto(`${server.url}/`);
    await connected(page);
    await rowProgress(page, "upload-2f9c1e7a-5b0d-4d8e-9a61-0c3f5e2b7d41", 55);
    assert.equal(await overflowX(page), 0, "the list scrolls sideways");
    const box = await row(page, "upload-2f9c1e7a-5b0d-4d8e-9a61-0c3f5e2b7d41").boundingBox();
    assert.ok(box !== null && box.x >= 0 && box.x + box.width <= 375, JSON.stringify(box));
    await browser.screenshot("phone-list");

    await row(page, "upload-2f9c1e7a-5b0d-4d8e-9a61-0c3f5e2b7d41").getByRole("link").click();
    await until("the job view", async () => await page.locator("#job-view").isVisible());
    await http(server.url, "POST", "/jobs/upload-2f9c1e7a-5b0d-4d8e-9a61-0c3f5e2b7d41/log", {
      line: "a long line ".repeat(30),
    });
    await logCount(page, 1);
    assert.equal(await overflowX(page), 0, "the job view scrolls sideways");
    await browser.screenshot("phone-job");
    assert.deepEqual(browser.errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

browserTest(
  "the list drops a job deleted after the page loaded and shows one made again under its id; an open view of it stops",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser({ viewport: { width: 375, height: 740 } });
    const { page } = browser;
    try {
      // Made before the page loads: the list knows it from its first page only.
      await http(server.url, "POST", "/jobs", {
        id: "old-1",
        kind: "nightly-data-warehouse-export",
      });
      await http(server.url, "POST", "/jobs/old-1/progress", {
        progress: 40,
        stage: "S".repeat(3000),
        eta_seconds: 3600,
      });
      await page.goto(`${server.url}/`);
      await connected(page);
      await rowProgress(page, "old-1", 40);
      // A long stage and kind wrap or shrink; the id keeps most of the row.
      assert.equal(await overflowX(page), 0, "the list scrolls sideways");
      const [idCut, kindWidth] = await row(page, "old-1").evaluate((li) => [
        li.querySelector(".job-id")!.scrollWidth > li.querySelector(".job-id")!.clientWidth,
        li.querySelector(".kind")!.getBoundingClientRect().width,
      ]);
      assert.equal(idCut, false, "the id is cut while the kind takes the room");
      assert.ok(Number(kindWidth) < 200, `kind ${kindWidth} px`);

      assert.equal((await http(server.url, "DELETE", "/jobs/old-1")).status, 200);
      await until(
        "the deleted job to leave the list",
        async () => (await row(page, "old-1").count()) === 0 || undefined,
      );
      await http(server.url, "POST", "/jobs", { id: "old-1", kind: "again" });
      await row(page, "old-1").waitFor();
      assert.equal(await row(page, "old-1").locator(".kind").textContent(), "again");
      await rowProgress(page, "old-1", 0);

      // The view of a job deleted while open says so and stops counting.
      await http(server.url, "POST", "/jobs/old-1/start", {});
      await http(server.url, "POST", "/jobs/old-1/log", { line: "first\nsecond\nthird" });
      await row(page, "old-1").getByRole("link").click();
      await logCount(page, 2);
      assert.equal(
        await page.evaluate(() => document.activeElement?.id),
        "job-title",
        "opening a job puts the focus on its name",
      );
      const logged = await page.locator("#log .row").last().textContent() ?? "";
      assert.match(logged, /first↵second↵third/);
      assert.equal((await http(server.url, "DELETE", "/jobs/old-1")).status, 200);
      await until(
        "the badge to say deleted",
        async () => (await page.locator("#job-status").textContent()) === "deleted" || undefined,
      );
      const elapsed = await page.locator("#job-elapsed").textContent();
      assert.equal(elapsed, "–");
      assert.deepEqual(browser.errors.filter((e) => !/404|410/.test(e)), []);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest(
  "with more jobs than the first page, counts say they are of the jobs loaded",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    try {
      // The stream starts with the newest 200; the first page of the list has 50.
      for (let i = 0; i < 205; i++) await http(server.url, "POST", "/jobs", { id: `bulk-${i}` });
      await page.goto(`${server.url}/`);
      await connected(page);
      await until("the summary", async () => {
        const text = await page.locator("#list-summary").textContent() ?? "";
        return /^200 jobs loaded \(more on the server\)$/.test(text) || new NotYet(text);
      });
      // An id that is on the server but not loaded: Enter opens it.
      await page.locator("#filter-id").fill("bulk-0");
      await page.locator("#filter-id").press("Enter");
      await until("the job view", async () => await page.locator("#job-view").isVisible());
      assert.equal(await page.locator("#job-title").textContent(), "bulk-0");
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest(
  "a job's view shows producers' text without terminal escapes or bidi overrides, and keeps its last sequence current",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    try {
      await http(server.url, "POST", "/jobs", { id: "odd-text" });
      await publish(server.url, "odd-text", { type: "status", data: { status: "running" } }, {
        type: "progress",
        data: { progress: 10, stage: "\x1b[1mfit\x1b[0m", message: "step \u202Eevil\u202C one" },
      });
      await page.goto(`${server.url}/#/jobs/odd-text`);
      await logCount(page, 1);
      await publish(server.url, "odd-text", {
        type: "log",
        data: { line: "\x1b[31mred\x1b[0m and \x1b]0;title\x07plain \u202Etxet\u202C\x07" },
      });
      await logCount(page, 2);
      const line = await page.locator('#log .row[data-sequence="3"]').textContent() ?? "";
      assert.match(line, /red and plain txet$/);
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(line, /[\x00-\x1f\u202a-\u202e\u2066-\u2069]/);
      assert.equal(await page.locator("#job-stage").textContent(), "fit");
      assert.equal(await page.locator("#job-message").textContent(), "step evil one");
      // A log line moves the last sequence; the ETA of a job that failed is no "done".
      await until(
        "the last sequence of the log line",
        async () => await page.locator("#job-sequence").textContent() === "3",
      );
      await http(server.url, "POST", "/jobs/odd-text/fail", { error: "boom" });
      await until(
        "failed",
        async () => await page.locator("#job-status").textContent() === "failed",
      );
      assert.equal(await page.locator("#job-eta").textContent(), "–");
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
