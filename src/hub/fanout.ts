/**
 * The boundary between one isolate's hub and the other isolates (or hosts) serving the
 * same jobs. A `BroadcastChannel` does not deliver to its own poster, so the hub serves
 * its local subscribers directly and uses a fanout only for the others.
 *
 * @module
 */
import type { StoredEvent } from "../jobs/envelope.ts";
import type { Job } from "../jobs/job.ts";
import type { PublishReply } from "../store/appender.ts";

/** Committed events as they travel between isolates. */
export interface FanoutMessage {
  events: { event: StoredEvent; job: Job | undefined }[];
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
  /** Registers the receiver of what other isolates send. */
  listen(
    onEvents: (message: FanoutMessage) => void,
    onNotice: (notice: FanoutNotice) => void,
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
