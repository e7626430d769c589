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
   * @param principal key of the per-principal count, or `null` for a principal it skips
   * @param ip key of the per-address count, or `null` for an address it skips
   * @returns a release function to call once when the stream ends, or why it is refused
   */
  openStream(principal: string | null, ip: string | null): (() => void) | ConnectionRefusal {
    const now = Date.now();
    const { maxConnections, maxConnectionsPerPrincipal, maxConnectionsPerIp } = this.#options;
    if (maxConnections > 0 && this.#total >= maxConnections) return "server";
    const byPrincipal = principal === null ? undefined : this.#visitor(`p:${principal}`, now);
    if (
      byPrincipal !== undefined && maxConnectionsPerPrincipal > 0 &&
      byPrincipal.connections >= maxConnectionsPerPrincipal
    ) {
      return "principal";
    }
    const byIp = ip === null ? undefined : this.#visitor(`ip:${ip}`, now);
    if (byIp !== undefined && maxConnectionsPerIp > 0 && byIp.connections >= maxConnectionsPerIp) {
      return "ip";
    }
    this.#total++;
    if (byPrincipal !== undefined) byPrincipal.connections++;
    if (byIp !== undefined) byIp.connections++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      if (byPrincipal !== undefined) byPrincipal.connections--;
      if (byIp !== undefined) byIp.connections--;
    };
  }

  /**
   * Takes `events` tokens from the principal's bucket.
   *
   * @param principal key of the principal's bucket, or `null` for one the rate skips
   * @returns 0 when allowed, else the seconds to wait before retrying
   */
  allowPublish(principal: string | null, events: number): number {
    const rate = this.#options.publishRate;
    if (rate <= 0 || principal === null) return 0;
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

  /** Gives back what {@link allowPublish} took for events that were not stored after all. */
  refundPublish(principal: string | null, events: number): void {
    if (this.#options.publishRate <= 0 || principal === null) return;
    const visitor = this.#visitor(`p:${principal}`, Date.now());
    visitor.tokens = Math.min(this.#burst(), visitor.tokens + Math.min(events, this.#burst()));
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

/**
 * Whether per-address limits skip `ip`: it is listed, or it is a loopback address and
 * `loopback` is listed (behind a reverse proxy on the same host every client comes from
 * loopback, and counting them per address would cap the whole server).
 */
export function exemptAddress(ip: string, exempt: readonly string[]): boolean {
  if (exempt.length === 0) return false;
  const address = ip.toLowerCase();
  // An IPv4 client on a dual-stack socket is reported as ::ffff:a.b.c.d.
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  if (exempt.includes(address) || exempt.includes(v4)) return true;
  if (!exempt.includes("loopback")) return false;
  return address === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
