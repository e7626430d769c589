/**
 * What every stream route shares: the session context of a principal, `since` and
 * `Last-Event-ID` parsing, transport negotiation.
 *
 * @module
 */
import type { AppDeps } from "./app.ts";
import { canRead, type Principal } from "../auth/principal.ts";
import { CLOSE, type Session, type SessionContext } from "../protocol/session.ts";
import { log, logs } from "../log.ts";
import type { Outbox, OutboxLimits } from "../protocol/outbox.ts";
import type { Job, JobRecord } from "../jobs/job.ts";
import type { MessageFormat, Transport } from "../protocol/codec.ts";
import { ApiError } from "./errors.ts";
import { ReplayAllowance } from "../protocol/replay_allowance.ts";
import { SLOW_CONSUMER_REASON } from "../protocol/outbox.ts";

/** Bytes a socket or stream may hold unsent before frames wait in the session outbox. */
export const STREAM_HIGH_WATER = 256 * 1024;

/**
 * Bytes one replay writes before the client must resume with `since` (a connection closed
 * with 4008): what a client that does not read can make the server hold per stream.
 */
export const MAX_REPLAY_BYTES = 16 * 1024 * 1024;

/**
 * The session context of one connection of `principal`.
 *
 * @param release gives back the connection slot when the connection is over (which for a
 *   client that stopped reading may be long after the session closed)
 */
export function sessionContext(
  deps: AppDeps,
  principal: Principal,
  release: () => void,
  ip: string,
): SessionContext {
  return new StreamContext(deps, principal, release, ip);
}

/** What every connection of one server shares: outbox bounds and the backlog hook. */
interface Shared {
  limits: OutboxLimits;
  onBacklog: (outbox: Outbox) => void;
  replays: ReplayAllowance;
}
const sharedOf = new WeakMap<AppDeps, Shared>();

/**
 * A connection's context: its fields, with methods shared by every connection (a server
 * holds thousands of idle ones; closures per connection would cost each about 400 bytes).
 */
class StreamContext implements SessionContext {
  readonly hub: AppDeps["hub"];
  readonly limits: OutboxLimits;
  /** A shared function, not a method: the session hands it to its outbox on its own. */
  readonly onBacklog: (outbox: Outbox) => void;
  readonly window: number;
  readonly replays: ReplayAllowance;
  readonly expiresAt: number | null;
  readonly tokenId: string | undefined;
  readonly #deps: AppDeps;
  readonly #principal: Principal;
  readonly #release: () => void;
  /** The client's address and when the stream opened, for the log. */
  readonly #ip: string;
  readonly #openedAt = Date.now();
  /** 0 open, 1 closed but the connection not over yet (counted in `Sessions.closing`), 2 over. */
  #state: 0 | 1 | 2 = 0;

  constructor(
    deps: AppDeps,
    principal: Principal,
    release: () => void,
    ip: string,
  ) {
    this.hub = deps.hub;
    let shared = sharedOf.get(deps);
    if (shared === undefined) {
      shared = {
        limits: {
          highWater: STREAM_HIGH_WATER,
          maxQueued: deps.config.sendBuffer,
          // As many events of the largest size as the send buffer holds: 64 MiB by default.
          maxUnread: deps.config.sendBuffer * deps.config.maxEventBytes,
          maxReplay: MAX_REPLAY_BYTES,
        },
        onBacklog: (outbox) => deps.sessions.backlogged(outbox),
        replays: new ReplayAllowance(),
      };
      sharedOf.set(deps, shared);
    }
    this.limits = shared.limits;
    this.onBacklog = shared.onBacklog;
    this.replays = shared.replays;
    this.window = deps.config.replayWindow;
    this.expiresAt = principal.expiresAt;
    this.tokenId = principal.token?.tokenId;
    this.#deps = deps;
    this.#principal = principal;
    this.#release = release;
    this.#ip = ip;
  }

  onOpen(session: Session): void {
    if (!logs("debug")) return;
    log("debug", "stream opened", {
      transport: session.transport,
      sub: this.#principal.sub ?? undefined,
      ip: this.#ip,
    });
  }

  revoked(): boolean {
    return this.#deps.authenticator?.isRevoked(this.#principal.token) ?? false;
  }

  job(id: string): JobRecord | undefined {
    return this.#deps.store.getJob(id);
  }

  visible(job: Job): boolean {
    return canRead(this.#principal, job);
  }

  onClose(session: Session): void {
    this.#deps.sessions.remove(session);
    // Given by the server (a finished job, a slow consumer, a lapsed token, a shutdown), or
    // none: the client left first. A replay cut to go on (4008 too) is routine, and counted
    // apart from consumers too slow to keep up.
    const closed = session.outbox.closedWith;
    const slow = closed?.reason === SLOW_CONSUMER_REASON;
    const code = closed === undefined
      ? "client"
      : closed.code === CLOSE.slowConsumer && !slow
      ? "replay"
      : String(closed.code);
    this.#deps.stats.closed(code);
    // A consumer too slow to keep up is an operator's business; the other ends are routine.
    const level = slow ? "info" : "debug";
    if (logs(level)) {
      log(level, "stream closed", {
        transport: session.transport,
        jobs: session.followed || undefined,
        code: closed?.code ?? "client",
        reason: closed?.reason,
        seconds: Math.round((Date.now() - this.#openedAt) / 100) / 10,
        sub: this.#principal.sub ?? undefined,
        ip: this.#ip,
      });
    }
    if (this.#state === 0) {
      this.#state = 1;
      this.#deps.sessions.closing++;
    }
  }

  onEnded(): void {
    if (this.#state === 2) return;
    if (this.#state === 1) this.#deps.sessions.closing--;
    this.#state = 2;
    this.#release();
  }
}

/** A `since` for every job, or one per job (`a:5,b:7`). */
export type Since = { all: number | null; perJob: ReadonlyMap<string, number> };

/** `perJob` of a `since` that names no job (most streams): one map for all of them. */
const NO_JOBS: ReadonlyMap<string, number> = new Map();

const SEQUENCE = /^\d{1,15}$/;

/**
 * Parses `since` (a sequence, or `job:seq` pairs separated by commas).
 *
 * @throws {ApiError} 422 naming the bad part
 */
export function parseSince(value: string | undefined): Since {
  if (value === undefined || value === "") return { all: null, perJob: NO_JOBS };
  if (SEQUENCE.test(value)) return { all: Number(value), perJob: NO_JOBS };
  const perJob = new Map<string, number>();
  for (const part of value.split(",")) {
    const colon = part.lastIndexOf(":");
    const seq = part.slice(colon + 1);
    if (colon <= 0 || !SEQUENCE.test(seq)) {
      throw new ApiError("invalid_query", "since must be a sequence number or job:sequence pairs", [
        { path: "since", message: `Cannot read ${JSON.stringify(part).slice(0, 80)}` },
      ]);
    }
    perJob.set(part.slice(0, colon), Number(seq));
  }
  return { all: null, perJob };
}

/** The `since` of one job: its own entry, else the global one. */
export function sinceFor(since: Since, jobId: string): number | null {
  return since.perJob.get(jobId) ?? since.all;
}

/**
 * Reads `Last-Event-ID` for a stream of `jobIds` (in query order): a number for one job,
 * a comma-separated list of numbers (this server's multi-job ids) for several.
 * Returns `undefined` when absent or unusable (a browser may send a stale one).
 */
export function lastEventId(header: string | null, jobIds: readonly string[]): Since | undefined {
  if (header === null || header.trim() === "") return undefined;
  const parts = header.trim().split(",");
  if (!parts.every((p) => SEQUENCE.test(p))) return undefined;
  if (jobIds.length <= 1 && parts.length === 1) return { all: Number(parts[0]), perJob: NO_JOBS };
  if (parts.length !== jobIds.length) return undefined;
  return { all: null, perJob: new Map(jobIds.map((id, i) => [id, Number(parts[i])])) };
}

/** Media types a stream route can answer with, in the order that wins a tie of `q`. */
const MEDIA: readonly [string, Transport | "json"][] = [
  ["text/event-stream", "sse"],
  ["application/x-ndjson", "ndjson"],
  ["application/jsonl", "ndjson"],
  ["application/json", "json"],
];

/** One range of an `Accept` header: `type/subtype` (either may be `*`) and its `q`. */
interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

function mediaRanges(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const range of accept.toLowerCase().split(",")) {
    const [media = "", ...params] = range.split(";").map((part) => part.trim());
    const slash = media.indexOf("/");
    if (slash <= 0) continue;
    const qParam = params.find((p) => /^q\s*=/.test(p));
    const q = qParam === undefined ? 1 : Number(qParam.slice(qParam.indexOf("=") + 1).trim());
    // A q that is no number is taken as absent (1), not as a refusal.
    ranges.push({
      type: media.slice(0, slash),
      subtype: media.slice(slash + 1),
      q: Number.isFinite(q) ? Math.min(1, Math.max(0, q)) : 1,
    });
  }
  return ranges;
}

/**
 * The `q` the ranges give `media`: that of the most specific range that matches it
 * (`type/subtype`, then `type/*`, then `*\/*`), or `undefined` when none does.
 */
function qualityOf(ranges: readonly MediaRange[], media: string): number | undefined {
  const [type, subtype] = media.split("/") as [string, string];
  let best: { q: number; specificity: number } | undefined;
  for (const range of ranges) {
    const specificity = range.type === type && range.subtype === subtype
      ? 2
      : range.type === type && range.subtype === "*"
      ? 1
      : range.type === "*" && range.subtype === "*"
      ? 0
      : -1;
    if (specificity >= 0 && (best === undefined || specificity > best.specificity)) {
      best = { q: range.q, specificity };
    }
  }
  return best?.q;
}

/**
 * The transport an `Accept` header prefers: the type named outright with the highest `q`
 * among those a stream route serves (a tie goes to the first in {@link MEDIA}). Wildcards
 * and other types fall back to a JSON page, as browsers' and curl's `*\/*` expect, unless a
 * range refuses JSON (`application/json;q=0`, `application/*;q=0`, `*\/*;q=0`): then the
 * stream type the ranges rate highest (a wildcard counts), if any.
 *
 * @throws {ApiError} 406 `not_acceptable` when every type the URL could answer is refused
 */
function preferredTransport(accept: string, page: boolean): Transport | "json" {
  const ranges = mediaRanges(accept);
  let best: Transport | "json" | undefined;
  let bestQ = 0;
  for (const [media, transport] of MEDIA) {
    const named = ranges.filter((r) => `${r.type}/${r.subtype}` === media);
    const q = named.length === 0 ? 0 : Math.max(...named.map((r) => r.q));
    if (q > bestQ) {
      best = transport;
      bestQ = q;
    }
  }
  if (best !== undefined) return best;
  const jsonQ = qualityOf(ranges, "application/json");
  if (jsonQ === undefined || jsonQ > 0 || !page) return "json";
  // JSON refused: a stream that a wildcard accepts will do.
  let stream: Transport | undefined;
  let streamQ = 0;
  for (const [media, transport] of MEDIA) {
    if (transport === "json") continue;
    const q = qualityOf(ranges, media) ?? 0;
    if (q > streamQ) {
      stream = transport;
      streamQ = q;
    }
  }
  if (stream !== undefined) return stream;
  throw new ApiError(
    "not_acceptable",
    "Accept refuses every type this URL answers: application/json (a page), " +
      "text/event-stream or application/x-ndjson",
  );
}

/**
 * The transport and message format a stream request asks for, or `json` for a page.
 *
 * @param page whether the URL answers a JSON page (else `json` stands for its default stream)
 */
export function negotiate(
  accept: string | null,
  format: string | undefined,
  page = true,
): { transport: Transport | "json"; format: MessageFormat } {
  const messageFormat: MessageFormat = format === "snapshot" ? "snapshot" : "envelope";
  if (format === "ndjson") return { transport: "ndjson", format: messageFormat };
  if (format === "sse") return { transport: "sse", format: messageFormat };
  if (format === "json") return { transport: "json", format: messageFormat };
  return { transport: preferredTransport(accept ?? "", page), format: messageFormat };
}

/** Splits `jobs=a,b` into ids; throws 422 for too many. */
export function jobList(value: string | undefined, max: number): string[] {
  if (value === undefined || value.trim() === "") return [];
  const ids = [...new Set(value.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
  if (ids.length > max) {
    throw new ApiError("invalid_query", `At most ${max} jobs per stream`, [
      { path: "jobs", message: `${ids.length} jobs given` },
    ]);
  }
  return ids;
}
