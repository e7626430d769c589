/**
 * Finding progress in a line of a program's output: a percentage (`45%`, `45.5 %`), a
 * count (`12/200`, `[3/10]`), a size (`12.3/45.6 MB`, `512kB/1.2MB`), as printed by
 * tqdm, pip, wget, git, Keras, docker and most build tools, with an ETA when the line
 * has one (`[00:01<00:03, …]`, `eta 0:00:03`, `ETA: 3s`, `eta 1m 30s`).
 *
 * Rules that keep ordinary text from reading as progress:
 *
 * - A percentage is 0–100, not signed (`-5%`, `+5%` are changes, not progress), not glued
 *   to a word or a number (`x45%`, `1,045%`, `%20`, `%d`).
 * - A count is two integers `current/total` with `current ≤ total` and `total ≥ 1`,
 *   without leading zeros, not part of a longer slash-separated run (`2024/01/02`,
 *   `10/20/2024`, `a/12/200`), a URL, an address (`10.0.0.0/24`), a time (`12/30:00`)
 *   or a word (`12/200px`).
 * - Decimal counts are progress only with a size unit (`12.3/45.6 MB`): `1.2/3`, which
 *   reads like a version or a score, is not.
 * - A line with both a percentage and a count takes the percentage; the count is
 *   attached (`current`, `total`) when it agrees with it within one point.
 * - Known false positive, left in on purpose: a date without year such as `12/25` reads
 *   as 48 %. Requiring a keyword (`step`, `epoch`…) would miss too many real counters.
 *
 * @module
 */

/** Progress found in a line, shaped as the data of a `progress` event. */
export interface ParsedProgress {
  /** Percent complete, 0–100, at most two decimals. */
  progress: number;
  /** Items done, when the line counts items (`12` of `12/200`). */
  current?: number;
  /** Items in all, when the line counts items. */
  total?: number;
  /** Seconds left, when the line says. */
  eta_seconds?: number;
  /** Label before the percentage, such as `Receiving objects` in git's output. */
  stage?: string;
}

const PERCENT = /(?<![\w.,+\-\/])(\d{1,3}(?:\.\d+)?) ?%(?![\w%])/;
const COUNT = /(?<![\w.,+\-\/:])(0|[1-9]\d*)\/([1-9]\d*)(?![\w\/]|[.:]\d)/g;
const UNIT = "(?:[kKMGTP]i?B?|B|bytes)";
const SIZE = new RegExp(
  `(?<![\\w.,+\\-\\/:])(\\d+(?:\\.\\d+)?) ?(${UNIT})?\\/(\\d+(?:\\.\\d+)?) ?(${UNIT})(?![\\w\\/])`,
);
const TQDM_ETA = /\[(?:\d+:)?\d{1,2}:\d\d<((?:\d+:)?\d{1,2}:\d\d)/;
const ETA =
  /\beta:?\s*((?:\d+:)?\d{1,2}:\d\d\b|(?:\d+d ?)?(?:\d+h ?)?(?:\d+m ?)?(?:\d+(?:\.\d+)?s)?)/i;
/** Longest stage label taken from the text before a percentage. */
const MAX_STAGE = 60;

/** Characters without which a line cannot hold progress (a cheap test before the regexes). */
const MAYBE = /[%\/]/;

/**
 * The progress a line shows, or `undefined`. The line should already be free of escape
 * sequences (see `cleanLine`).
 *
 * @example
 * ```ts
 * parseProgress(" 45%|████▌     | 45/100 [00:01<00:01, 50.00it/s]");
 * // { progress: 45, current: 45, total: 100, eta_seconds: 1 }
 * parseProgress("2024/01/02 10:00:00 started"); // undefined
 * ```
 */
export function parseProgress(line: string): ParsedProgress | undefined {
  if (!MAYBE.test(line)) return undefined;
  const count = findCount(line);
  const percent = PERCENT.exec(line);
  let found: ParsedProgress | undefined;
  if (percent !== null) {
    const value = Number(percent[1]);
    if (value <= 100) {
      found = { progress: round(value) };
      if (count !== undefined && Math.abs((count.current / count.total) * 100 - value) <= 1) {
        found.current = count.current;
        found.total = count.total;
      }
      const stage = stageBefore(line.slice(0, percent.index));
      if (stage !== undefined) found.stage = stage;
    }
  }
  if (found === undefined && count !== undefined) {
    found = {
      progress: round((count.current / count.total) * 100),
      current: count.current,
      total: count.total,
    };
  }
  if (found === undefined) {
    const size = findSize(line);
    if (size !== undefined) found = { progress: size };
  }
  if (found === undefined) return undefined;
  const eta = findEta(line);
  if (eta !== undefined) found.eta_seconds = eta;
  return found;
}

function round(value: number): number {
  return Math.min(100, Math.max(0, Math.round(value * 100) / 100));
}

function findCount(line: string): { current: number; total: number } | undefined {
  COUNT.lastIndex = 0;
  for (let match = COUNT.exec(line); match !== null; match = COUNT.exec(line)) {
    const current = Number(match[1]);
    const total = Number(match[2]);
    if (Number.isSafeInteger(total) && current <= total) return { current, total };
  }
  return undefined;
}

const PREFIX: Readonly<Record<string, number>> = { k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** Bytes per unit: `kB`/`K` are 1000, `KiB`/`Ki` 1024, a bare `B` or `bytes` 1. */
function unitFactor(unit: string): number {
  if (unit === "B" || unit === "bytes") return 1;
  const prefix = PREFIX[unit[0]!] ?? (unit[0] === "P" ? 1e15 : 1);
  if (unit[1] !== "i") return prefix;
  const power = Math.round(Math.log10(prefix) / 3);
  return 1024 ** power;
}

function findSize(line: string): number | undefined {
  const match = SIZE.exec(line);
  if (match === null) return undefined;
  const totalUnit = match[4]!;
  const current = Number(match[1]) * unitFactor(match[2] ?? totalUnit);
  const total = Number(match[3]) * unitFactor(totalUnit);
  if (!(total > 0) || current > total) return undefined;
  return round((current / total) * 100);
}

/** Seconds of `1:02:03`, `02:03`, `1d2h`, `1m 30s`, `3.5s`; `undefined` for anything else. */
export function parseEtaText(text: string): number | undefined {
  const clock = /^(?:(\d+):)?(\d{1,2}):(\d\d)$/.exec(text);
  if (clock !== null) {
    return Number(clock[1] ?? 0) * 3600 + Number(clock[2]) * 60 + Number(clock[3]);
  }
  const parts = /^(?:(\d+)d ?)?(?:(\d+)h ?)?(?:(\d+)m ?)?(?:(\d+(?:\.\d+)?)s)?$/.exec(text.trim());
  if (parts === null || text.trim() === "") return undefined;
  const [, d, h, m, s] = parts;
  return Math.round(
    Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(m ?? 0) * 60 + Number(s ?? 0),
  );
}

function findEta(line: string): number | undefined {
  const tqdm = TQDM_ETA.exec(line);
  if (tqdm !== null) return parseEtaText(tqdm[1]!);
  const eta = ETA.exec(line);
  if (eta === null || eta[1] === undefined || eta[1].trim() === "") return undefined;
  return parseEtaText(eta[1].trim());
}

function stageBefore(text: string): string | undefined {
  const trimmed = text.trim();
  if (!trimmed.endsWith(":")) return undefined;
  const stage = trimmed.slice(0, -1).trim();
  return stage === "" || stage.length > MAX_STAGE ? undefined : stage;
}
