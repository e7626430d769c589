/**
 * What the status page shows stays true as the user moves around: the job view empties its
 * details when the job it opens is unknown, producers' text is cleaned wherever it shows, a
 * completed job says 100 % without stale counts, the chart counts every update, jobs deleted
 * while the page was disconnected leave the list, the summary says when a filter leaves
 * jobs on the server, and buttons stay readable in the dark scheme.
 */
import assert from "node:assert/strict";
import { browserTest, NotYet, openBrowser, until } from "../_helpers/browser.ts";
import { http, publish } from "../_helpers/clients.ts";
import { runMain, startTestServer, type TestServer } from "../_helpers/server.ts";
import { connected, logCount, NETWORK_ERROR, row } from "./_support.ts";

browserTest("the job view empties what it showed when the next job is unknown", async () => {
  const server = await startTestServer();
  const browser = await openBrowser();
  const { page } = browser;
  try {
    await http(server.url, "POST", "/jobs", {
      id: "shown",
      kind: "deploy\u202e-prod",
      metadata: { note: "\u202eevil" },
    });
    await http(server.url, "POST", "/jobs/shown/start", {});
    await http(server.url, "POST", "/jobs/shown/progress", {
      progress: 40,
      stage: "copy",
      message: "copying files",
      current: 400,
      total: 1000,
    });
    await publish(server.url, "shown", { type: "log", data: { line: "one" } }, {
      type: "log",
      data: { line: "two" },
    });
    await page.goto(`${server.url}/#/jobs/shown`);
    await logCount(page, 3);
    assert.equal(await page.locator("#job-message").textContent(), "copying files");
    assert.equal(await page.locator("#job-percent").textContent(), "40% (400/1,000)");
    // A bidirectional override would make the kind read "deploydorp-".
    assert.equal(await page.locator("#job-kind").textContent(), "deploy-prod");
    assert.ok(!(await page.locator("#job-metadata").textContent() ?? "").includes("\u202e"));

    await page.goto(`${server.url}/#/jobs/no-such-job`);
    await until("the job to be told unknown", async () => {
      const badge = await page.locator("#job-status").textContent();
      return badge === "not found" ? true : new NotYet(String(badge));
    });
    for (
      const field of ["#job-message", "#job-stage", "#job-kind", "#job-owner", "#job-sequence"]
    ) {
      assert.equal(await page.locator(field).textContent(), "–", field);
    }
    assert.equal(await page.locator("#job-bar").getAttribute("aria-valuenow"), "0");
    assert.equal(await page.locator("#job-percent").textContent(), "–");
    assert.equal(await page.locator("#log-count").textContent(), "0 lines");

    // A completed job is at 100 %, whatever its last counts said.
    await http(server.url, "POST", "/jobs/shown/complete", {});
    await page.goto(`${server.url}/#/jobs/shown`);
    await until("the job to be completed", async () => {
      const text = await page.locator("#job-percent").textContent();
      return text === "100%" ? true : new NotYet(String(text));
    });
    const unexpected = browser.errors.filter((e) => !/404|Not Found/.test(e));
    assert.deepEqual(unexpected, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

browserTest(
  "the chart's caption counts every progress update, past the points it draws",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    try {
      await http(server.url, "POST", "/jobs", { id: "many" });
      await http(server.url, "POST", "/jobs/many/start", {});
      for (let batch = 0; batch < 3; batch++) {
        await publish(
          server.url,
          "many",
          ...Array.from({ length: 1000 }, (_, i) => ({
            type: "progress",
            data: { progress: (batch * 1000 + i) / 30 },
          })),
        );
      }
      await page.goto(`${server.url}/#/jobs/many`);
      const caption = await until("the caption to count 3,000 updates", async () => {
        const text = await page.locator("#chart-caption").textContent() ?? "";
        return text.includes("(3,000 updates)") ? text : new NotYet(text);
      }, 20_000);
      assert.match(caption, /^Progress over time: /);
      const drawn = Number(await page.locator("#chart").getAttribute("data-points"));
      assert.ok(drawn <= 2000, `points drawn: ${drawn}`);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest(
  "a job deleted while the page was disconnected leaves the list when it reconnects",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-page-ghost-" });
    let server: TestServer | undefined = await startTestServer({}, { dataDir });
    const port = Number(new URL(server.url).port);
    const browser = await openBrowser();
    const { page } = browser;
    try {
      for (let i = 0; i < 60; i++) {
        await http(server.url, "POST", "/jobs", { id: `job-${String(i).padStart(2, "0")}` });
      }
      await page.goto(`${server.url}/`);
      await connected(page, "websocket");
      await until("60 jobs listed", async () => await page.locator("li.job").count() === 60);

      await server.close();
      server = undefined;
      await until(
        "the page to see the connection lost",
        async () => await page.locator("#connection").getAttribute("data-state") !== "connected",
      );
      server = await startTestServer({ port }, { dataDir });
      // Deleted before the page is back: its list must not keep the oldest jobs' rows either.
      for (const id of ["job-05", "job-55"]) {
        assert.equal((await http(server.url, "DELETE", `/jobs/${id}`)).status, 200);
      }
      await connected(page, "websocket", 30_000);
      await until("the deleted jobs to leave the list", async () => {
        const count = await page.locator("li.job").count();
        return count === 58 ? true : new NotYet(`${count} rows`);
      }, 15_000);
      assert.equal(await row(page, "job-05").count(), 0);
      assert.equal(await row(page, "job-55").count(), 0);
      const unexpected = browser.errors.filter((e) => !NETWORK_ERROR.test(e));
      assert.deepEqual(unexpected, []);
    } finally {
      await browser.close();
      await server?.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

browserTest("a filter read to its end says the other jobs are still on the server", async () => {
  const server = await startTestServer();
  const browser = await openBrowser();
  const { page } = browser;
  try {
    // More than the stream's greeting and the first page hold, few of them running.
    for (let i = 0; i < 260; i++) {
      await http(server.url, "POST", "/jobs", { id: `j-${String(i).padStart(3, "0")}` });
    }
    for (const id of ["j-000", "j-001", "j-002"]) {
      await http(server.url, "POST", `/jobs/${id}/start`, {});
    }
    await page.goto(`${server.url}/`);
    await connected(page, "websocket");
    await page.getByLabel("Status").selectOption("running");
    const summary = await until("the running jobs, read to their end", async () => {
      const text = await page.locator("#list-summary").textContent() ?? "";
      return /^3 shown of \d+ jobs/.test(text) && await page.locator("#load-more").isHidden()
        ? text
        : new NotYet(text);
    }, 15_000);
    assert.match(summary, /loaded \(more on the server\)/);
  } finally {
    await browser.close();
    await server.close();
  }
});

browserTest(
  "buttons keep a 4.5:1 contrast in the dark scheme, and a sign-in by keyboard leaves the focus on the list",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-page-dark-" });
    const added = await runMain(["user", "add", "alice", "--data-dir", dataDir], {
      env: { JOBWIRE_PASSWORD: "a password for alice" },
    });
    assert.equal(added.code, 0, added.stderr);
    const server = await startTestServer({ "no-auth": false }, { dataDir });
    const browser = await openBrowser();
    const { page } = browser;
    try {
      await page.emulateMedia({ colorScheme: "dark" });
      await page.goto(`${server.url}/`);
      const button = page.getByRole("button", { name: "Sign in" });
      await button.waitFor();
      const ratio = await button.evaluate((element) => {
        const style = getComputedStyle(element);
        const luminance = (text: string) => {
          const [r, g, b] = (text.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((c) => {
            const s = Number(c) / 255;
            return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
          });
          return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
        };
        const a = luminance(style.color);
        const b = luminance(style.backgroundColor);
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      });
      assert.ok(ratio >= 4.5, `contrast ${ratio.toFixed(2)}:1`);

      await page.getByLabel("Username", { exact: true }).fill("alice");
      await page.getByLabel("Password", { exact: true }).fill("a password for alice");
      await page.getByLabel("Password", { exact: true }).press("Enter");
      await page.locator("#list-view").waitFor();
      await until("the focus on the list's heading", async () => {
        const focused = await page.evaluate(() => document.activeElement?.id ?? "");
        return focused === "list-title" ? true : new NotYet(focused || "body");
      });
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
