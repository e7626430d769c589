/**
 * The boundary between one isolate's hub and the other isolates (or hosts) serving the
 * same jobs. A `BroadcastChannel` does not deliver to its own poster, so the hub serves
 * its local subscribers directly and uses a fanout only for the others.
 *
 * A commit message names what each request added (job, first and last sequence), not the
 * events: they are in the database every isolate shares, and an isolate reads them only
 * for jobs someone follows there. Messages stay a few dozen bytes however large the
 * events, which matters because a `BroadcastChannel` costs about 40 ns per byte to receive.
 *
 * @module
 */
import type { Job } from "../jobs/job.ts";
import type { PublishReply } from "../store/appender.ts";

/**
 * What one request of a commit added to a job: its id, the first and last new sequence,
 * and whether the job is finished after them.
 */
export type CommitEntry = [jobId: string, first: number, last: number, terminal: boolean];

/** A commit, as it travels between isolates. */
export interface FanoutMessage {
  jobs: CommitEntry[];
  /** Outcomes of publishes other isolates forwarded to the writer, settled after delivery. */
  replies?: PublishReply[];
}

/** Notices that are not events: a created or deleted job. */
export type FanoutNotice =
  | { kind: "created"; job: Job }
  | { kind: "deleted"; jobId: string };

/** Carries committed events and notices to the other isolates. */
export interface Fanout {
  /** Sends events committed here to every other isolate. */
  publish(message: FanoutMessage): void;
  /** Sends a notice to every other isolate. */
  notify(notice: FanoutNotice): void;
  /**
   * Registers the receiver of what other isolates send. `onLost` is told when messages
   * were dropped on the way (a receiver that fell far behind), so it can catch up from
   * the database.
   */
  listen(
    onEvents: (message: FanoutMessage) => void,
    onNotice: (notice: FanoutNotice) => void,
    onLost: () => void,
  ): void;
  close(): void;
}

/** The fanout of a server with one isolate: there is nobody else to tell. */
export class LocalFanout implements Fanout {
  publish(_message: FanoutMessage): void {}
  notify(_notice: FanoutNotice): void {}
  listen(): void {}
  close(): void {}
}
