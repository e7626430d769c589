/**
 * Signing in on the status page: username and password (HttpOnly cookie), the
 * `#token=` link the server prints at start, a pasted token, and signing out.
 */
import assert from "node:assert/strict";
import { browserTest, openBrowser, until } from "../_helpers/browser.ts";
import { http } from "../_helpers/clients.ts";
import { runMain, spawnServer, startTestServer } from "../_helpers/server.ts";
import { AUTH, bearer, nowSeconds, tokenFor } from "../_helpers/tokens.ts";
import { connected, row, rowProgress, unlabeledControls } from "./_support.ts";

const PASSWORD = "correct horse battery staple";

browserTest(
  "signing in with a username and password uses an HttpOnly cookie; signing out ends it",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-page-login-" });
    const added = await runMain(
      ["user", "add", "alice", "--scope", "read write", "--data-dir", dataDir],
      { env: { JOBWIRE_PASSWORD: PASSWORD } },
    );
    assert.equal(added.code, 0, added.stderr);
    const server = await startTestServer({ "no-auth": false }, { dataDir });
    const browser = await openBrowser();
    const { page, context } = browser;
    try {
      await page.goto(`${server.url}/`);
      await page.getByRole("heading", { name: "Sign in to jobwire" }).waitFor();
      assert.ok(await page.locator("#list-view").isHidden());
      assert.deepEqual(browser.errors, [], "asking who we are is not an error");
      assert.deepEqual(await unlabeledControls(page), []);
      await browser.screenshot("sign-in");

      await page.getByLabel("Username", { exact: true }).fill("alice");
      await page.getByLabel("Password", { exact: true }).fill("not the password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await until(
        "the refusal",
        async () =>
          await page.locator("#sign-in-message").textContent() === "Wrong username or password.",
      );
      assert.ok(
        browser.errors.every((e) => /401/.test(e)),
        browser.errors.join("\n"),
      );
      browser.errors.length = 0;

      await page.getByLabel("Username", { exact: true }).fill("alice");
      await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator("#list-view").waitFor();
      assert.equal(await page.locator("#who").textContent(), "Signed in as alice");
      await connected(page, "websocket");
      const cookie = (await context.cookies()).find((c) => c.name === "jobwire_token");
      assert.ok(cookie !== undefined && cookie.httpOnly, "an HttpOnly session cookie");
      assert.ok(!(await page.evaluate(() => document.cookie)).includes("jobwire_token"));
      assert.equal(await page.evaluate(() => sessionStorage.getItem("jobwire.token")), null);
      await until("the stats note", async () =>
        /need the admin scope; alice does not have it/.test(
          await page.locator("#stats-note").textContent() ?? "",
        ));

      // alice's own job appears and moves: the cookie carries the WebSocket and requests.
      const login = await http(server.url, "POST", "/auth/login", {
        username: "alice",
        password: PASSWORD,
      });
      const token = login.json.access_token as string;
      const created = await http(server.url, "POST", "/jobs", { id: "alice-1" }, bearer(token));
      assert.equal(created.status, 201, created.text);
      await row(page, "alice-1").waitFor();
      await http(server.url, "POST", "/jobs/alice-1/progress", { progress: 42 }, bearer(token));
      await rowProgress(page, "alice-1", 42);

      // A reload keeps the session (the cookie), without the form.
      await page.reload();
      await page.locator("#list-view").waitFor();
      await row(page, "alice-1").waitFor();
      await browser.screenshot("signed-in");

      // A link with someone else's token asks before it switches who the page is.
      const minted = await runMain([
        "token",
        "--sub",
        "mallory",
        "--scope",
        "read",
        "--data-dir",
        dataDir,
      ]);
      const other = minted.stdout.trim();
      let asked = "";
      page.once("dialog", (dialog) => {
        asked = dialog.message();
        void dialog.dismiss();
      });
      await page.goto(`${server.url}/#token=${other}`);
      await until("the question", () => asked !== "" || undefined);
      assert.match(asked, /signs in as mallory, and this page is signed in as alice/);
      await page.locator("#list-view").waitFor();
      await row(page, "alice-1").waitFor();
      assert.equal(await page.locator("#who").textContent(), "Signed in as alice");
      assert.ok(!page.url().includes("token="), page.url());

      // A second tab shares the cookie; signing out in the first ends its session too.
      const second = await context.newPage();
      await second.goto(`${server.url}/`);
      await row(second, "alice-1").waitFor();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in to jobwire" }).waitFor();
      assert.equal(await page.locator("#sign-in-message").textContent(), "You are signed out.");
      await second.getByRole("heading", { name: "Sign in to jobwire" }).waitFor();
      // Not "the server did not accept that token": this user never typed one.
      assert.equal(
        await second.locator("#sign-in-message").textContent(),
        "Your session has ended (signed out elsewhere, or its user changed): sign in again.",
      );
      await second.close();
      await until(
        "the cookie cleared",
        async () => !(await context.cookies()).some((c) => c.name === "jobwire_token"),
      );
      await page.reload();
      await page.getByRole("heading", { name: "Sign in to jobwire" }).waitFor();
      assert.deepEqual(browser.errors, []);
      const anonymous = await page.evaluate(() => fetch("/jobs").then((r) => r.status));
      assert.equal(anonymous, 401, "signed out, the page's requests carry no credentials");
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
);

browserTest(
  "the #token= link the server prints signs in and leaves the address bar; a pasted token works too",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "jobwire-page-link-" });
    // Secure by default: no key configured, so the server prints an admin link at start.
    const server = await spawnServer(["--port", "0", "--data-dir", dataDir]);
    const browser = await openBrowser();
    const { page } = browser;
    try {
      const link = /Status page: (http:\/\/\S+\/#token=(\S+))/.exec(server.output());
      assert.ok(link, server.output());
      const [, url, token] = link;
      const sockets: string[] = [];
      page.on("websocket", (ws) => sockets.push(ws.url()));
      await page.goto(url!);
      await page.locator("#list-view").waitFor();
      assert.equal(await page.locator("#who").textContent(), "Signed in as jobwire:admin");
      assert.ok(!page.url().includes("token="), page.url());
      // The page keeps the token as its HttpOnly cookie, not in storage or in stream URLs.
      assert.equal(await page.evaluate(() => sessionStorage.getItem("jobwire.token")), null);
      const cookie = (await page.context().cookies()).find((c) => c.name === "jobwire_token");
      assert.equal(cookie?.value, token);
      assert.equal(cookie?.httpOnly, true);
      await connected(page, "websocket");
      assert.ok(sockets.length > 0 && sockets.every((u) => !u.includes("token=")), sockets.join());

      // An admin sees the server panel.
      await until(
        "the stats figures",
        async () => await page.locator("#stats-figures").isVisible(),
      );
      await until(
        "a counted connection",
        async () => Number(await page.locator("#stat-connections").textContent()) >= 1,
      );

      const created = await http(server.url, "POST", "/jobs", { id: "admin-1" }, bearer(token!));
      assert.equal(created.status, 201, created.text);
      await row(page, "admin-1").waitFor();
      await browser.screenshot("token-link");

      // Signed out, a wrong token is refused and the right one pasted signs in again.
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in to jobwire" }).waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem("jobwire.token")), null);
      await page.getByLabel("Token (a JWT)", { exact: true }).fill("not-a-token");
      await page.getByRole("button", { name: "Use this token" }).click();
      await until(
        "the refusal",
        async () =>
          await page.locator("#sign-in-message").textContent() ===
            "The server did not accept that token.",
      );
      await page.getByLabel("Token (a JWT)", { exact: true }).fill(token!);
      await page.getByRole("button", { name: "Use this token" }).click();
      await page.locator("#list-view").waitFor();
      await row(page, "admin-1").waitFor();
      assert.equal(await page.locator("#who").textContent(), "Signed in as jobwire:admin");
      assert.ok(sockets.every((u) => !u.includes("token=")), sockets.join());
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
);

browserTest("when the token expires the page says so and asks to sign in again", async () => {
  const server = await startTestServer(AUTH);
  const browser = await openBrowser();
  const { page } = browser;
  try {
    const token = await tokenFor("ops", "read:all", {}, { exp: nowSeconds() + 4 });
    await page.goto(`${server.url}/#token=${token}`);
    await page.locator("#list-view").waitFor();
    assert.equal(await page.locator("#who").textContent(), "Signed in as ops");
    await connected(page, "websocket");
    // The server closes the stream when the token's exp passes (1008 "token expired").
    await page.getByRole("heading", { name: "Sign in to jobwire" }).waitFor({ timeout: 15_000 });
    assert.equal(
      await page.locator("#sign-in-message").textContent(),
      "Your session has expired: sign in again.",
    );
    assert.equal(await page.evaluate(() => sessionStorage.getItem("jobwire.token")), null);
    assert.equal(await page.locator("#connection").getAttribute("data-state"), "idle");
    assert.ok(browser.errors.every((e) => /401/.test(e)), browser.errors.join("\n"));
  } finally {
    await browser.close();
    await server.close();
  }
});

browserTest(
  "a job the signed-in user may not read says so instead of loading for ever",
  async () => {
    const server = await startTestServer(AUTH);
    const browser = await openBrowser();
    const { page } = browser;
    try {
      const alice = await tokenFor("alice", "read write");
      const made = await http(server.url, "POST", "/jobs", { id: "alices-job" }, bearer(alice));
      assert.equal(made.status, 201, made.text);
      const bob = await tokenFor("bob", "read");
      await page.goto(`${server.url}/#token=${bob}`);
      await page.locator("#list-view").waitFor();
      await page.goto(`${server.url}/#/jobs/alices-job`);
      await until(
        "the notice",
        async () =>
          await page.locator("#job-notice").textContent() === "You may not see job alices-job.",
        15_000,
      );
      assert.ok(await page.locator("#job-notice").isVisible());
      assert.equal(await page.locator("#job-status").textContent(), "not allowed");
      // Bob stays signed in: the refusal is about the job, not his session.
      assert.equal(await page.locator("#who").textContent(), "Signed in as bob");
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
