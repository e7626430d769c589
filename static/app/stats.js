/**
 * The server panel: connections, jobs and event rates from `GET /stats`, refreshed every
 * few seconds while the page is visible. `/stats` needs the admin scope; for anyone else
 * the panel says so instead of asking.
 *
 * @module
 */
import { getJson } from "./api.js";
import { duration } from "./format.js";

/** Refresh interval, in milliseconds. */
const REFRESH_MS = 5000;

/** Polls `/stats` and shows it. */
export class StatsPanel {
  constructor() {
    this.figures = /** @type {HTMLElement} */ (document.getElementById("stats-figures"));
    this.note = /** @type {HTMLElement} */ (document.getElementById("stats-note"));
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.running = false;
    this.onVisibility = () => {
      if (this.running && document.visibilityState === "visible") this.refresh();
    };
  }

  /**
   * Starts for a session: polls when the caller may read stats, else explains.
   *
   * @param {{via: string | null, scopes: string[], sub: string | null}} session
   */
  start(session) {
    this.stop();
    const allowed = session.via === "open" || session.scopes.includes("admin");
    if (!allowed) {
      this.showNote(
        `Server statistics need the admin scope${
          session.sub ? `; ${session.sub} does not have it` : ""
        }.`,
      );
      return;
    }
    this.running = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.refresh();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** @param {string} text */
  showNote(text) {
    this.figures.hidden = true;
    this.note.hidden = false;
    this.note.textContent = text;
  }

  async refresh() {
    clearTimeout(this.timer);
    if (!this.running) return;
    try {
      const stats = await getJson("/stats");
      if (!this.running) return;
      this.show(stats);
    } catch (error) {
      if (!this.running) return;
      if (error?.status === 403) {
        this.showNote("Server statistics need the admin scope.");
        this.stop();
        return;
      }
      this.showNote(`Statistics unavailable: ${error?.message ?? error}`);
    }
    if (this.running && document.visibilityState === "visible") {
      this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
    }
  }

  /** @param {any} stats the `/stats` reply */
  show(stats) {
    const set = (id, text) => {
      const node = document.getElementById(id);
      if (node !== null) node.textContent = text;
    };
    const c = stats.connections ?? {};
    set("stat-connections", String(c.total ?? 0));
    set(
      "stat-transports",
      `${c.websocket ?? 0} / ${c.sse ?? 0} / ${c.ndjson ?? 0} / ${c.long_poll ?? 0}`,
    );
    set("stat-jobs", String(stats.jobs?.total ?? 0));
    set("stat-running", String(stats.jobs?.by_status?.running ?? 0));
    set("stat-events-rate", rate(stats.rates?.events_published_per_second));
    set("stat-delivered-rate", rate(stats.rates?.messages_delivered_per_second));
    set("stat-uptime", duration(stats.uptime_seconds ?? NaN));
    this.figures.hidden = false;
    this.note.hidden = true;
  }
}

/** @param {unknown} value events per second */
function rate(value) {
  const n = typeof value === "number" && Number.isFinite(value) ? value : 0;
  return n >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10);
}
