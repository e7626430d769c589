/**
 * Group commit: publishes that arrive while a commit is pending share one transaction,
 * and each is acknowledged only after that transaction has committed.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { logError } from "../log.ts";
import type { AppendOutcome, AppendRequest, EventStore } from "./event_store.ts";

interface Pending {
  request: AppendRequest;
  resolve: (outcome: AppendOutcome) => void;
  reject: (error: unknown) => void;
}

/** Called after each commit with the requests and their outcomes, in commit order. */
export type CommitListener = (outcomes: readonly AppendOutcome[]) => void;

/** Batches appends into shared transactions on the next turn of the event loop. */
export class Committer {
  #store: EventStore;
  #listener: CommitListener;
  #queue: Pending[] = [];
  #scheduled = false;
  #commits = 0;
  #appends = 0;

  constructor(store: EventStore, listener: CommitListener) {
    this.#store = store;
    this.#listener = listener;
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

  /** Commits everything queued now. Safe to call at any time, including shutdown. */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    let outcomes: AppendOutcome[];
    try {
      outcomes = this.#store.appendBatch(batch.map((p) => p.request), Date.now());
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    this.#commits++;
    this.#appends += batch.length;
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

  /** Commits and appends so far; their ratio is the mean group size. */
  get counts(): { commits: number; appends: number } {
    return { commits: this.#commits, appends: this.#appends };
  }
}
