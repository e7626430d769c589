/**
 * The job list: `GET /jobs` for the first page (and more on demand, with the status and
 * kind filters applied by the server), kept live by one `watchJobs({all: true})` watcher
 * (new jobs, deletions, every state change). Rows are updated in place, at most once per
 * animation frame. While no stream gets through, the list is refreshed by polling
 * (offline mode) until one does.
 *
 * @module
 */
import { watchJobs } from "/client.js";
import { currentToken, getJson, withQuery } from "./api.js";
import { displayText, duration, elapsedSeconds, etaText, percent, TERMINAL } from "./format.js";
import { frameScheduler } from "./frame.js";

/** Jobs per `GET /jobs` page. */
const PAGE_SIZE = 50;
/** Time without a stream before the offline mode starts, in ms. */
const OFFLINE_AFTER_MS = 3000;
/** Refresh interval of the offline mode, in ms. */
const OFFLINE_POLL_MS = 10_000;

/** Watcher error codes that mean the credentials stopped working. */
export const AUTH_CODES = new Set(["unauthorized", "invalid_token", "token_expired", "forbidden"]);

/** The list view. */
export class JobList {
  /**
   * @param {{indicator: import("./connection.js").ConnectionIndicator, onAuthLost: (error: any) => void, onOpen: (id: string) => void}} options
   */
  constructor(options) {
    this.options = options;
    this.list = /** @type {HTMLUListElement} */ (document.getElementById("jobs"));
    this.empty = /** @type {HTMLElement} */ (document.getElementById("jobs-empty"));
    this.summary = /** @type {HTMLElement} */ (document.getElementById("list-summary"));
    this.announcer = /** @type {HTMLElement} */ (document.getElementById("list-announce"));
    this.announce = false;
    /** Whether the stream's first message held every job there is. */
    this.streamHasAll = false;
    this.more = /** @type {HTMLButtonElement} */ (document.getElementById("load-more"));
    this.kinds = /** @type {HTMLDataListElement} */ (document.getElementById("kinds"));
    this.statusInput = /** @type {HTMLSelectElement} */ (document.getElementById("filter-status"));
    this.kindInput = /** @type {HTMLInputElement} */ (document.getElementById("filter-kind"));
    this.idInput = /** @type {HTMLInputElement} */ (document.getElementById("filter-id"));
    /** @type {Map<string, any>} id → snapshot */
    this.jobs = new Map();
    /** @type {Map<string, ReturnType<typeof makeRow>>} */
    this.rows = new Map();
    /** @type {Set<string>} */
    this.dirty = new Set();
    this.reorder = true;
    this.schedule = frameScheduler(() => this.render());
    this.filters = { status: "", kind: "", id: "" };
    /** @type {string | null} */
    this.nextCursor = null;
    /**
     * The server-side filters (`status|kind`) whose list was read to its end, so a reload of
     * its first page (back from another filter) offers no "Load more" for what is here.
     * @type {string | null}
     */
    this.readToEnd = null;
    this.loadGeneration = 0;
    this.loadError = "";
    this.loaded = false;
    /** @type {any} */
    this.watcher = undefined;
    this.streamLost = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.offlineTimer = undefined;
    this.ticker = undefined;
    this.#bindControls();
  }

  #bindControls() {
    const refilter = () => {
      const next = {
        status: this.statusInput.value,
        kind: this.kindInput.value.trim(),
        id: this.idInput.value.trim().toLowerCase(),
      };
      const serverSide = next.status !== this.filters.status || next.kind !== this.filters.kind;
      this.filters = next;
      // The count is read out after a change of filters, not at every job's change.
      this.announce = true;
      this.reorder = true;
      this.schedule();
      if (serverSide && this.watcher !== undefined) this.reload();
    };
    let debounce;
    this.statusInput.addEventListener("change", refilter);
    this.kindInput.addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(refilter, 300);
    });
    this.kindInput.addEventListener("change", refilter);
    this.idInput.addEventListener("input", refilter);
    document.getElementById("filters")?.addEventListener("submit", (event) => {
      event.preventDefault();
      const typed = this.idInput.value.trim();
      if (typed === "") return;
      const visible = this.#visibleIds();
      // The one match, the id typed in full, or (matching nothing loaded) the id on the
      // server; several partial matches stay listed to choose from.
      if (visible.length === 1) this.options.onOpen(visible[0]);
      else if (visible.length === 0 || visible.includes(typed)) this.options.onOpen(typed);
    });
    this.idInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        document.getElementById("filters")?.dispatchEvent(
          new Event("submit", { cancelable: true }),
        );
      }
    });
    this.more.addEventListener("click", () => this.loadMore());
  }

  /** Starts watching and loads the first page. */
  start() {
    this.stop();
    const watcher = watchJobs(location.origin, {
      all: true,
      token: currentToken(),
      maxAttempts: Infinity,
      initialDelayMs: 250,
      maxDelayMs: 5000,
    });
    this.watcher = watcher;
    watcher.on("snapshot", ({ job }) => this.upsert(job));
    watcher.on("created", ({ job }) => this.upsert(job));
    watcher.on("deleted", ({ job_id }) => this.remove(job_id));
    // The stream starts with the newest jobs: when that is every one, the page has them all.
    watcher.on("connection", (greeting) => {
      this.streamHasAll = greeting.data?.more_jobs === false;
      // The greeting lists the newest jobs: one listed here among them and not there was
      // deleted while the stream was down.
      const listed = greeting.data?.jobs;
      if (Array.isArray(listed)) this.#reconcile(listed, NO_FILTERS, this.streamHasAll);
      this.schedule();
    });
    watcher.on("connected", () => {
      this.#stopOffline();
      // Whatever changed while the stream was down (jobs made or deleted) is read again.
      if (this.streamLost) this.reload();
      this.streamLost = false;
    });
    watcher.on("disconnected", () => {
      this.streamLost = true;
      this.#startOfflineSoon();
    });
    watcher.on("reconnecting", () => this.#startOfflineSoon());
    /** The last error since the stream was last up: the one that ended it, once it closes. */
    let lastError;
    watcher.on("connected", () => (lastError = undefined));
    watcher.on("error", (error) => (lastError = error));
    watcher.on("closed", ({ reason }) => {
      if (this.watcher !== watcher) return;
      // The watcher tells its error before it closes: only then is it known to be the end.
      if (lastError !== undefined && AUTH_CODES.has(lastError.code)) {
        this.options.onAuthLost(lastError);
      } else if (reason !== "closed by the client") {
        this.#startOfflineSoon();
      }
    });
    this.ticker = setInterval(() => this.#tick(), 1000);
    this.reload();
  }

  /** Stops watching and forgets every job. */
  stop() {
    this.watcher?.close();
    this.watcher = undefined;
    clearInterval(this.ticker);
    this.#stopOffline();
    this.jobs.clear();
    for (const row of this.rows.values()) row.li.remove();
    this.rows.clear();
    this.loaded = false;
    this.nextCursor = null;
    this.readToEnd = null;
  }

  /**
   * Adds or updates a job; an older snapshot never replaces a newer one.
   *
   * @param {any} job
   */
  upsert(job) {
    if (job === null || typeof job !== "object" || typeof job.id !== "string") return;
    let known = this.jobs.get(job.id);
    // A job made again under a deleted id starts over: it replaces the old one whole (and
    // news of the old one that comes late changes nothing).
    if (known?.created_at !== undefined && job.created_at !== undefined) {
      if (job.created_at < known.created_at) return;
      if (job.created_at > known.created_at) known = undefined;
    }
    if (known !== undefined && known.last_sequence > job.last_sequence) return;
    if (known === undefined) this.reorder = true;
    else if (known.status !== job.status) this.reorder = true;
    this.jobs.set(job.id, known === undefined ? job : { ...known, ...job });
    this.dirty.add(job.id);
    this.schedule();
  }

  /** Puts the keyboard focus on a job's link, if it is listed. @param {string} id */
  focusJob(id) {
    this.rows.get(id)?.link.focus({ preventScroll: true });
  }

  /** @param {string} id */
  remove(id) {
    if (!this.jobs.delete(id)) return;
    this.reorder = true;
    this.schedule();
  }

  /**
   * Reads the first page again (with the server-side filters).
   *
   * @returns {Promise<boolean>} whether it was read (false when it failed, or a newer reload
   *   took its place)
   */
  async reload() {
    const generation = ++this.loadGeneration;
    const filters = { ...this.filters };
    try {
      const page = await getJson(
        withQuery("/jobs", { limit: PAGE_SIZE, status: filters.status, kind: filters.kind }),
      );
      if (generation !== this.loadGeneration) return false;
      this.#reconcile(page.jobs, filters, page.next_cursor === null);
      for (const job of page.jobs) this.upsert(job);
      // A first page that is the whole list (of these filters) reads it to its end.
      if (page.next_cursor === null && !this.#readAll(NO_FILTERS)) {
        this.readToEnd = serverFilters(filters);
      }
      this.nextCursor = this.#readAll(filters) ? null : page.next_cursor;
      this.loaded = true;
      this.loadError = "";
    } catch (error) {
      if (generation !== this.loadGeneration) return false;
      this.loadError = `Cannot load jobs: ${error.message}`;
      if (error.status === 401) this.options.onAuthLost(error);
    }
    this.reorder = true;
    this.schedule();
    return this.loadError === "";
  }

  /**
   * Reads pages after the last one read until one holds a job not listed yet, or the list
   * ends: the stream's greeting lists the newest 200 jobs, which the first pages hold too.
   */
  async loadMore() {
    if (this.nextCursor === null) return;
    const generation = this.loadGeneration;
    const filters = { ...this.filters };
    this.more.disabled = true;
    try {
      let added = 0;
      while (added === 0 && this.nextCursor !== null) {
        const page = await getJson(withQuery("/jobs", {
          limit: PAGE_SIZE,
          status: filters.status,
          kind: filters.kind,
          cursor: this.nextCursor,
        }));
        if (generation !== this.loadGeneration) return;
        for (const job of page.jobs) {
          if (!this.jobs.has(job.id)) added++;
          this.upsert(job);
        }
        this.nextCursor = page.next_cursor;
      }
      if (this.nextCursor === null) this.readToEnd = serverFilters(filters);
    } catch (error) {
      this.loadError = `Cannot load more jobs: ${error.message}`;
    } finally {
      this.more.disabled = false;
      this.reorder = true;
      this.schedule();
    }
  }

  /** Whether the jobs under `filters` were all read (every job's, or those filters'). */
  #readAll(filters) {
    return this.readToEnd === serverFilters(filters) ||
      this.readToEnd === serverFilters(NO_FILTERS);
  }

  /**
   * Drops jobs the server no longer lists: those matching `filters` and newer than the
   * oldest job of the page (every one when the page is the whole list). One made in the
   * same millisecond as that oldest may come after it in the list, on the next page: it
   * is kept.
   */
  #reconcile(listed, filters, complete) {
    const ids = new Set(listed.map((job) => job.id));
    const oldest = listed.length === 0 ? "" : listed[listed.length - 1].created_at;
    for (const [id, job] of this.jobs) {
      if (ids.has(id) || !matchesServer(job, filters)) continue;
      if (complete || job.created_at > oldest) this.remove(id);
    }
  }

  #startOfflineSoon() {
    if (this.offlineTimer !== undefined || this.watcher === undefined) return;
    const poll = async () => {
      if (this.watcher?.state === "connected") {
        this.#stopOffline();
        return;
      }
      const refreshed = await this.reload();
      if (this.offlineTimer === undefined) return;
      this.options.indicator.setOffline(new Date().toISOString(), refreshed);
      this.offlineTimer = setTimeout(poll, OFFLINE_POLL_MS);
    };
    this.offlineTimer = setTimeout(poll, OFFLINE_AFTER_MS);
  }

  #stopOffline() {
    clearTimeout(this.offlineTimer);
    this.offlineTimer = undefined;
    this.options.indicator.setOffline(null);
  }

  #visibleIds() {
    const f = this.filters;
    const out = [];
    for (const job of this.jobs.values()) {
      if (f.status !== "" && job.status !== f.status) continue;
      if (f.kind !== "" && job.kind !== f.kind) continue;
      if (f.id !== "" && !job.id.toLowerCase().includes(f.id)) continue;
      out.push(job);
    }
    out.sort((a, b) =>
      a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : -1
    );
    return out.map((job) => job.id);
  }

  render() {
    const now = Date.now();
    if (this.reorder) {
      this.reorder = false;
      const ids = this.#visibleIds();
      const keep = new Set(ids);
      for (const [id, row] of this.rows) {
        if (!keep.has(id)) {
          row.li.remove();
          this.rows.delete(id);
        }
      }
      let previous = null;
      for (const id of ids) {
        let row = this.rows.get(id);
        if (row === undefined) {
          row = makeRow(id);
          this.rows.set(id, row);
          this.dirty.add(id);
        }
        const wanted = previous === null ? this.list.firstChild : previous.nextSibling;
        if (wanted !== row.li) this.list.insertBefore(row.li, wanted);
        previous = row.li;
      }
      this.#renderSummary(ids.length);
      this.#renderKinds();
    }
    for (const id of this.dirty) {
      const row = this.rows.get(id);
      const job = this.jobs.get(id);
      if (row !== undefined && job !== undefined) updateRow(row, job, now);
    }
    this.dirty.clear();
  }

  #renderSummary(visible) {
    const total = this.jobs.size;
    let running = 0;
    for (const job of this.jobs.values()) if (job.status === "running") running++;
    const filtered = this.filters.status !== "" || this.filters.kind !== "" ||
      this.filters.id !== "";
    // Counts are of the jobs loaded here: with more on the server, the text says so (a
    // filter read to its end leaves the others' jobs there).
    const more = this.nextCursor !== null && !this.streamHasAll;
    const everyJob = this.streamHasAll || this.#readAll(NO_FILTERS) ||
      (!more && this.filters.status === "" && this.filters.kind === "");
    this.summary.textContent = this.loadError !== ""
      ? this.loadError
      : !this.loaded
      ? "Loading jobs…"
      : `${filtered ? `${visible} shown of ` : ""}${total} job${total === 1 ? "" : "s"}${
        everyJob ? "" : " loaded (more on the server)"
      }${running > 0 ? ` · ${running} running` : ""}`;
    if (this.announce && this.loaded) {
      this.announce = false;
      this.announcer.textContent = this.summary.textContent;
    }
    this.empty.hidden = visible > 0 || !this.loaded;
    this.empty.textContent = total === 0
      ? "No jobs yet. They appear here the moment they are created (POST /jobs)."
      : more && this.filters.id !== ""
      ? "No loaded job matches: press Enter to open this id, or load more."
      : "No job matches these filters.";
    this.more.hidden = !more;
  }

  #renderKinds() {
    const kinds = new Set();
    for (const job of this.jobs.values()) if (job.kind) kinds.add(job.kind);
    const have = new Set([...this.kinds.options].map((o) => o.value));
    for (const kind of [...kinds].sort()) {
      if (have.has(kind)) continue;
      const option = document.createElement("option");
      option.value = kind;
      this.kinds.append(option);
    }
  }

  #tick() {
    const now = Date.now();
    for (const [id, row] of this.rows) {
      const job = this.jobs.get(id);
      if (job !== undefined && !TERMINAL.has(job.status)) updateTimes(row, job, now);
    }
  }
}

/** The filters the server applies, as one key. @param {{status: string, kind: string}} filters */
function serverFilters(filters) {
  return `${filters.status}|${filters.kind}`;
}

/** The server-side filters of the whole list. */
const NO_FILTERS = Object.freeze({ status: "", kind: "" });

/** @param {any} job @param {{status: string, kind: string}} filters */
function matchesServer(job, filters) {
  return (filters.status === "" || job.status === filters.status) &&
    (filters.kind === "" || job.kind === filters.kind);
}

/** @param {string} id */
function makeRow(id) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.jobId = id;
  const title = document.createElement("div");
  title.className = "job-id-wrap";
  const link = document.createElement("a");
  link.className = "job-id";
  link.href = `#/jobs/${encodeURIComponent(id)}`;
  link.textContent = id;
  const kind = document.createElement("span");
  kind.className = "kind";
  title.append(link, kind);
  const badge = document.createElement("span");
  badge.className = "badge";
  const line = document.createElement("div");
  line.className = "line";
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-label", `Progress of job ${id}`);
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const fill = document.createElement("div");
  fill.className = "fill";
  bar.append(fill);
  const pct = document.createElement("span");
  pct.className = "percent";
  line.append(bar, pct);
  const details = document.createElement("div");
  details.className = "details";
  const stage = document.createElement("span");
  stage.className = "stage";
  const message = document.createElement("span");
  message.className = "message";
  const times = document.createElement("span");
  times.className = "times";
  details.append(stage, message, times);
  li.append(title, badge, line, details);
  return { li, link, kind, badge, bar, fill, pct, stage, message, times };
}

/** @param {ReturnType<typeof makeRow>} row @param {any} job @param {number} now */
function updateRow(row, job, now) {
  row.li.dataset.status = job.status;
  row.kind.textContent = job.kind ? displayText(job.kind) : "";
  row.badge.textContent = job.stalled ? `${job.status} · stalled` : job.status;
  row.badge.className = `badge ${job.status}${job.stalled ? " stalled" : ""}`;
  const progress = Math.min(100, Math.max(0, Number(job.progress) || 0));
  row.bar.setAttribute("aria-valuenow", String(progress));
  row.bar.setAttribute("aria-valuetext", `${percent(progress)} (${job.status})`);
  row.bar.dataset.status = job.status;
  row.fill.style.width = `${progress}%`;
  row.pct.textContent = percent(progress);
  row.stage.textContent = job.stage ? `Stage: ${displayText(job.stage)}` : "";
  row.stage.hidden = !job.stage;
  const text = job.error && job.status === "failed" ? job.error.error : job.message;
  row.message.textContent = text ? displayText(text) : "";
  row.message.hidden = !text;
  updateTimes(row, job, now);
}

/** @param {ReturnType<typeof makeRow>} row @param {any} job @param {number} now */
function updateTimes(row, job, now) {
  const eta = etaText(job, now);
  const elapsed = elapsedSeconds(job, now);
  const parts = [];
  if (eta !== null) parts.push(`ETA ${eta}`);
  if (elapsed !== null && job.started_at) {
    parts.push(`${TERMINAL.has(job.status) ? "took" : "elapsed"} ${duration(elapsed)}`);
  }
  row.times.textContent = parts.join(" · ");
}
