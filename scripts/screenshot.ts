/**
 * Takes the README's screenshots of the status page: starts a server on a fresh data
 * directory, fills it with demo jobs in every state, opens the page in Debian's Chromium
 * through the `#token=` link (as an operator would) and saves
 * `docs/status-page.png` (the job list) and `docs/status-page-job.png` (a job).
 *
 * Usage: `deno task screenshot [output directory]` (default `docs/`).
 *
 * @module
 */
import { join } from "node:path";
import { chromium } from "playwright-core";
import { resolveConfig } from "../src/config.ts";
import { startServer } from "../src/server.ts";
import { signToken } from "../src/auth/keys.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "../tests/_helpers/browser.ts";

/** Where the screenshots go by default. */
export const DOCS_DIR = new URL("../docs/", import.meta.url).pathname;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Demo jobs: a client of the HTTP API with the admin token. */
async function seed(url: string, token: string): Promise<void> {
  const call = async (path: string, body: unknown = {}) => {
    const response = await fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    await response.body?.cancel();
  };
  const create = (id: string, kind: string, metadata = {}) => call("/jobs", { id, kind, metadata });

  await create("deploy-api-2291", "deploy");
  await create("backup-db-0412", "backup");
  await call("/jobs/backup-db-0412/start");
  await call("/jobs/backup-db-0412/progress", { progress: 12, stage: "snapshot" });
  await call("/jobs/backup-db-0412/cancel", { reason: "superseded by backup-db-0413" });

  await create("etl-nightly-1105", "etl");
  await call("/jobs/etl-nightly-1105/start");
  await call("/jobs/etl-nightly-1105/progress", { progress: 45, stage: "transform" });
  await call("/jobs/etl-nightly-1105/fail", {
    error: "Insufficient memory available for the join",
    error_type: "memory_error",
    details: { suggestions: ["Reduce batch size", "Use a smaller dataset"] },
  });

  await create("build-1842", "build", { branch: "main" });
  await call("/jobs/build-1842/start");
  await call("/jobs/build-1842/log", { lines: ["compiled 120 files", "linking app"] });
  await call("/jobs/build-1842/complete", {
    result: { artifact: "app-1842.tar.gz", size_bytes: 48_213_504, tests: { passed: 412 } },
  });

  await create("upload-7f3a", "upload");
  await call("/jobs/upload-7f3a/queue", { message: "waiting for a worker" });

  await create("report-q3", "report");
  await call("/jobs/report-q3/start");
  await call("/jobs/report-q3/progress", {
    progress: 23,
    stage: "render",
    message: "page 46 of 200",
    eta_seconds: 340,
  });

  await create("train-cp-v33", "train", { model: "customer-predictor", dataset: "10k rows" });
  await call("/jobs/train-cp-v33/start", { message: "training started" });
  await call("/jobs/train-cp-v33/log", {
    lines: [
      { line: "loading 10,000 rows from s3://datasets/churn.csv", level: "info" },
      { line: "feature cache warm (1,204 entries)", level: "debug" },
      { line: "12 rows with missing target dropped", level: "warning" },
    ],
  });
  const stages = ["data_preparation", "feature_engineering", "model_training"];
  for (let epoch = 1; epoch <= 13; epoch++) {
    const progress = Math.round(4 + epoch * 4.6);
    await call("/jobs/train-cp-v33/progress", {
      progress,
      stage: stages[Math.min(2, Math.floor(epoch / 3))],
      message: `Epoch ${epoch}/20`,
      eta_seconds: (20 - epoch) * 21,
    });
    await call("/jobs/train-cp-v33/log", {
      line: `epoch ${epoch}/20 loss=${(0.41 / epoch).toFixed(4)} acc=${
        (0.8 + epoch * 0.012).toFixed(3)
      }`,
      level: epoch === 9 ? "error" : "info",
      ...(epoch === 9 ? { source: "worker-2" } : {}),
    });
    if (epoch === 9) {
      await call("/jobs/train-cp-v33/log", {
        line: "worker-2 lost, shard 3 rescheduled on worker-4",
        level: "warning",
      });
    }
    await sleep(120);
  }
}

/**
 * Starts a demo server, takes the screenshots into `outDir`, stops everything.
 *
 * @returns the paths written
 */
export async function takeScreenshots(outDir: string = DOCS_DIR): Promise<string[]> {
  const dataDir = await Deno.makeTempDir({ prefix: "jobwire-screenshot-" });
  const flags = new Map<string, string | true>([
    ["host", "127.0.0.1"],
    ["port", "0"],
    ["data-dir", dataDir],
    ["log-level", "error"],
  ]);
  const server = await startServer(resolveConfig({ flags, env: {} }));
  const profile = await Deno.makeTempDir({ prefix: "jobwire-screenshot-profile-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 840 },
    colorScheme: "light",
    // No transitions: the bars are captured where they end, not on their way.
    reducedMotion: "reduce",
  });
  try {
    if (server.keys === undefined) throw new Error("The demo server runs without keys");
    const token = await signToken(server.keys, { sub: "admin", scope: "admin" }, 3_600_000);
    await seed(server.url, token);
    const page = context.pages()[0] ?? await context.newPage();
    await page.goto(`${server.url}/#token=${token}`);
    await page.locator('li.job[data-job-id="train-cp-v33"]').waitFor();
    await page.waitForFunction(() =>
      document.querySelector("#connection")?.getAttribute("data-state") === "connected" &&
      Number(document.querySelector("#stat-connections")?.textContent) >= 1
    );
    await Deno.mkdir(outDir, { recursive: true });
    const list = join(outDir, "status-page.png");
    const job = join(outDir, "status-page-job.png");
    await page.screenshot({ path: list });
    await page.goto(`${server.url}/#/jobs/train-cp-v33`);
    await page.waitForFunction(() =>
      Number(document.querySelector("#log-count")?.getAttribute("data-count")) >= 18 &&
      document.querySelector("#chart")?.getAttribute("data-points") === "13"
    );
    await page.setViewportSize({ width: 1200, height: 1000 });
    await page.evaluate(() => document.fonts.ready);
    await page.screenshot({ path: job });
    return [list, job];
  } finally {
    await context.close();
    await server.shutdown();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const written = await takeScreenshots(Deno.args[0] ?? DOCS_DIR);
  for (const path of written) console.log(`wrote ${path}`);
}
