/**
 * Group commit: publishes that arrive while a commit is pending share one transaction,
 * and each is acknowledged only after that transaction has committed.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { logError } from "../log.ts";
import {
  type AppendOutcome,
  type AppendRequest,
  type EventStore,
  StoreBusyError,
} from "./event_store.ts";

/** Tries before a commit that cannot get the write lock fails (about 10 s of waits). */
const MAX_BUSY_RETRIES = 5000;

/** Longest wait before retrying a commit that found the write lock taken, in ms. */
const LOCK_RETRY_MS = 2;

interface Pending {
  request: AppendRequest;
  resolve: (outcome: AppendOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Called after each commit with the outcomes of its requests, in commit order.
 */
export type CommitListener = (outcomes: readonly AppendOutcome[]) => void;

/** Batches appends into shared transactions on the next turn of the event loop. */
export class Committer {
  #store: EventStore;
  #listener: CommitListener;
  #queue: Pending[] = [];
  #scheduled = false;
  #commits = 0;
  #appends = 0;
  #busy = 0;
  #lockWaits = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #onCommit: () => void;

  /** @param onCommit told after each commit (so other isolates waiting for the lock retry) */
  constructor(store: EventStore, listener: CommitListener, onCommit: () => void = () => {}) {
    this.#store = store;
    this.#listener = listener;
    this.#onCommit = onCommit;
  }

  /**
   * Queues `request` for the next group commit.
   *
   * @returns the outcome once the transaction holding it has committed
   * @throws whatever the store throws (the whole group fails together)
   */
  append(request: AppendRequest): Promise<AppendOutcome> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Commits everything queued now. Safe to call at any time, including shutdown. While
   * another isolate holds the write lock the batch stays queued and the commit is tried
   * again on the next turn of the event loop, which never blocks meanwhile.
   */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    let outcomes: AppendOutcome[];
    try {
      outcomes = this.#store.appendBatch(batch.map((p) => p.request), Date.now());
    } catch (error) {
      if (error instanceof StoreBusyError && this.#busy < MAX_BUSY_RETRIES) {
        this.#busy++;
        this.#lockWaits++;
        this.#queue = batch.concat(this.#queue);
        this.#scheduled = true;
        // The isolate holding the lock says when it has committed (see `lockReleased`);
        // the timer covers other writers (the sweeper, the command line). Meanwhile new
        // publishes join the waiting batch, so the next commit carries more at once.
        this.#retry = setTimeout(() => this.#retryNow(), LOCK_RETRY_MS);
        return;
      }
      this.#busy = 0;
      for (const pending of batch) pending.reject(error);
      return;
    }
    this.#busy = 0;
    // Counted are the requests that wrote (not refusals, nor retries found written already),
    // and the transactions that held one.
    const wrote = outcomes.filter((o) => o.ok && o.committed.length > 0).length;
    if (wrote > 0) this.#commits++;
    this.#appends += wrote;
    this.#onCommit();
    // Subscribers hear of the events before producers are acknowledged, so a producer that
    // publishes and then watches never finds its own event missing from the live stream.
    try {
      this.#listener(outcomes);
    } catch (error) {
      // The events are committed whatever a listener does; a delivery fault must not
      // turn into a failed publish or an uncaught error.
      logError("delivery after commit failed", error);
    }
    batch.forEach((pending, i) => pending.resolve(outcomes[i]!));
  }

  /** Another isolate has just committed: a batch waiting for the write lock is tried now. */
  lockReleased(): void {
    if (this.#retry !== undefined) this.#retryNow();
  }

  #retryNow(): void {
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.flush();
  }

  /** Commits and appends so far (their ratio is the mean group size), and lock waits. */
  get counts(): { commits: number; appends: number; lockWaits: number } {
    return { commits: this.#commits, appends: this.#appends, lockWaits: this.#lockWaits };
  }
}
