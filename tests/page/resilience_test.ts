/**
 * The status page when the network misbehaves: the server restarts on the same port and
 * data directory (the page resumes with no gap and no duplicate), and WebSockets are
 * blocked (the page falls back to SSE and events still arrive).
 */
import assert from "node:assert/strict";
import { browserTest, openBrowser, until } from "../_helpers/browser.ts";
import { http, publish } from "../_helpers/clients.ts";
import { startTestServer, type TestServer } from "../_helpers/server.ts";
import { connected, downloadLog, logCount, NETWORK_ERROR, row, rowProgress } from "./_support.ts";

function lines(from: number, to: number) {
  return Array.from({ length: to - from + 1 }, (_, i) => ({
    type: "log",
    data: { line: `step ${from + i}`, level: "info" },
  }));
}

browserTest(
  "the page recovers after a server restart with no gap or duplicate in the log tail",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-page-restart-" });
    let server: TestServer | undefined = await startTestServer({}, { dataDir });
    const port = Number(new URL(server.url).port);
    const browser = await openBrowser();
    const { page } = browser;
    try {
      await http(server.url, "POST", "/jobs", { id: "restart-job", kind: "train" });
      await http(server.url, "POST", "/jobs/restart-job/start", {}); // sequence 1
      await publish(server.url, "restart-job", ...lines(1, 20)); // 2–21
      await page.goto(`${server.url}/#/jobs/restart-job`);
      await connected(page, "websocket");
      await logCount(page, 21);
      assert.deepEqual(browser.errors, [], "no error before the restart");
      await browser.screenshot("before-restart");

      await server.close();
      server = undefined;
      await until(
        "the indicator to show the lost connection",
        async () => await page.locator("#connection").getAttribute("data-state") !== "connected",
      );
      await browser.screenshot("server-down");

      server = await startTestServer({ port }, { dataDir });
      assert.equal(new URL(server.url).port, String(port));
      // Published at once, most likely before the page is back: it must replay them.
      await publish(server.url, "restart-job", ...lines(21, 35));
      await http(server.url, "POST", "/jobs/restart-job/progress", { progress: 60 });
      await connected(page, "websocket", 30_000);
      await logCount(page, 36, 20_000);
      // And live ones after it is back.
      await publish(server.url, "restart-job", ...lines(36, 50));
      await logCount(page, 51);

      const text = await downloadLog(page);
      const steps = [...text.matchAll(/ step (\d+)$/gm)].map((m) => Number(m[1]));
      assert.deepEqual(
        steps,
        Array.from({ length: 50 }, (_, i) => i + 1),
        "every line once, in order",
      );
      const sequences = [...text.matchAll(/ #(\d+) /g)].map((m) => Number(m[1]));
      // Sequence 37 is the progress event, which the tail does not print.
      const expected = Array.from({ length: 52 }, (_, i) => i + 1).filter((s) => s !== 37);
      assert.deepEqual(sequences, expected);
      assert.equal(await page.locator("#job-bar").getAttribute("aria-valuenow"), "60");
      await browser.screenshot("after-restart");

      // The list resumed too.
      await page.goto(`${server.url}/#/`);
      await rowProgress(page, "restart-job", 60);
      await http(server.url, "POST", "/jobs/restart-job/progress", { progress: 80 });
      await rowProgress(page, "restart-job", 80);
      const unexpected = browser.errors.filter((e) => !NETWORK_ERROR.test(e));
      assert.deepEqual(unexpected, [], "only the lost connection's errors");
    } finally {
      await browser.close();
      await server?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
);

browserTest(
  "a blocked WebSocket makes the page fall back to SSE, and events still arrive",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    let blocked = 0;
    try {
      // Every WebSocket the page opens is cut before the server can greet it, as a proxy
      // that does not pass WebSockets would.
      await page.routeWebSocket(/.*/, (ws) => {
        blocked++;
        ws.close({ code: 1011, reason: "blocked by the test" });
      });
      await http(server.url, "POST", "/jobs", { id: "sse-job", kind: "build" });
      await page.goto(`${server.url}/`);
      const text = await connected(page, "sse", 20_000);
      assert.match(text, /Live · SSE/);
      assert.ok(blocked >= 2, `${blocked} WebSocket attempts blocked`);
      await row(page, "sse-job").waitFor();

      // Live events arrive over SSE: the list…
      await http(server.url, "POST", "/jobs/sse-job/start", {});
      await http(server.url, "POST", "/jobs/sse-job/progress", { progress: 50 });
      await rowProgress(page, "sse-job", 50);
      await http(server.url, "POST", "/jobs", { id: "sse-new", kind: "build" });
      await row(page, "sse-new").waitFor();

      // …and the job view, on its own SSE stream.
      await row(page, "sse-job").getByRole("link").click();
      await connected(page, "sse", 20_000);
      await publish(server.url, "sse-job", ...lines(1, 5));
      await logCount(page, 6);
      await http(server.url, "POST", "/jobs/sse-job/complete", { result: { over: "sse" } });
      await until(
        "the result",
        async () => /"over": "sse"/.test(await page.locator("#result-json").textContent() ?? ""),
      );

      // The server saw SSE streams and no WebSocket session.
      const stats = await http(server.url, "GET", "/stats");
      assert.equal(stats.json.connections.websocket, 0);
      assert.ok(stats.json.connections.sse >= 1, JSON.stringify(stats.json.connections));
      await browser.screenshot("sse-fallback");
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest(
  "with WebSockets and SSE blocked, the list refreshes by polling and the job view long-polls",
  async () => {
    const server = await startTestServer();
    const browser = await openBrowser();
    const { page } = browser;
    try {
      await page.routeWebSocket(/.*/, (ws) => ws.close({ code: 1011, reason: "blocked" }));
      // A proxy that buffers streamed responses: every event stream is refused.
      await page.route(
        "**/*",
        (route, request) =>
          (request.headers()["accept"] ?? "").includes("text/event-stream")
            ? route.abort("connectionrefused")
            : route.continue(),
      );
      await http(server.url, "POST", "/jobs", { id: "poll-job", kind: "build" });
      await page.goto(`${server.url}/`);
      await row(page, "poll-job").waitFor();
      const indicator = page.locator("#connection");
      await until(
        "the offline mode",
        async () =>
          await indicator.getAttribute("data-state") === "offline" &&
          /offline mode, refreshed \d\d:\d\d:\d\d/.test(await indicator.textContent() ?? ""),
        15_000,
      );
      await browser.screenshot("offline-mode");

      // Jobs made meanwhile show up with the next refresh.
      await http(server.url, "POST", "/jobs", { id: "poll-new", kind: "build" });
      await http(server.url, "POST", "/jobs/poll-job/progress", { progress: 35 });
      await row(page, "poll-new").waitFor({ timeout: 20_000 });
      await rowProgress(page, "poll-job", 35);

      // A refresh that fails is not told as one that worked.
      const listRequests = /\/jobs\?/;
      await page.route(listRequests, (route) => route.abort("connectionrefused"));
      await until(
        "the failed refresh",
        async () =>
          /offline mode, cannot refresh \(tried \d\d:\d\d:\d\d\)/.test(
            await indicator.textContent() ?? "",
          ),
        25_000,
      );
      await page.unroute(listRequests);

      // A job's own watcher has long-poll to fall back to.
      await row(page, "poll-job").getByRole("link").click();
      const text = await connected(page, "poll", 20_000);
      assert.match(text, /Live · long-poll/);
      await publish(server.url, "poll-job", ...lines(1, 3));
      await logCount(page, 3);
      await http(server.url, "POST", "/jobs/poll-job/start", {});
      const done = await http(server.url, "POST", "/jobs/poll-job/complete", {
        result: { via: "long-poll" },
      });
      assert.equal(done.status, 201, done.text);
      await until(
        "the result",
        async () =>
          /"via": "long-poll"/.test(await page.locator("#result-json").textContent() ?? ""),
      );
      const unexpected = browser.errors.filter((e) =>
        !/ERR_CONNECTION_REFUSED|net::ERR_FAILED/.test(e)
      );
      assert.deepEqual(unexpected, []);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
