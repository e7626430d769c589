/**
 * The periodic sweeper: purges finished jobs past retention (leaving tombstones that
 * answer 410), forgets old tombstones and idempotency keys, and finds running jobs that
 * have gone quiet for the stall threshold.
 *
 * @module
 */
import { type EventStore, StoreBusyError, type SweepPolicy } from "./event_store.ts";
import { logError } from "../log.ts";

/** What the sweeper needs besides the store. */
export interface SweeperOptions {
  policy: SweepPolicy;
  /** Quiet time after which a running job counts as stalled, in ms; 0 disables. */
  stallAfterMs: number;
  /** Milliseconds between sweeps. */
  intervalMs: number;
  /** Told of purged job ids, to end their streams. */
  onPurged(ids: string[]): void;
  /**
   * Told of newly stalled job ids, to publish their warning if they are still quiet since
   * `quietSince` when it commits (see `AppendRequest.stalledIfQuietSince`).
   */
  onStalled(ids: string[], quietSince: number): void;
  /** Other housekeeping run with every sweep (expired tickets, old login failures). */
  also?: (now: number) => void;
}

/** Most stalled jobs flagged per sweep. */
const STALL_BATCH = 100;

/** Runs sweeps on a timer until stopped. */
export class Sweeper {
  #store: EventStore;
  #options: SweeperOptions;
  #timer: ReturnType<typeof setInterval>;
  #pendingStall = new Set<string>();
  #owner = crypto.randomUUID();
  /** The next batch of a purge too large for one go, when one is due. */
  #more: ReturnType<typeof setTimeout> | undefined;

  constructor(store: EventStore, options: SweeperOptions) {
    this.#store = store;
    this.#options = options;
    this.#timer = setInterval(() => this.sweep(), options.intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  /**
   * One sweep now, if this isolate holds the sweeper lease (one sweeper per server, however
   * many isolates). Errors are logged, never thrown: the next sweep tries again.
   */
  sweep(now = Date.now()): void {
    try {
      if (!this.#store.takeLease("sweeper", this.#owner, now + 3 * this.#options.intervalMs, now)) {
        return;
      }
      // Never waits for a lock another process holds (that would block every stream of
      // this isolate): a busy database is swept next time.
      const purged = this.#store.withoutBlocking(() =>
        this.#store.sweep(now, this.#options.policy)
      );
      if (purged.length > 0) this.#options.onPurged(purged);
      if (purged.length === this.#options.policy.batch && this.#more === undefined) {
        // More to purge: the next batch once this isolate has served what waits, and the
        // other isolates have had the write lock, rather than all of it in one go.
        this.#more = setTimeout(() => {
          this.#more = undefined;
          this.sweep();
        }, 0);
        Deno.unrefTimer(this.#more);
      }
      if (this.#options.stallAfterMs > 0) {
        const quietSince = now - this.#options.stallAfterMs;
        const stalled = this.#store.findStalled(quietSince, STALL_BATCH)
          .filter((id) => !this.#pendingStall.has(id));
        if (stalled.length > 0) {
          for (const id of stalled) this.#pendingStall.add(id);
          this.#options.onStalled(stalled, quietSince);
        }
      }
      const also = this.#options.also;
      if (also !== undefined) this.#store.withoutBlocking(() => also(now));
    } catch (error) {
      if (error instanceof StoreBusyError) return;
      logError("sweep failed", error);
    }
  }

  /** Forgets that a stall warning is in flight for a job. */
  stallHandled(id: string): void {
    this.#pendingStall.delete(id);
  }

  /** Stops sweeping, and gives the lease up: the next server sweeps at once, not 3 rounds on. */
  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#more);
    try {
      this.#store.releaseLease("sweeper", this.#owner);
    } catch {
      // A database that refuses writes (busy, full, gone): the lease ends by its expiry.
    }
  }
}

/**
 * Sweep interval for a retention and the other lifetimes the sweeps end (stall threshold,
 * tombstones, idempotency keys; 0: none): a quarter of the shortest, 0.25–60 s, so that each
 * ends within a quarter of its length past it.
 */
export function sweepInterval(retentionMs: number, ...lifetimesMs: number[]): number {
  const shortest = Math.min(retentionMs, ...lifetimesMs.filter((ms) => ms > 0));
  return Math.min(60_000, Math.max(250, Math.floor(shortest / 4)));
}
