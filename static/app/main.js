/**
 * The status page: decides between sign-in and the app, routes between the job list
 * (`#/`) and a job (`#/jobs/<id>`, the `urls.status` link the server hands out), and
 * wires the connection indicator and the server panel.
 *
 * @module
 */
import { ConnectionIndicator } from "./connection.js";
import { JobList } from "./job_list.js";
import { JobView } from "./job_view.js";
import { StatsPanel } from "./stats.js";
import {
  currentSession,
  forgetToken,
  refusal,
  sessionOf,
  signInWithPassword,
  signInWithToken,
  signOut,
  storedToken,
  storeLinkedToken,
  takeTokenFromFragment,
  useToken,
} from "./session.js";

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const indicator = new ConnectionIndicator($("connection"));
const stats = new StatsPanel();
const list = new JobList({
  indicator,
  onAuthLost: (error) => authLost(error),
  onOpen: (id) => {
    location.hash = `#/jobs/${encodeURIComponent(id)}`;
  },
});
const view = new JobView({
  indicator,
  onAuthLost: (error) => authLost(error),
  // A finished job's stream is closed: the indicator goes back to the list's, still live.
  onClosed: () => indicator.show(list.watcher),
  session: () => session,
});

/** @type {import("./session.js").Session | undefined} */
let session;
let lastAuthLoss = 0;
/** Where the list was scrolled to, and the job opened from it, to come back to. */
let listScroll = 0;
/** @type {string | undefined} */
let openedJob;

/** @param {"boot" | "sign-in" | "list-view" | "job-view"} name */
function showSection(name) {
  for (const id of ["boot", "sign-in", "list-view", "job-view"]) $(id).hidden = id !== name;
}

/**
 * Finds out who the page is and shows the sign-in form or the app.
 *
 * @param {string} [message] shown above the sign-in form
 */
async function boot(message) {
  const linked = takeTokenFromFragment();
  if (linked !== undefined) message = (await adoptLinkedToken(linked)) ?? message;
  let info;
  try {
    info = await currentSession();
    const stored = storedToken();
    if (info.via === null && stored !== undefined) {
      // The stored token was refused: forget it (a cookie session may still be valid).
      message ??= refusal(info.failure);
      forgetToken();
      info = await currentSession();
    } else if (info.via === "token" && stored !== undefined) {
      // A token the tab kept becomes the cookie, out of the streams' URLs.
      info = await useToken(stored);
    }
  } catch (error) {
    showSection("boot");
    $("boot").textContent = `Cannot reach the server (${error.message}); trying again…`;
    setTimeout(() => boot(message), 3000);
    return;
  }
  if (info.via === null) {
    showSignIn(message ?? (info.failure === "token_expired" ? refusal(info.failure) : undefined));
    return;
  }
  startApp(info);
}

/**
 * Signs in with the token of a `#token=` link. A page already signed in as someone else
 * asks first: a link could otherwise switch who the page is without the user noticing.
 *
 * @param {string} token
 * @returns {Promise<string | undefined>} why it was not used, to show on the sign-in form
 */
async function adoptLinkedToken(token) {
  try {
    const link = await sessionOf(token);
    if (!link.signed_in) return refusal(link.failure);
    const now = await currentSession();
    const other = now.via === "cookie" || now.via === "token" ? now.sub : undefined;
    if (
      other !== undefined && other !== link.sub &&
      !confirm(
        `This link signs in as ${link.sub ?? "a token without a user"}, and this page is ` +
          `signed in as ${other ?? "a token without a user"}. Switch?`,
      )
    ) {
      return undefined;
    }
    await useToken(token);
  } catch {
    // The server cannot be reached now: the tab keeps the token to try with.
    storeLinkedToken(token);
  }
  return undefined;
}

/** @param {string} [message] */
function showSignIn(message) {
  session = undefined;
  $("who").textContent = "";
  $("sign-out").hidden = true;
  indicator.show(undefined);
  const notice = $("sign-in-message");
  notice.hidden = message === undefined;
  notice.textContent = message ?? "";
  document.title = "Sign in · jobwire";
  showSection("sign-in");
  /** @type {HTMLInputElement} */ ($("username")).focus();
}

/** @param {import("./session.js").Session} info */
function startApp(info) {
  session = info;
  $("who").textContent = info.via === "open"
    ? "Open server: no sign-in needed"
    : `Signed in as ${info.sub ?? "(no subject)"}${info.via === "token" ? " with a token" : ""}`;
  $("sign-out").hidden = info.via === "open";
  list.start();
  stats.start(info);
  // The panel counts this page's own stream as soon as it is up.
  list.watcher?.on("connected", () => stats.running && stats.refresh());
  route();
}

function route() {
  if (session === undefined) return;
  const match = /^#\/jobs\/(.+)$/.exec(location.hash);
  if (match !== null) {
    let id = match[1];
    try {
      id = decodeURIComponent(id);
    } catch {
      // Shown as typed; the server answers that it does not know it.
    }
    if (!$("list-view").hidden) listScroll = scrollY;
    showSection("job-view");
    view.open(id);
    openedJob = id;
    // Keyboard and screen reader users land on the job's name, not on the page's top.
    $("job-title").focus();
    return;
  }
  const fromJob = !$("job-view").hidden;
  view.close();
  indicator.show(list.watcher);
  document.title = "jobwire";
  showSection("list-view");
  if (fromJob) {
    scrollTo(0, listScroll);
    if (openedJob !== undefined) list.focusJob(openedJob);
  }
}

/**
 * After a sign-in from the form, whose button is hidden now: the keyboard goes on from the
 * list's heading (a job's view puts it on the job's name itself).
 */
function focusApp() {
  if (!$("list-view").hidden) $("list-title").focus();
}

function stopApp() {
  view.close();
  list.stop();
  stats.stop();
  indicator.show(undefined);
}

/**
 * A stream or request was refused for want of valid credentials: ask the server again,
 * and show the sign-in form if it agrees (twice in a short while: show it anyway).
 *
 * @param {any} error
 */
function authLost(error) {
  if (session === undefined) return;
  stopApp();
  const repeated = Date.now() - lastAuthLoss < 15_000;
  lastAuthLoss = Date.now();
  if (repeated) {
    forgetToken();
    showSignIn(`The server refused this session (${error?.message ?? "unauthorized"}).`);
    return;
  }
  session = undefined;
  const why = error?.message ?? "";
  const expired = error?.code === "token_expired" || /expired/i.test(why);
  // A sign-out in another tab, or the user removed: not a token the user ever typed.
  const revoked = error?.code === "token_revoked" || /revoked/i.test(why);
  boot(refusal(expired ? "token_expired" : revoked ? "token_revoked" : "invalid_token"));
}

globalThis.addEventListener("hashchange", () => {
  if (/(^#|[#&?])token=/.test(location.hash)) {
    stopApp();
    session = undefined;
    boot();
    return;
  }
  route();
});

$("password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  const button = /** @type {HTMLButtonElement} */ (form.querySelector("button"));
  const username = /** @type {HTMLInputElement} */ ($("username")).value.trim();
  const password = /** @type {HTMLInputElement} */ ($("password"));
  button.disabled = true;
  try {
    const info = await signInWithPassword(username, password.value);
    password.value = "";
    if (info.via === null) throw new Error("The server did not keep the session cookie");
    startApp(info);
    focusApp();
  } catch (error) {
    showSignIn(signInError(error));
  } finally {
    button.disabled = false;
  }
});

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = /** @type {HTMLTextAreaElement} */ ($("token-input"));
  const button = /** @type {HTMLButtonElement} */ (
    /** @type {HTMLFormElement} */ (event.currentTarget).querySelector("button")
  );
  button.disabled = true;
  try {
    const info = await signInWithToken(input.value);
    input.value = "";
    startApp(info);
    focusApp();
  } catch (error) {
    showSignIn(signInError(error));
    input.focus();
  } finally {
    button.disabled = false;
  }
});

$("sign-out").addEventListener("click", async () => {
  stopApp();
  await signOut();
  showSignIn("You are signed out.");
});

/** @param {any} error */
function signInError(error) {
  switch (error?.code) {
    case "invalid_credentials":
      return "Wrong username or password.";
    case "rate_limited":
      return "Too many failed sign-ins: try again later.";
    case "invalid_token":
    case "token_expired":
      return refusal(error.code);
    default:
      return `Sign-in failed: ${error?.message ?? error}`;
  }
}

boot();
