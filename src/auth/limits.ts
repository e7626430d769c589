/**
 * Abuse limits: open streams in total, per principal and per IP, and the publish rate per
 * principal (a token bucket). One visitor object per key holds its counters, with paired
 * acquire/release. The limits hold for the whole server: each isolate tells the others
 * its stream counts and what its buckets spent (see {@link SharedCounts}), and each takes
 * what the others spent out of its own buckets. These travel by message, so a burst
 * spread over several isolates within a few milliseconds may pass a limit by a little.
 *
 * @module
 */
import { addressSet, type AddressTest } from "../http/proxies.ts";

/** The limits; 0 means no limit. */
export interface LimitOptions {
  maxConnections: number;
  maxConnectionsPerPrincipal: number;
  maxConnectionsPerIp: number;
  /** Events per second per principal. */
  publishRate: number;
  /** Events a principal may publish at once (bucket size). */
  publishBurst: number;
}

/** Why a stream was refused. */
export type ConnectionRefusal = "server" | "principal" | "ip";

interface Visitor {
  connections: number;
  tokens: number;
  refilledAt: number;
}

/** Idle visitors are forgotten after this long, in milliseconds. */
const IDLE_MS = 10 * 60_000;

/**
 * The other isolates of the server, so limits hold for the whole server: their open-stream
 * counts, and what their publish buckets spent. A single isolate has none.
 */
export interface SharedCounts {
  /** Whether the server has other isolates at all (else nothing is told). */
  readonly shared: boolean;
  /** The sum of a count on the other isolates. */
  remoteCount(key: string): number;
  /** Publishes this isolate's value of a count. */
  setCount(key: string, count: number): void;
  /** Tells the others what buckets here spent (a refund is negative), by bucket key. */
  spend(spent: Record<string, number>): void;
  /** Set by the limits: what buckets on another isolate spent. */
  onSpent: (spent: Record<string, number>) => void;
}

const NO_PEERS: SharedCounts = {
  shared: false,
  remoteCount: () => 0,
  setCount: () => {},
  spend: () => {},
  onSpent: () => {},
};

/**
 * Shortest time between two messages telling the other isolates what buckets spent, in
 * ms: under a steady stream of publishes, one message for all of this time's.
 */
const SPEND_FLUSH_MS = 5;

/** Counters of every principal and IP seen recently. */
export class Visitors {
  #options: LimitOptions;
  #visitors = new Map<string, Visitor>();
  #total = 0;
  #sweepAt: number;
  #shared: SharedCounts;
  /** Keys of counts changed since the others were last told. */
  #changed = new Set<string>();
  /** Spent by this isolate's buckets since the others were last told, by key. */
  #spent = new Map<string, number>();
  #spendTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the others were last told what was spent. */
  #toldAt = 0;

  #clock: () => number;

  /** @param clock the time in epoch ms (tests move it) */
  constructor(options: LimitOptions, shared: SharedCounts = NO_PEERS, clock = Date.now) {
    this.#options = options;
    this.#shared = shared;
    this.#clock = clock;
    this.#sweepAt = clock() + IDLE_MS;
    shared.onSpent = (spent) => {
      if (this.#options.publishRate <= 0) return;
      const now = this.#clock();
      for (const [key, amount] of Object.entries(spent)) {
        const visitor = this.#refilled(key, now);
        visitor.tokens = Math.min(this.#burst(), visitor.tokens - amount);
      }
    };
  }

  /** A stream count here changed: the other isolates hear of it at the end of this turn. */
  #countChanged(key: string): void {
    if (!this.#shared.shared) return;
    if (this.#changed.size === 0) queueMicrotask(() => this.#tellCounts());
    this.#changed.add(key);
  }

  #tellCounts(): void {
    for (const key of this.#changed) {
      this.#shared.setCount(
        `c:${key}`,
        key === "total" ? this.#total : this.#visitors.get(key)?.connections ?? 0,
      );
    }
    this.#changed.clear();
  }

  /**
   * A bucket here spent `amount`: the others hear of it at once, or, while publishes keep
   * coming, at most every {@link SPEND_FLUSH_MS} (one message for all of them).
   */
  #spend(key: string, amount: number): void {
    if (!this.#shared.shared) return;
    this.#spent.set(key, (this.#spent.get(key) ?? 0) + amount);
    if (this.#spendTimer !== undefined) return;
    const wait = Math.max(0, this.#toldAt + SPEND_FLUSH_MS - Date.now());
    this.#spendTimer = setTimeout(() => {
      this.#spendTimer = undefined;
      this.#toldAt = Date.now();
      const spent = Object.fromEntries(this.#spent);
      this.#spent.clear();
      this.#shared.spend(spent);
    }, wait);
  }

  /** What `visitor`'s bucket holds at `now`, refilled for the time since it was last. */
  #tokensAt(visitor: Visitor, now: number): number {
    const refill = ((now - visitor.refilledAt) / 1000) * this.#options.publishRate;
    return Math.min(this.#burst(), visitor.tokens + refill);
  }

  /** The bucket of `key`, refilled for the time since it was last. */
  #refilled(key: string, now: number): Visitor {
    const visitor = this.#visitor(key, now);
    visitor.tokens = this.#tokensAt(visitor, now);
    visitor.refilledAt = now;
    return visitor;
  }

  #visitor(key: string, now: number): Visitor {
    if (now > this.#sweepAt) this.#sweep(now);
    let visitor = this.#visitors.get(key);
    if (visitor === undefined) {
      visitor = { connections: 0, tokens: this.#burst(), refilledAt: now };
      this.#visitors.set(key, visitor);
    }
    return visitor;
  }

  #burst(): number {
    return this.#options.publishBurst > 0
      ? this.#options.publishBurst
      : 2 * this.#options.publishRate;
  }

  #sweep(now: number): void {
    this.#sweepAt = now + IDLE_MS;
    const rate = this.#options.publishRate;
    for (const [key, visitor] of this.#visitors) {
      // Forgotten once idle with no stream and a bucket that would be full again: a debt
      // still owed stays (forgetting it would let the next batch through).
      if (
        visitor.connections === 0 && now - visitor.refilledAt > IDLE_MS &&
        (rate <= 0 || this.#tokensAt(visitor, now) >= this.#burst())
      ) {
        this.#visitors.delete(key);
      }
    }
  }

  /**
   * Counts a new stream of `principal` from `ip`.
   *
   * @param principal key of the per-principal count, or `null` for a principal it skips
   * @param ip key of the per-address count, or `null` for an address it skips
   * @returns a release function to call once when the stream ends, or why it is refused
   */
  openStream(principal: string | null, ip: string | null): (() => void) | ConnectionRefusal {
    const now = this.#clock();
    const { maxConnections, maxConnectionsPerPrincipal, maxConnectionsPerIp } = this.#options;
    const shared = this.#shared;
    if (maxConnections > 0 && this.#total + shared.remoteCount("c:total") >= maxConnections) {
      return "server";
    }
    const principalKey = principal === null ? undefined : `p:${principal}`;
    const byPrincipal = principalKey === undefined ? undefined : this.#visitor(principalKey, now);
    if (
      byPrincipal !== undefined && maxConnectionsPerPrincipal > 0 &&
      byPrincipal.connections + shared.remoteCount(`c:${principalKey}`) >=
        maxConnectionsPerPrincipal
    ) {
      return "principal";
    }
    const ipKey = ip === null ? undefined : `ip:${ip}`;
    const byIp = ipKey === undefined ? undefined : this.#visitor(ipKey, now);
    if (
      byIp !== undefined && maxConnectionsPerIp > 0 &&
      byIp.connections + shared.remoteCount(`c:${ipKey}`) >= maxConnectionsPerIp
    ) {
      return "ip";
    }
    const count = (delta: number) => {
      this.#total += delta;
      this.#countChanged("total");
      if (byPrincipal !== undefined) {
        byPrincipal.connections += delta;
        this.#countChanged(principalKey!);
      }
      if (byIp !== undefined) {
        byIp.connections += delta;
        this.#countChanged(ipKey!);
      }
    };
    count(1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      count(-1);
    };
  }

  /**
   * Takes `events` tokens from the principal's bucket. A batch may leave the bucket in
   * debt (one larger than the bucket passes when it is full), which later publishes wait
   * out: over time a principal publishes no more than the rate, however it batches.
   *
   * @param principal key of the principal's bucket, or `null` for one the rate skips
   * @returns 0 when allowed, else the seconds to wait before retrying
   */
  allowPublish(principal: string | null, events: number): number {
    const rate = this.#options.publishRate;
    if (rate <= 0 || principal === null) return 0;
    const key = `p:${principal}`;
    const visitor = this.#refilled(key, this.#clock());
    const needed = Math.min(events, this.#burst());
    if (visitor.tokens >= needed) {
      visitor.tokens -= events;
      this.#spend(key, events);
      return 0;
    }
    return Math.max(1, Math.ceil((needed - visitor.tokens) / rate));
  }

  /** Gives back what {@link allowPublish} took for events that were not stored after all. */
  refundPublish(principal: string | null, events: number): void {
    if (this.#options.publishRate <= 0 || principal === null) return;
    const key = `p:${principal}`;
    const visitor = this.#visitor(key, this.#clock());
    visitor.tokens = Math.min(this.#burst(), visitor.tokens + events);
    this.#spend(key, -events);
  }

  /** This isolate's connection counts by shared key (for isolates that join later). */
  counts(): Record<string, number> {
    const counts: Record<string, number> = { "c:total": this.#total };
    for (const [key, visitor] of this.#visitors) {
      if (visitor.connections > 0) counts[`c:${key}`] = visitor.connections;
    }
    return counts;
  }

  /** Open streams counted on this isolate. */
  get connections(): number {
    return this.#total;
  }
}

/** The compiled test of each exempt list (the configuration's, built once). */
const exemptSets = new WeakMap<readonly string[], AddressTest>();

/**
 * Whether per-address limits skip `ip`: it is listed, or it is a loopback address and
 * `loopback` is listed (behind a reverse proxy on the same host every client comes from
 * loopback, and counting them per address would cap the whole server).
 */
export function exemptAddress(ip: string, exempt: readonly string[]): boolean {
  let test = exemptSets.get(exempt);
  if (test === undefined) {
    test = addressSet(exempt);
    exemptSets.set(exempt, test);
  }
  return test(ip);
}
