/**
 * Abuse limits of one isolate: open streams in total, per principal and per IP, and the
 * publish rate per principal (a token bucket). One visitor object per key holds its
 * counters, with paired acquire/release.
 *
 * @module
 */

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
 * Open-stream counts on the other isolates of the server, so limits hold for the whole
 * server; a single isolate has none.
 */
export interface SharedCounts {
  /** The sum of a count on the other isolates. */
  remoteCount(key: string): number;
  /** Publishes this isolate's value of a count. */
  setCount(key: string, count: number): void;
}

const NO_PEERS: SharedCounts = { remoteCount: () => 0, setCount: () => {} };

/** Counters of every principal and IP seen recently. */
export class Visitors {
  #options: LimitOptions;
  #visitors = new Map<string, Visitor>();
  #total = 0;
  #sweepAt = Date.now() + IDLE_MS;
  #shared: SharedCounts;

  constructor(options: LimitOptions, shared: SharedCounts = NO_PEERS) {
    this.#options = options;
    this.#shared = shared;
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
    for (const [key, visitor] of this.#visitors) {
      if (visitor.connections === 0 && now - visitor.refilledAt > IDLE_MS) {
        this.#visitors.delete(key);
      }
    }
  }

  /**
   * Counts a new stream of `principal` from `ip`.
   *
   * @returns a release function to call once when the stream ends, or why it is refused
   */
  openStream(principal: string, ip: string): (() => void) | ConnectionRefusal {
    const now = Date.now();
    const { maxConnections, maxConnectionsPerPrincipal, maxConnectionsPerIp } = this.#options;
    if (maxConnections > 0 && this.#total >= maxConnections) return "server";
    const byPrincipal = this.#visitor(`p:${principal}`, now);
    if (maxConnectionsPerPrincipal > 0 && byPrincipal.connections >= maxConnectionsPerPrincipal) {
      return "principal";
    }
    const byIp = this.#visitor(`ip:${ip}`, now);
    if (maxConnectionsPerIp > 0 && byIp.connections >= maxConnectionsPerIp) return "ip";
    this.#total++;
    byPrincipal.connections++;
    byIp.connections++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      byPrincipal.connections--;
      byIp.connections--;
    };
  }

  /**
   * Takes `events` tokens from the principal's bucket.
   *
   * @returns 0 when allowed, else the seconds to wait before retrying
   */
  allowPublish(principal: string, events: number): number {
    const rate = this.#options.publishRate;
    if (rate <= 0) return 0;
    const now = Date.now();
    const visitor = this.#visitor(`p:${principal}`, now);
    const burst = this.#burst();
    visitor.tokens = Math.min(burst, visitor.tokens + ((now - visitor.refilledAt) / 1000) * rate);
    visitor.refilledAt = now;
    // A batch larger than the bucket passes only when the bucket is full, and empties it.
    const cost = Math.min(events, burst);
    if (visitor.tokens >= cost) {
      visitor.tokens -= cost;
      return 0;
    }
    return Math.max(1, Math.ceil((cost - visitor.tokens) / rate));
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
