/**
 * The boundary between one isolate's hub and the other isolates (or hosts) serving the
 * same jobs. A `BroadcastChannel` does not deliver to its own poster, so the hub serves
 * its local subscribers directly and uses a fanout only for the others.
 *
 * A commit message names what each request added (job, first and last sequence, and the
 * job's creation time, which tells it from an earlier job under the same id) and,
 * for a request of a few events, carries what their envelopes hold beyond that: the
 * commit time once, and each event's type and data as text, from which the receiver
 * rebuilds the envelopes byte for byte. A larger request's events stay in the database
 * every isolate shares, read only by an isolate that has someone following the job. A
 * `BroadcastChannel` costs about 25 µs plus 40 ns per byte to receive, and a read from
 * the store after another connection's commit about 30–60 µs: a couple of KB is where
 * carrying stops paying, and every byte left out of a message counts.
 *
 * @module
 */
import type { Job } from "../jobs/job.ts";

/**
 * The events of a small request, carried in its commit message: with the job and the
 * sequences of its entry, enough to rebuild each envelope (`envelopesOf`).
 */
export interface CarriedEvents {
  /** When the request was committed; one time for all its events. */
  timestamp: string;
  types: string[];
  /** Each event's data as JSON text. */
  data: string[];
  /**
   * The job after the request's last event that changes its state (a snapshot stream
   * sends it then), when there is one.
   */
  job?: Job;
  /** Index of the event `job` goes with, when not the last one. */
  jobAt?: number;
}

/**
 * What one request of a commit added to a job: its id, the first and last new sequence,
 * whether the job is finished after them, when the job was created (which tells it apart
 * from an earlier job under the same id), and the events when they are few.
 */
export type CommitEntry = [
  jobId: string,
  first: number,
  last: number,
  terminal: boolean,
  createdAt: string,
  carried?: CarriedEvents,
];

/** A commit, as it travels between isolates. */
export interface FanoutMessage {
  jobs: CommitEntry[];
}

/** Notices that are not events: a created or deleted job. */
export type FanoutNotice =
  | { kind: "created"; job: Job }
  | { kind: "deleted"; jobId: string; job?: Job; reason?: string };

/** Carries committed events and notices to the other isolates. */
export interface Fanout {
  /** Sends events committed here to every other isolate. */
  publish(message: FanoutMessage): void;
  /** Sends a notice to every other isolate. */
  notify(notice: FanoutNotice): void;
  /**
   * Tells the other isolates that a commit message is about to follow, so that an idle
   * one is awake when it comes: waking an idle thread takes about 0.3 ms on the machines
   * this was measured on, which every event delivered there would otherwise wait for.
   * Carries nothing; a fanout without idle peers may ignore it.
   */
  wake(): void;
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
  wake(): void {}
  listen(): void {}
  close(): void {}
}
