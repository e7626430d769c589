/**
 * The job view (`#/jobs/<id>`): the job's state, a live log tail, progress over time,
 * its result and error. One `watchJob` watcher replays every retained event and follows
 * live ones, so it falls back (WebSocket → SSE → long-poll) and resumes after a restart
 * with no gap and no duplicate, as the client library does.
 *
 * @module
 */
import { watchJob } from "/client.js";
import { currentToken, getJson, jobPath, request } from "./api.js";
import { ProgressChart } from "./chart.js";
import {
  dateTime,
  displayText,
  duration,
  elapsedSeconds,
  etaText,
  percent,
  TERMINAL,
} from "./format.js";
import { AUTH_CODES } from "./job_list.js";
import { LogTail } from "./log_tail.js";
import { frameScheduler } from "./frame.js";

const LOG_LEVELS = new Set(["debug", "info", "warning", "error"]);
const GONE_CODES = new Set(["job_not_found", "job_gone"]);

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** The view of one job. */
export class JobView {
  /**
   * @param {{indicator: import("./connection.js").ConnectionIndicator, onAuthLost: (error: any) => void, onClosed: () => void, session: () => import("./session.js").Session | undefined}} options
   */
  constructor(options) {
    this.options = options;
    this.followButton = /** @type {HTMLButtonElement} */ ($("log-follow"));
    this.cancelButton = /** @type {HTMLButtonElement} */ ($("job-cancel"));
    this.cancelButton.addEventListener("click", () => this.#cancel());
    this.log = new LogTail($("log"), (following) => this.#showFollow(following));
    this.chart = new ProgressChart(
      /** @type {SVGSVGElement} */ (/** @type {unknown} */ ($("chart"))),
      $("chart-caption"),
    );
    /** @type {any} */
    this.watcher = undefined;
    /** @type {string | undefined} */
    this.id = undefined;
    /** @type {any} */
    this.job = undefined;
    this.schedule = frameScheduler(() => this.#render());
    this.resultFetched = false;
    /** Set once the server says the job is not there (deleted, purged or never made). */
    this.gone = false;
    /** Set once the server says this session may not see the job. */
    this.refused = false;
    /** @type {string | undefined} `current/total` of the latest progress event that had them. */
    this.counts = undefined;
    this.ticker = undefined;
    this.followButton.addEventListener("click", () => {
      this.log.setFollowing(!this.log.following);
    });
    $("log-download").addEventListener("click", () => this.#download());
  }

  /**
   * Shows job `id` and starts watching it.
   *
   * @param {string} id
   */
  open(id) {
    if (this.id === id && this.watcher !== undefined) return;
    this.close();
    this.id = id;
    this.job = undefined;
    this.gone = false;
    this.refused = false;
    /** `current/total` of the latest progress event that had them. */
    this.counts = undefined;
    this.resultFetched = false;
    $("job-title").textContent = id;
    document.title = `${id} · jobwire`;
    $("job-bar").setAttribute("aria-label", `Progress of job ${id}`);
    $("log").setAttribute("aria-label", `Log of job ${id}`);
    this.#notice("");
    this.cancelButton.disabled = false;
    this.log.clear();
    this.#renderCount();
    this.log.setFollowing(true);
    this.chart.clear();
    $("job-result").hidden = true;
    $("job-error").hidden = true;
    this.#render();

    const watcher = watchJob(location.origin, id, {
      token: currentToken(),
      maxAttempts: Infinity,
      initialDelayMs: 250,
      maxDelayMs: 5000,
    });
    this.watcher = watcher;
    watcher.on("snapshot", ({ job }) => {
      this.job = job;
      this.schedule();
    });
    watcher.on("event", (event) => this.#event(event));
    watcher.on("truncated", ({ first_available }) => {
      this.log.append({
        sequence: first_available - 1,
        timestamp: new Date().toISOString(),
        level: "event",
        text: `… events before #${first_available} are no longer kept by the server`,
      });
    });
    watcher.on("finished", ({ job }) => {
      if (job !== undefined) this.job = job;
      this.schedule();
    });
    /** The last error since the stream was last up: the one that ended it, once it closes. */
    let lastError;
    watcher.on("connected", () => (lastError = undefined));
    watcher.on("error", (error) => {
      if (watcher !== this.watcher) return;
      lastError = error;
      if (GONE_CODES.has(error.code)) {
        this.#notice(`There is no job ${id} (it may have been deleted or purged).`);
        // What is shown is what the job was: nothing of it moves any more.
        this.gone = true;
        clearInterval(this.ticker);
        this.#render();
      }
    });
    watcher.on("closed", () => {
      if (watcher !== this.watcher) return;
      // The watcher tells its error before it closes: only then is it known to be the end.
      if (lastError !== undefined && AUTH_CODES.has(lastError.code)) {
        if (lastError.code === "forbidden" && !/token/i.test(lastError.message)) {
          this.#notice(`You may not see job ${id}.`);
          this.refused = true;
          this.#render();
        } else {
          this.options.onAuthLost(lastError);
        }
      }
      this.options.onClosed();
    });
    this.options.indicator.show(watcher);
    this.ticker = setInterval(() => this.#renderTimes(), 1000);
  }

  /** Stops watching. */
  close() {
    const watcher = this.watcher;
    this.watcher = undefined;
    this.id = undefined;
    watcher?.close();
    clearInterval(this.ticker);
  }

  /** @param {any} event a persisted envelope */
  #event(event) {
    // The watcher's job moves with every event (its last sequence, an ETA a log line aged),
    // though it tells only those that change the state.
    const latest = this.watcher?.job;
    if (latest !== undefined && latest !== this.job) {
      this.job = latest;
      this.schedule();
    }
    const data = event.data ?? {};
    let level = "event";
    let text;
    switch (event.type) {
      case "log":
        level = LOG_LEVELS.has(data.level) ? data.level : "info";
        text = `${data.source ? `[${data.source}] ` : ""}${data.line ?? ""}`;
        break;
      case "progress":
        this.chart.add(event.timestamp, data.progress);
        this.counts = typeof data.current === "number" && typeof data.total === "number"
          ? `${data.current.toLocaleString("en")}/${data.total.toLocaleString("en")}`
          : undefined;
        this.schedule();
        return;
      case "status":
        if (data.status === "completed") this.chart.add(event.timestamp, 100);
        text = `status → ${data.status}${data.message ? `: ${data.message}` : ""}`;
        break;
      case "result":
        text = "result recorded";
        break;
      case "error":
        level = "error";
        text = `error (${data.error_type ?? "general"}): ${data.error ?? ""}`;
        break;
      default:
        text = `${event.type} ${truncate(JSON.stringify(data), 400)}`;
    }
    this.log.append({ sequence: event.sequence, timestamp: event.timestamp, level, text });
    this.#renderCount();
  }

  #render() {
    const job = this.job;
    const badge = $("job-status");
    const bar = $("job-bar");
    this.cancelButton.hidden = this.gone || job === undefined || TERMINAL.has(job.status) ||
      !mayWrite(this.options.session(), job);
    if (this.gone) {
      badge.textContent = job === undefined ? "not found" : "deleted";
      badge.className = "badge gone";
      if (job === undefined) return this.#clearDetails();
    } else if (job === undefined) {
      badge.textContent = this.refused ? "not allowed" : "loading";
      badge.className = this.refused ? "badge gone" : "badge";
      return this.#clearDetails();
    } else {
      badge.textContent = job.stalled ? `${job.status} · stalled` : job.status;
      badge.className = `badge ${job.status}${job.stalled ? " stalled" : ""}`;
    }
    const progress = Math.min(100, Math.max(0, Number(job.progress) || 0));
    bar.setAttribute("aria-valuenow", String(progress));
    bar.setAttribute("aria-valuetext", `${percent(progress)} (${job.status})`);
    bar.dataset.status = job.status;
    /** @type {HTMLElement} */ (bar.firstElementChild).style.width = `${progress}%`;
    // The counts of the last progress event, while they still tell how far it is: a completed
    // job is at 100 % whatever they said.
    $("job-percent").textContent = this.counts === undefined || job.status === "completed"
      ? percent(progress)
      : `${percent(progress)} (${this.counts})`;
    const metadata = job.metadata ?? {};
    const hasMetadata = typeof metadata === "object" && Object.keys(metadata).length > 0;
    $("job-metadata-row").hidden = !hasMetadata;
    // Producers' text, cleaned as stage and message are: an escape or a bidirectional
    // override in a kind, an owner or metadata could make it read as something else.
    $("job-metadata").textContent = hasMetadata
      ? displayText(truncate(JSON.stringify(metadata), 400))
      : "–";
    $("job-stage").textContent = job.stage === null ? "–" : displayText(job.stage);
    $("job-message").textContent = job.message === null ? "–" : displayText(job.message);
    $("job-kind").textContent = job.kind === null || job.kind === undefined
      ? "–"
      : displayText(job.kind);
    $("job-owner").textContent = job.owner === null || job.owner === undefined
      ? "–"
      : displayText(job.owner);
    $("job-created").textContent = dateTime(job.created_at);
    $("job-sequence").textContent = String(job.last_sequence);
    this.#renderTimes();

    const error = job.error;
    $("job-error").hidden = error === null || error === undefined;
    if (error) {
      $("error-text").textContent = `${error.error_type}: ${error.error}`;
      const details = $("error-details");
      details.hidden = error.details === undefined;
      details.textContent = error.details === undefined ? "" : pretty(error.details);
    }
    const hasResult = job.result !== undefined && job.result !== null;
    $("job-result").hidden = !hasResult;
    if (hasResult) $("result-json").textContent = pretty(job.result);
    else if (job.has_result && !this.resultFetched) this.#fetchResult();
  }

  /** Empties the job's details: no job is known (yet, or any more, or to this user). */
  #clearDetails() {
    const bar = $("job-bar");
    bar.setAttribute("aria-valuenow", "0");
    bar.setAttribute("aria-valuetext", "unknown");
    delete bar.dataset.status;
    /** @type {HTMLElement} */ (bar.firstElementChild).style.width = "0%";
    $("job-percent").textContent = "–";
    $("job-metadata-row").hidden = true;
    $("job-metadata").textContent = "–";
    for (const field of ["job-stage", "job-message", "job-kind", "job-owner", "job-created"]) {
      $(field).textContent = "–";
    }
    $("job-sequence").textContent = "–";
    $("job-error").hidden = true;
    $("job-result").hidden = true;
    this.#renderTimes();
  }

  /** Cancels the job, once the user confirms: its watchers (and a `run`) see it end. */
  async #cancel() {
    const id = this.id;
    const who = this.options.session()?.sub;
    if (id === undefined || !confirm(`Cancel job ${id}? A command run with "run" is stopped.`)) {
      return;
    }
    this.cancelButton.disabled = true;
    try {
      await request("POST", `${jobPath(id)}/cancel`, {
        reason: `Cancelled from the status page${who ? ` by ${who}` : ""}`,
      });
    } catch (error) {
      if (id !== this.id) return;
      this.#notice(`Could not cancel job ${id}: ${error.message}`);
    } finally {
      if (id === this.id) this.cancelButton.disabled = false;
    }
  }

  /** Lists leave the result out; the job itself has it. */
  async #fetchResult() {
    this.resultFetched = true;
    const id = this.id;
    try {
      const job = await getJson(jobPath(id));
      if (id !== this.id || this.job === undefined) return;
      this.job = { ...this.job, result: job.result };
      this.schedule();
    } catch {
      // The stream brings the result event; nothing is lost by waiting.
    }
  }

  #renderTimes() {
    const job = this.job;
    if (job === undefined) {
      $("job-eta").textContent = "–";
      $("job-elapsed").textContent = "–";
      return;
    }
    const now = Date.now();
    const eta = this.gone ? null : etaText(job, now);
    const elapsed = job.started_at && !this.gone ? elapsedSeconds(job, now) : null;
    $("job-eta").textContent = eta ?? (job.status === "completed" ? "done" : "–");
    $("job-elapsed").textContent = elapsed === null ? "–" : duration(elapsed);
  }

  #renderCount() {
    if (this.countScheduled) return;
    this.countScheduled = true;
    requestAnimationFrame(() => {
      this.countScheduled = false;
      const n = this.log.size;
      const count = $("log-count");
      count.textContent = `${n.toLocaleString("en")} line${n === 1 ? "" : "s"}`;
      count.dataset.count = String(n);
    });
  }

  /** @param {boolean} following */
  #showFollow(following) {
    this.followButton.setAttribute("aria-pressed", String(following));
    this.followButton.textContent = following ? "Following" : "Paused: follow";
  }

  /** @param {string} text empty hides the notice */
  #notice(text) {
    const notice = $("job-notice");
    notice.hidden = text === "";
    notice.textContent = text;
  }

  #download() {
    const blob = new Blob([this.log.text()], { type: "text/plain;charset=utf-8" });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `${(this.id ?? "job").replace(/[^A-Za-z0-9._-]/g, "_")}.log`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

/**
 * Whether the page's user may write to `job` (as the server decides: `write` on own jobs,
 * `write:all` and `admin` on any, everyone on an open server).
 *
 * @param {import("./session.js").Session | undefined} session
 * @param {any} job
 */
function mayWrite(session, job) {
  if (session === undefined) return false;
  if (session.via === "open") return true;
  const scopes = new Set(session.scopes);
  if (scopes.has("admin") || scopes.has("write:all")) return true;
  return scopes.has("write") && session.sub !== null && job.owner === session.sub;
}

/** @param {unknown} value */
function pretty(value) {
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** @param {string} text @param {number} max */
function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
