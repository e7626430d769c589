/**
 * A fanout for tests: it records what a hub sends and lets a test play the other isolates.
 */
import assert from "node:assert/strict";
import type { CommitEntry, Fanout, FanoutMessage, FanoutNotice } from "../../src/hub/fanout.ts";
import { isTerminal } from "../../src/jobs/status.ts";
import type { CommittedEvent } from "../../src/store/event_store.ts";

/** A fanout that records what the hub sends and lets the test play the other isolates. */
export class FakeFanout implements Fanout {
  published: FanoutMessage[] = [];
  notices: FanoutNotice[] = [];
  closed = false;
  #onEvents: ((message: FanoutMessage) => void) | undefined;
  #onNotice: ((notice: FanoutNotice) => void) | undefined;
  #onLost: (() => void) | undefined;

  /** Called as each message is sent. */
  onPublish: (() => void) | undefined;

  wakes = 0;

  wake(): void {
    this.wakes++;
  }

  publish(message: FanoutMessage): void {
    this.published.push(message);
    this.onPublish?.();
  }
  notify(notice: FanoutNotice): void {
    this.notices.push(notice);
  }
  listen(
    onEvents: (message: FanoutMessage) => void,
    onNotice: (notice: FanoutNotice) => void,
    onLost: () => void,
  ): void {
    this.#onEvents = onEvents;
    this.#onNotice = onNotice;
    this.#onLost = onLost;
  }
  close(): void {
    this.closed = true;
  }

  /**
   * Tells the hub about events as another isolate's commit would: one entry per run of
   * consecutive events of one job, carrying the events when `carry` is set.
   */
  remote(committed: readonly CommittedEvent[], carry = false): void {
    assert.ok(this.#onEvents !== undefined, "the hub did not listen");
    const runs: CommittedEvent[][] = [];
    for (const c of committed) {
      const run = runs[runs.length - 1];
      const last = run?.[run.length - 1];
      if (last?.event.job_id === c.event.job_id && last.event.sequence + 1 === c.event.sequence) {
        run!.push(c);
      } else {
        runs.push([c]);
      }
    }
    const jobs = runs.map((run): CommitEntry => {
      const last = run[run.length - 1]!;
      const entry: CommitEntry = [
        last.event.job_id,
        run[0]!.event.sequence,
        last.event.sequence,
        isTerminal(last.job.status),
        last.job.created_at,
      ];
      if (carry) {
        entry.push({
          timestamp: run[0]!.timestamp,
          types: run.map((c) => c.event.type),
          data: run.map((c) => c.data),
          job: last.job,
        });
      }
      return entry;
    });
    this.#onEvents({ jobs });
  }

  /** Hands the hub a message as another isolate's hub sent it. */
  receive(message: FanoutMessage): void {
    assert.ok(this.#onEvents !== undefined, "the hub did not listen");
    this.#onEvents(message);
  }

  /** Tells the hub that messages from other isolates were dropped. */
  lost(): void {
    assert.ok(this.#onLost !== undefined, "the hub did not listen");
    this.#onLost();
  }

  remoteNotice(notice: FanoutNotice): void {
    assert.ok(this.#onNotice !== undefined, "the hub did not listen");
    this.#onNotice(notice);
  }
}
