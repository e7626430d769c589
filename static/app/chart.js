/**
 * The job view's chart of progress over time: an inline SVG line (and area) from the
 * job's progress events, drawn at most once per animation frame.
 *
 * @module
 */
import { duration } from "./format.js";
import { frameScheduler } from "./frame.js";

const SVG = "http://www.w3.org/2000/svg";
const PAD = { left: 26, right: 6, top: 6, bottom: 16 };
/** Most points drawn; beyond it every other point is dropped (the line looks the same). */
const MAX_POINTS = 2000;

/** Progress (0–100) against time. */
export class ProgressChart {
  /**
   * @param {SVGSVGElement} svg
   * @param {HTMLElement} caption
   */
  constructor(svg, caption) {
    this.svg = svg;
    this.caption = caption;
    /** @type {{t: number, p: number}[]} */
    this.points = [];
    /** Progress updates added: past {@link MAX_POINTS}, more than the points drawn. */
    this.updates = 0;
    this.schedule = frameScheduler(() => this.render());
    // Drawn in the element's own pixels, so text and lines keep their shape at any width.
    new ResizeObserver(() => this.schedule()).observe(svg);
    this.render();
  }

  /** Forgets every point (another job is shown). */
  clear() {
    this.points = [];
    this.updates = 0;
    this.schedule();
  }

  /**
   * Adds a point.
   *
   * @param {string} timestamp ISO time of the event
   * @param {number} progress 0–100
   */
  add(timestamp, progress) {
    const t = Date.parse(timestamp);
    if (Number.isNaN(t) || typeof progress !== "number") return;
    const last = this.points[this.points.length - 1];
    if (last !== undefined && t < last.t) return;
    this.points.push({ t, p: Math.min(100, Math.max(0, progress)) });
    this.updates++;
    if (this.points.length > MAX_POINTS) {
      this.points = this.points.filter((_, i) => i % 2 === 0 || i === this.points.length - 1);
    }
    this.schedule();
  }

  render() {
    const svg = this.svg;
    const width = Math.max(120, Math.round(svg.clientWidth || 320));
    const height = Math.max(60, Math.round(svg.clientHeight || 120));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const children = [];
    for (const value of [0, 50, 100]) {
      const y = PAD.top + plotH * (1 - value / 100);
      children.push(
        el("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y, y2: y }),
      );
      children.push(
        el("text", { class: "axis", x: PAD.left - 4, y: y + 3, "text-anchor": "end" }, `${value}`),
      );
    }
    const points = this.points;
    this.svg.dataset.points = String(points.length);
    if (points.length > 0) {
      const t0 = points[0].t;
      const span = Math.max(1, points[points.length - 1].t - t0);
      const xy = points.map(({ t, p }) => [
        PAD.left + plotW * (points.length === 1 ? 1 : (t - t0) / span),
        PAD.top + plotH * (1 - p / 100),
      ]);
      const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
      const [firstX] = xy[0];
      const [lastX] = xy[xy.length - 1];
      const bottom = PAD.top + plotH;
      children.push(el("polygon", {
        class: "area",
        points: `${firstX.toFixed(1)},${bottom} ${line} ${lastX.toFixed(1)},${bottom}`,
      }));
      children.push(el("polyline", { class: "curve", points: line }));
      const [x, y] = xy[xy.length - 1];
      children.push(el("circle", { class: "now", cx: x.toFixed(1), cy: y.toFixed(1), r: 3 }));
      children.push(
        el(
          "text",
          { class: "axis", x: width - PAD.right, y: height - 3, "text-anchor": "end" },
          duration(span / 1000),
        ),
      );
      const latest = points[points.length - 1].p;
      this.caption.textContent = `Progress over time: ${Math.round(latest * 10) / 10}% after ${
        duration(span / 1000)
      } (${this.updates.toLocaleString("en")} update${this.updates === 1 ? "" : "s"})`;
    } else {
      this.caption.textContent = "Progress over time: no progress reported yet";
    }
    svg.replaceChildren(...children);
  }
}

/**
 * @param {string} name
 * @param {Record<string, string | number>} attrs
 * @param {string} [text]
 */
function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}
