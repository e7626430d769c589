/**
 * Every open session of one isolate: one heartbeat timer for all of them (not one per
 * connection), one drain loop for the backlogged ones, counts for `/stats`, and the
 * shutdown that closes them all.
 *
 * @module
 */
import type { Outbox } from "./outbox.ts";
import type { Transport } from "./codec.ts";
import { CLOSE, type Session } from "./session.ts";

/** How often backlogged outboxes are retried, in milliseconds. */
const DRAIN_INTERVAL_MS = 10;

/** How often sessions are checked for an expired credential, in milliseconds. */
const EXPIRY_CHECK_MS = 250;

/**
 * Every how many expiry checks the tokens of open sessions are checked for a revocation
 * made where no message reaches (a user removed with `main.ts user remove`): 5 s.
 */
const REVOCATION_CHECK_EVERY = 20;

/** A long-poll waiting with a credential: not a session, but ended by the same checks. */
export interface Waiter {
  /** When its credential expires (epoch ms). */
  readonly expiresAt: number | null;
  /** The `jti` of its token, by which it is revoked. */
  readonly tokenId: string | undefined;
  /** Whether its token was revoked where no message tells (a user removed). */
  revoked(): boolean;
  /** Ends the wait. */
  lapse(why: "token_expired" | "token_revoked"): void;
}

/** The registry of live sessions on this isolate. */
export class Sessions {
  #all = new Set<Session>();
  #backlogged = new Set<Outbox>();
  #expiring = new Set<Session>();
  /** Long-polls waiting with a credential that expires, ended as sessions are. */
  #waiters = new Set<Waiter>();
  #expiry: ReturnType<typeof setInterval> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #drain: ReturnType<typeof setInterval> | undefined;
  #opened = 0;
  #expiryChecks = 0;
  /**
   * Connections whose session has closed but that are not over yet: a client that stopped
   * reading has not taken the close (nor what was written before it). Their slots still count.
   */
  closing = 0;
  /** Set once every session was ended for a shutdown: sessions opened after end at once. */
  #closedWith: { code: number; reason: string } | undefined;

  /** @param heartbeatMs interval between heartbeats on every session; 0 disables them */
  constructor(heartbeatMs: number) {
    if (heartbeatMs > 0) {
      const timer = setInterval(() => this.#beat(), heartbeatMs);
      Deno.unrefTimer(timer);
      this.#heartbeat = timer;
    }
  }

  /** Whether the server is stopping (every session was ended for a shutdown). */
  get stopping(): boolean {
    return this.#closedWith !== undefined;
  }

  add(session: Session): void {
    if (this.#closedWith !== undefined) {
      // Opened while the server stops (a WebSocket whose upgrade was under way): told so at
      // once, as the others were.
      session.finish(this.#closedWith.code, this.#closedWith.reason);
      return;
    }
    this.#all.add(session);
    this.#opened++;
    session.context.onOpen?.(session);
    if (session.context.expiresAt !== null) {
      this.#expiring.add(session);
      this.#checkExpiry();
    }
  }

  /**
   * Ends `waiter` (a long-poll) as a session is ended: when its credential expires or is
   * revoked.
   *
   * @returns stops watching it
   */
  watch(waiter: Waiter): () => void {
    if (waiter.expiresAt === null) return () => {};
    this.#waiters.add(waiter);
    this.#checkExpiry();
    return () => void this.#waiters.delete(waiter);
  }

  #checkExpiry(): void {
    if (this.#expiry !== undefined) return;
    const timer = setInterval(() => this.#expire(), EXPIRY_CHECK_MS);
    Deno.unrefTimer(timer);
    this.#expiry = timer;
  }

  remove(session: Session): void {
    this.#all.delete(session);
    this.#expiring.delete(session);
    this.#backlogged.delete(session.outbox);
  }

  /**
   * Closes sessions whose credential has expired (1008 "token expired"), and every few
   * seconds those whose token was revoked (1008 "token revoked").
   */
  #expire(): void {
    const now = Date.now();
    const revocations = ++this.#expiryChecks % REVOCATION_CHECK_EVERY === 0;
    for (const session of this.#expiring) {
      const at = session.context.expiresAt;
      if (at !== null && at <= now) session.close(CLOSE.policy, "token expired");
      else if (revocations && session.context.revoked?.() === true) {
        session.close(CLOSE.policy, "token revoked");
      }
    }
    for (const waiter of this.#waiters) {
      if (waiter.expiresAt !== null && waiter.expiresAt <= now) waiter.lapse("token_expired");
      else if (revocations && waiter.revoked()) waiter.lapse("token_revoked");
    }
    if (this.#expiring.size === 0 && this.#waiters.size === 0 && this.#expiry !== undefined) {
      clearInterval(this.#expiry);
      this.#expiry = undefined;
    }
  }

  /**
   * Closes the sessions opened with a token that was just revoked (1008 "token revoked"):
   * they hold a credential that is refused from now on. Those with a credential that
   * expires are the ones a token opened, so only they are looked at.
   */
  revoke(tokenId: string): void {
    for (const session of this.#expiring) {
      if (session.context.tokenId === tokenId) session.close(CLOSE.policy, "token revoked");
    }
    for (const waiter of this.#waiters) {
      if (waiter.tokenId === tokenId) waiter.lapse("token_revoked");
    }
  }

  /** Queues an outbox for draining once its socket has room. */
  backlogged(outbox: Outbox): void {
    this.#backlogged.add(outbox);
    if (this.#drain === undefined) {
      this.#drain = setInterval(() => this.#drainAll(), DRAIN_INTERVAL_MS);
    }
  }

  #drainAll(): void {
    for (const outbox of this.#backlogged) {
      if (outbox.closed || outbox.drain()) this.#backlogged.delete(outbox);
    }
    if (this.#backlogged.size === 0 && this.#drain !== undefined) {
      clearInterval(this.#drain);
      this.#drain = undefined;
    }
  }

  #beat(): void {
    const now = new Date().toISOString();
    for (const session of this.#all) session.heartbeat(now);
  }

  /** Open sessions per transport. */
  counts(): Record<Transport, number> {
    const counts: Record<Transport, number> = { websocket: 0, sse: 0, ndjson: 0 };
    for (const session of this.#all) counts[session.transport]++;
    return counts;
  }

  /** Sessions opened since start. */
  get opened(): number {
    return this.#opened;
  }

  get size(): number {
    return this.#all.size;
  }

  /** Frames waiting in outboxes across sessions. */
  buffered(): number {
    let waiting = 0;
    for (const outbox of this.#backlogged) waiting += outbox.waiting;
    return waiting;
  }

  /** Ends every session (WebSocket close `code`), flushing what each has waiting; and later ones. */
  closeAll(code: number, reason: string): void {
    this.#closedWith = { code, reason };
    for (const session of [...this.#all]) session.finish(code, reason);
  }

  /** Stops the timers. */
  stop(): void {
    if (this.#expiry !== undefined) clearInterval(this.#expiry);
    this.#expiry = undefined;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    if (this.#drain !== undefined) clearInterval(this.#drain);
    this.#heartbeat = undefined;
    this.#drain = undefined;
  }
}
