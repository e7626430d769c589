/**
 * The live log tail of the job view. Lines are kept in an array and only the rows in
 * view are in the DOM (a pool of absolutely placed rows, reused as the view scrolls), so
 * 10,000 lines cost what 40 do. Appends and scrolls render once per animation frame.
 * Following keeps the newest line in view; scrolling up pauses it, scrolling back to the
 * bottom (or the Follow button) resumes it.
 *
 * @module
 */
import { clock, displayText } from "./format.js";
import { frameScheduler } from "./frame.js";

/** Height of a row, in CSS pixels (matches `.log .row` in style.css). */
const ROW_HEIGHT = 18;
/** Rows rendered above and below the visible ones. */
const OVERSCAN = 10;
/** Most lines kept; older ones are dropped first (the server keeps 10,000 events a job). */
export const MAX_LINES = 50_000;

const LEVELS = { debug: "DEBUG", info: "INFO", warning: "WARN", error: "ERROR", event: "EVENT" };

/**
 * @typedef {object} LogLine
 * @property {number} sequence
 * @property {string} timestamp
 * @property {"debug" | "info" | "warning" | "error" | "event"} level
 * @property {string} text
 * @property {string} [shown] the text as its row shows it (set by `append`)
 */

/** A virtualized, follow-able list of log lines. */
export class LogTail {
  /**
   * @param {HTMLElement} container a scrollable element
   * @param {(following: boolean) => void} onFollowChange
   */
  constructor(container, onFollowChange) {
    this.container = container;
    this.onFollowChange = onFollowChange;
    /** @type {LogLine[]} */
    this.lines = [];
    this.dropped = 0;
    this.following = true;
    this.schedule = frameScheduler(() => this.render());
    this.spacer = document.createElement("div");
    this.spacer.className = "spacer";
    this.placeholder = document.createElement("div");
    this.placeholder.className = "placeholder";
    this.placeholder.textContent = "No log lines yet.";
    /** @type {HTMLElement[]} */
    this.pool = [];
    container.replaceChildren(this.spacer, this.placeholder);
    this.lastScrollTop = 0;
    container.addEventListener("scroll", () => this.#scrolled(), { passive: true });
  }

  /** Number of lines held. */
  get size() {
    return this.lines.length;
  }

  /**
   * Adds a line; it shows on the next frame.
   *
   * @param {LogLine} line
   */
  append(line) {
    // Cleaned once, for every render of its row; the download keeps the text as sent.
    line.shown = displayText(line.text);
    this.lines.push(line);
    if (this.lines.length > MAX_LINES) {
      const extra = this.lines.length - MAX_LINES;
      this.lines.splice(0, extra);
      this.dropped += extra;
    }
    this.schedule();
  }

  /** Removes every line. */
  clear() {
    this.lines = [];
    this.dropped = 0;
    this.schedule();
  }

  /**
   * Follows the newest line, or pauses.
   *
   * @param {boolean} following
   */
  setFollowing(following) {
    if (this.following === following) return;
    this.following = following;
    this.onFollowChange(following);
    this.schedule();
  }

  #scrolled() {
    const el = this.container;
    const top = el.scrollTop;
    const atBottom = top + el.clientHeight >= el.scrollHeight - ROW_HEIGHT;
    // Only a move up is the reader's doing: growth and our own scrolling only go down.
    if (top < this.lastScrollTop - 1 && !atBottom) this.setFollowing(false);
    else if (atBottom && !this.following) this.setFollowing(true);
    this.lastScrollTop = top;
    this.schedule();
  }

  render() {
    const el = this.container;
    const total = this.lines.length;
    this.placeholder.hidden = total > 0;
    this.spacer.style.height = `${total * ROW_HEIGHT}px`;
    if (this.following) {
      el.scrollTop = el.scrollHeight;
      this.lastScrollTop = el.scrollTop;
    }
    const height = el.clientHeight || 400;
    const first = Math.max(0, Math.floor(el.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(total, Math.ceil((el.scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
    const count = Math.max(0, last - first);
    while (this.pool.length < count) {
      const row = document.createElement("div");
      const ts = document.createElement("span");
      ts.className = "ts";
      const lvl = document.createElement("span");
      lvl.className = "lvl";
      row.append(ts, lvl, document.createTextNode(""));
      el.append(row);
      this.pool.push(row);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      if (i >= count) {
        row.hidden = true;
        continue;
      }
      const index = first + i;
      const line = this.lines[index];
      row.hidden = false;
      row.className = `row ${line.level}`;
      row.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
      row.dataset.sequence = String(line.sequence);
      row.childNodes[0].textContent = clock(line.timestamp);
      row.childNodes[1].textContent = LEVELS[line.level];
      // A row is one line high: line breaks inside a log line are shown, not followed.
      row.childNodes[2].textContent = line.shown;
    }
  }

  /** Every line as text, one per line (for the download). */
  text() {
    const head = this.dropped > 0 ? [`… ${this.dropped} older lines not kept by the page`] : [];
    return head.concat(
      this.lines.map((l) => `${l.timestamp} ${LEVELS[l.level].padEnd(5)} #${l.sequence} ${l.text}`),
    ).join("\n") + "\n";
  }
}
