/**
 * Cancelling a job from the status page's job view: offered to those who may write to
 * the job, confirmed before it is sent, and seen through as the job's stream ends it.
 */
import assert from "node:assert/strict";
import { browserTest, openBrowser, until } from "../_helpers/browser.ts";
import { http } from "../_helpers/clients.ts";
import { startTestServer } from "../_helpers/server.ts";
import { AUTH, bearer, tokenFor } from "../_helpers/tokens.ts";
import { connected } from "./_support.ts";

browserTest(
  "the job view cancels a running job after asking, for those who may write to it",
  async () => {
    const server = await startTestServer(AUTH);
    const browser = await openBrowser();
    const { page } = browser;
    try {
      const ann = await tokenFor("ann", "write");
      const bob = await tokenFor("bob", "read:all");
      for (const id of ["deploy-1", "deploy-2"]) {
        assert.equal((await http(server.url, "POST", "/jobs", { id }, bearer(ann))).status, 201);
        await http(server.url, "POST", `/jobs/${id}/start`, {}, bearer(ann));
      }
      const cancel = page.getByRole("button", { name: "Cancel job" });
      const badge = page.locator("#job-status");

      await page.goto(`${server.url}/#token=${ann}`);
      await page.locator("#list-view").waitFor();
      await page.goto(`${server.url}/#/jobs/deploy-1`);
      await connected(page);
      await until("the running badge", async () => await badge.textContent() === "running");
      await cancel.waitFor();

      // Dismissed: nothing is sent.
      page.once("dialog", (dialog) => dialog.dismiss());
      await cancel.click();
      assert.equal(
        (await http(server.url, "GET", "/jobs/deploy-1", undefined, bearer(ann))).json
          .status,
        "running",
      );

      // Confirmed: the job is cancelled, and the view follows it there.
      const asked: string[] = [];
      page.once("dialog", (dialog) => {
        asked.push(dialog.message());
        return dialog.accept();
      });
      await cancel.click();
      await until("the cancelled badge", async () => await badge.textContent() === "cancelled");
      assert.deepEqual(asked, ['Cancel job deploy-1? A command run with "run" is stopped.']);
      await until("the button to go", async () => await cancel.isHidden());
      const job = (await http(server.url, "GET", "/jobs/deploy-1", undefined, bearer(ann))).json;
      assert.equal(job.status, "cancelled");
      assert.equal(job.message, "Cancelled from the status page by ann");

      // Someone who may only read sees no button on a running job.
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in to jobwire" }).waitFor();
      await page.getByLabel("Token (a JWT)", { exact: true }).fill(bob);
      await page.getByRole("button", { name: "Use this token" }).click();
      await until(
        "bob signed in",
        async () => /bob/.test(await page.locator("#who").textContent() ?? ""),
      );
      await page.goto(`${server.url}/#/jobs/deploy-2`);
      await until("the running badge", async () => await badge.textContent() === "running");
      assert.ok(await cancel.isHidden());
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
