/**
 * The connection indicator in the top bar: the state of one watcher (the job view's,
 * else the job list's), its transport, round trip and quality, and the offline mode the
 * list falls back to while no stream gets through.
 *
 * @module
 */
import { clock, TRANSPORT_NAMES } from "./format.js";
import { frameScheduler } from "./frame.js";

const WATCHED = [
  "connected",
  "disconnected",
  "reconnecting",
  "quality",
  "transport",
  "closed",
  "max_reconnect_attempts",
];

/** Shows the state of the watcher it is given. */
export class ConnectionIndicator {
  /** @param {HTMLElement} element */
  constructor(element) {
    this.element = element;
    this.text = /** @type {HTMLElement} */ (element.querySelector(".connection-text"));
    // Announced to screen readers: state changes only, not every round trip.
    this.live = /** @type {HTMLElement} */ (element.querySelector("[role=status]"));
    /** @type {any} */
    this.watcher = undefined;
    /** @type {(() => void)[]} */
    this.unsubscribe = [];
    this.attempt = 0;
    this.closedReason = "";
    /** @type {string | null} when the list last refreshed by polling (offline mode) */
    this.offlineAt = null;
    /** Renders on the next frame (several events in a row render once). */
    this.update = frameScheduler(() => this.render());
  }

  /**
   * Follows `watcher` (or nothing).
   *
   * @param {any} watcher a watcher from `/client.js`
   */
  show(watcher) {
    if (watcher === this.watcher && watcher !== undefined) return;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.watcher = watcher;
    this.attempt = 0;
    this.closedReason = "";
    if (watcher !== undefined) {
      for (const name of WATCHED) {
        this.unsubscribe.push(watcher.on(name, (payload) => {
          if (name === "reconnecting") this.attempt = payload.attempt;
          if (name === "connected") this.attempt = 0;
          if (name === "closed") this.closedReason = payload.reason;
          this.update();
        }));
      }
    }
    this.update();
  }

  /**
   * Marks the offline mode: the list is refreshed by polling (`at` is the time of the last
   * try, `refreshed` whether it worked), or `null` when streaming again.
   *
   * @param {string | null} at
   * @param {boolean} [refreshed]
   */
  setOffline(at, refreshed = true) {
    this.offlineAt = at;
    this.offlineRefreshed = refreshed;
    this.update();
  }

  render() {
    const w = this.watcher;
    const el = this.element;
    if (w === undefined) {
      el.dataset.state = "idle";
      el.dataset.transport = "";
      el.dataset.quality = "unknown";
      this.text.textContent = "Not connected";
      this.#announce("");
      return;
    }
    const state = w.state;
    const transport = w.transport ?? "";
    const name = TRANSPORT_NAMES[transport] ?? "—";
    el.dataset.state = this.offlineAt !== null && state !== "connected" ? "offline" : state;
    el.dataset.transport = transport;
    el.dataset.quality = w.quality;
    el.dataset.rtt = w.rttMs === null ? "" : String(Math.round(w.rttMs));
    let text;
    switch (state) {
      case "connected": {
        const parts = ["Live", name];
        if (w.rttMs !== null) parts.push(`${Math.round(w.rttMs)} ms`);
        if (w.quality !== "unknown") parts.push(w.quality);
        text = parts.join(" · ");
        break;
      }
      case "connecting":
        text = `Connecting over ${name}…`;
        break;
      case "reconnecting":
        text = `Reconnecting over ${name}${this.attempt > 0 ? ` (attempt ${this.attempt})` : ""}…`;
        break;
      default:
        text = this.closedReason === "finished"
          ? "Job finished · stream closed"
          : `Disconnected${this.closedReason ? `: ${this.closedReason}` : ""}`;
    }
    if (this.offlineAt !== null && state !== "connected") {
      const at = clock(this.offlineAt).slice(0, 8);
      text += this.offlineRefreshed === false
        ? ` · offline mode, cannot refresh (tried ${at})`
        : ` · offline mode, refreshed ${at}`;
    }
    this.text.textContent = text;
    el.title = text;
    this.#announce(
      el.dataset.state === "connected"
        ? `Connected over ${name}`
        : el.dataset.state === "offline"
        ? "Offline: refreshing by polling"
        : state === "reconnecting"
        ? "Connection lost: reconnecting"
        : state === "closed"
        ? text
        : "",
    );
  }

  /** @param {string} words */
  #announce(words) {
    if (this.live.textContent !== words) this.live.textContent = words;
  }
}
