/**
 * The other isolates of this server, for whole-server figures: named counts each isolate
 * keeps current by posting every change (watchers per job for `X-Watchers`, open streams
 * per principal and per IP for the connection limits), what publish buckets spent (for
 * the rate limit), and their stats on request (for `/stats` and `/metrics`). A
 * single-isolate server has no peers.
 *
 * @module
 */
import { logError } from "../log.ts";

/** One isolate's figures, as `/stats` adds them up. */
export interface IsolateFigures {
  connections: { websocket: number; sse: number; ndjson: number; long_poll: number };
  /** Connections closed by the server whose client has not taken the close yet. */
  closing: number;
  opened: number;
  published: number;
  delivered: number;
  gapFills: number;
  /** Replayed events taken from memory, and read from the store. */
  replayedFromMemory: number;
  replayedFromStore: number;
  /** Bytes of recent events kept in memory for replays. */
  replayCacheBytes: number;
  commits: number;
  appends: number;
  lockWaits: number;
  buffered: number;
  serverErrors: number;
  storageErrors: number;
  longPolls: number;
  jobsCreated: number;
  publishedPerSecond: number;
  deliveredPerSecond: number;
  perJob: Record<string, { connections: number; last_sequence: number }>;
  /** Error answers by error code (see `Stats.refusals`). */
  refusals: Record<string, number>;
  /** Streams ended by close code, or `client` (see `Stats.closes`). */
  closes: Record<string, number>;
}

/**
 * Messages between isolates. Count changes are numbered by their sender (`n`), and
 * `alive` says the latest number: a receiver that finds one missing (Deno's channel drops
 * messages of a receiver that falls behind, and under load has lost a single one outright)
 * asks for the sender's whole counts (`resync`) and replaces what it had of them, so a
 * count is never left wrong until the next change of the same key.
 */
type Wire =
  | { kind: "hello"; from: string }
  | { kind: "alive"; from: string; n: number }
  | { kind: "bye"; from: string }
  | { kind: "unlocked"; from: string }
  | { kind: "count"; from: string; key: string; count: number; n: number }
  | { kind: "spent"; from: string; spent: Record<string, number> }
  | { kind: "revoked"; from: string; tokenId: string }
  | { kind: "fault"; from: string; at: number }
  | { kind: "resync"; from: string; to: string }
  | { kind: "counts"; from: string; to: string; counts: Record<string, number>; n: number }
  | { kind: "stats-request"; from: string; id: number }
  | { kind: "stats-reply"; from: string; to: string; id: number; figures: IsolateFigures };

/** Key of the count of subscribers to every job (`all=1` streams). */
export const FIREHOSE_KEY = "firehose";

/** Key of the watcher count of a job. */
export function watcherKey(jobId: string): string {
  return `w:${jobId}`;
}

/** Milliseconds of silence after which a peer is considered gone. */
const PEER_TIMEOUT_MS = 5000;
const ALIVE_INTERVAL_MS = 1000;
/** Least time between two requests for the same isolate's counts. */
const RESYNC_GAP_MS = 250;

/** Knowledge of, and requests to, the other isolates. */
export class Peers {
  readonly id = crypto.randomUUID();
  #channel: BroadcastChannel | undefined;
  #seen = new Map<string, number>();
  /** key → isolate → count there. */
  #counts = new Map<string, Map<string, number>>();
  #local: () => Record<string, number>;
  #figures: () => IsolateFigures;
  #pending = new Map<number, { replies: IsolateFigures[]; from: Set<string>; done: () => void }>();
  /** Each other isolate's figures as it last gave them here. */
  #lastFigures = new Map<string, IsolateFigures>();
  #nextRequest = 1;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Count changes posted so far (the number of the last one). */
  #countsSent = 0;
  /** Per other isolate: the number of its last count change applied here. */
  #countsHeard = new Map<string, number>();
  /** Per other isolate: when its whole counts were last asked for. */
  #resyncAsked = new Map<string, number>();
  /** Other isolates whose counts here missed a change, until their whole counts come. */
  #stale = new Set<string>();

  /**
   * @param name channel name shared by the isolates of one server, or `undefined` for a
   *   server with a single isolate
   * @param localCounts this isolate's counts (sent to isolates that join)
   * @param figures this isolate's figures (sent on request)
   * @param channel the channel to use (tests pass one that loses messages)
   */
  constructor(
    name: string | undefined,
    localCounts: () => Record<string, number>,
    figures: () => IsolateFigures,
    channel?: BroadcastChannel,
  ) {
    this.#local = localCounts;
    this.#figures = figures;
    if (name === undefined) return;
    channel ??= new BroadcastChannel(name);
    this.#channel = channel;
    channel.onmessage = (e: MessageEvent<Wire>) => {
      try {
        this.#receive(e.data);
      } catch (error) {
        logError("message from another isolate failed", error);
      }
    };
    this.#post({ kind: "hello", from: this.id });
    const timer = setInterval(() => {
      this.#post({ kind: "alive", from: this.id, n: this.#countsSent });
      this.#forgetSilent();
    }, ALIVE_INTERVAL_MS);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #post(message: Wire): void {
    this.#channel?.postMessage(message);
  }

  #receive(message: Wire): void {
    if ("to" in message && message.to !== this.id) return;
    this.#seen.set(message.from, Date.now());
    switch (message.kind) {
      case "hello":
        this.#post({ kind: "alive", from: this.id, n: this.#countsSent });
        this.#sendCounts(message.from);
        break;
      case "resync":
        this.#sendCounts(message.from);
        break;
      case "bye":
        this.#forget(message.from);
        break;
      case "count": {
        const heard = this.#countsHeard.get(message.from);
        this.#countsHeard.set(message.from, message.n);
        this.#setCount(message.key, message.from, message.count);
        if (heard === undefined || message.n > heard + 1) {
          this.#stale.add(message.from);
          this.#resync(message.from);
        }
        break;
      }
      case "spent":
        this.onSpent(message.spent);
        break;
      case "revoked":
        this.onRevoked(message.tokenId);
        break;
      case "fault":
        this.onFault(message.at);
        break;
      case "counts":
        // The isolate's whole counts as of its change n: they replace what was known.
        this.#dropCounts(message.from);
        for (const [key, count] of Object.entries(message.counts)) {
          this.#setCount(key, message.from, count);
        }
        this.#countsHeard.set(message.from, message.n);
        this.#stale.delete(message.from);
        break;
      case "stats-request":
        this.#post({
          kind: "stats-reply",
          from: this.id,
          to: message.from,
          id: message.id,
          figures: this.#figures(),
        });
        break;
      case "stats-reply": {
        const pending = this.#pending.get(message.id);
        if (pending === undefined || pending.from.has(message.from)) return;
        pending.from.add(message.from);
        pending.replies.push(message.figures);
        this.#lastFigures.set(message.from, message.figures);
        if (pending.from.size >= this.#liveCount()) pending.done();
        break;
      }
      case "unlocked":
        this.onUnlocked();
        break;
      case "alive": {
        const heard = this.#countsHeard.get(message.from);
        if (heard === undefined || message.n > heard) this.#stale.add(message.from);
        // Asked again at every alive until the whole counts come (a request may be lost).
        if (this.#stale.has(message.from)) this.#resync(message.from);
        break;
      }
    }
  }

  #sendCounts(to: string): void {
    this.#post({ kind: "counts", from: this.id, to, counts: this.#local(), n: this.#countsSent });
  }

  /** Asks an isolate for its whole counts: a change of it was lost, or none came yet. */
  #resync(isolate: string): void {
    const now = Date.now();
    if (now - (this.#resyncAsked.get(isolate) ?? -Infinity) < RESYNC_GAP_MS) return;
    this.#resyncAsked.set(isolate, now);
    this.#post({ kind: "resync", from: this.id, to: isolate });
  }

  #dropCounts(isolate: string): void {
    for (const [key, byIsolate] of this.#counts) {
      byIsolate.delete(isolate);
      if (byIsolate.size === 0) this.#counts.delete(key);
    }
  }

  #setCount(key: string, isolate: string, count: number): void {
    let byIsolate = this.#counts.get(key);
    if (count === 0) {
      byIsolate?.delete(isolate);
      if (byIsolate?.size === 0) this.#counts.delete(key);
      return;
    }
    if (byIsolate === undefined) {
      byIsolate = new Map();
      this.#counts.set(key, byIsolate);
    }
    byIsolate.set(isolate, count);
  }

  #forget(isolate: string): void {
    this.#seen.delete(isolate);
    this.#lastFigures.delete(isolate);
    this.#countsHeard.delete(isolate);
    this.#resyncAsked.delete(isolate);
    this.#stale.delete(isolate);
    this.#dropCounts(isolate);
  }

  #forgetSilent(): void {
    const now = Date.now();
    for (const [isolate, at] of this.#seen) if (now - at > PEER_TIMEOUT_MS) this.#forget(isolate);
  }

  #liveCount(): number {
    this.#forgetSilent();
    return this.#seen.size;
  }

  /** Number of other isolates heard from recently. */
  get count(): number {
    return this.#liveCount();
  }

  /** Called when another isolate has committed (released the database's write lock). */
  onUnlocked: () => void = () => {};

  /** Tells the others this isolate has just committed. */
  unlocked(): void {
    if (this.#channel !== undefined && this.#seen.size > 0) {
      this.#post({ kind: "unlocked", from: this.id });
    }
  }

  /** Whether there are other isolates to tell (a single-isolate server has none). */
  get shared(): boolean {
    return this.#channel !== undefined;
  }

  /** Called when the database failed another isolate's request for good (see `faults.ts`). */
  onFault: (at: number) => void = () => {};

  /** Tells the others the database failed a request here for good. */
  fault(at: number): void {
    this.#post({ kind: "fault", from: this.id, at });
  }

  /** Called when another isolate revoked a token (its streams here are to close). */
  onRevoked: (tokenId: string) => void = () => {};

  /** Tells the others a token was revoked. */
  revoked(tokenId: string): void {
    this.#post({ kind: "revoked", from: this.id, tokenId });
  }

  /** Called with what the publish buckets of another isolate spent, by key. */
  onSpent: (spent: Record<string, number>) => void = () => {};

  /** Tells the others what this isolate's publish buckets spent, by key. */
  spend(spent: Record<string, number>): void {
    this.#post({ kind: "spent", from: this.id, spent });
  }

  /** Tells the others the current value of a count here. */
  setCount(key: string, count: number): void {
    this.#post({ kind: "count", from: this.id, key, count, n: ++this.#countsSent });
  }

  /** The sum of a count over the other isolates. */
  remoteCount(key: string): number {
    let total = 0;
    for (const count of this.#counts.get(key)?.values() ?? []) total += count;
    return total;
  }

  /** Watchers of a job on the other isolates. */
  remoteWatchers(jobId: string): number {
    return this.remoteCount(watcherKey(jobId));
  }

  /**
   * Asks every other isolate for its figures; answers with those that reply in time (all
   * of them at once, unless one is busy for longer than the timeout), and for one that does
   * not, the figures it last gave here, if any (`stale` counts those): a sum of counters then
   * does not drop by a busy isolate's share.
   */
  gather(timeoutMs = 1000): Promise<{ figures: IsolateFigures[]; stale: number }> {
    if (this.#channel === undefined || this.#liveCount() === 0) {
      return Promise.resolve({ figures: [], stale: 0 });
    }
    const id = this.#nextRequest++;
    return new Promise((resolve) => {
      const replies: IsolateFigures[] = [];
      const from = new Set<string>();
      const done = () => {
        clearTimeout(timer);
        this.#pending.delete(id);
        let stale = 0;
        for (const isolate of this.#seen.keys()) {
          const last = this.#lastFigures.get(isolate);
          if (from.has(isolate) || last === undefined) continue;
          replies.push(last);
          stale++;
        }
        resolve({ figures: replies, stale });
      };
      const timer = setTimeout(done, timeoutMs);
      this.#pending.set(id, { replies, from, done });
      this.#post({ kind: "stats-request", from: this.id, id });
    });
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#channel === undefined) return;
    this.#post({ kind: "bye", from: this.id });
    this.#channel.close();
    this.#channel = undefined;
    for (const pending of this.#pending.values()) pending.done();
  }
}
