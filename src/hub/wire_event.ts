/**
 * A committed event on its way to subscribers, with each wire encoding computed once and
 * shared by every subscriber that uses it.
 *
 * @module
 */
import type { StoredEvent } from "../jobs/envelope.ts";
import type { Job } from "../jobs/job.ts";
import { isTerminal, type JobStatus, normalizeStatus } from "../jobs/status.ts";

/** Turns an event into the bytes or text one transport sends; `id` indexes the cache. */
export interface Encoder {
  /** Small distinct integer per encoder (an index into the per-event cache). */
  readonly id: number;
  encode(event: WireEvent): string | Uint8Array<ArrayBuffer> | undefined;
}

/** Types that change the job snapshot (and so produce a `format=snapshot` message). */
const STATE_TYPES: ReadonlySet<string> = new Set(["status", "progress", "result", "error"]);

/** Whether an event of this type changes the job snapshot. */
export function changesState(type: string): boolean {
  return STATE_TYPES.has(type);
}

/** A committed event plus lazily computed, cached encodings. */
export class WireEvent {
  /** The event as the store keeps it. */
  readonly stored: StoredEvent;
  readonly jobId: string;
  readonly sequence: number;
  readonly type: string;
  /** The envelope JSON, as persisted. */
  readonly envelope: string;
  /**
   * The job right after this event, when known. Events read back from the store to fill
   * a gap carry none.
   */
  readonly job: Job | undefined;
  /**
   * Whether a `format=snapshot` stream gets the job's state with this event: only with the
   * last event of a request that changed it, which is the one event of a request another
   * isolate is told the state of, so snapshot streams get the same on every isolate.
   */
  readonly showsState: boolean;
  #cache: (string | Uint8Array<ArrayBuffer> | undefined | null)[] = [];
  #terminal: boolean | undefined;

  constructor(event: StoredEvent, job: Job | undefined, showsState = job !== undefined) {
    this.stored = event;
    this.jobId = event.job_id;
    this.sequence = event.sequence;
    this.type = event.type;
    this.envelope = event.envelope;
    this.job = job;
    this.showsState = showsState && job !== undefined && changesState(event.type);
  }

  /** The event as `encoder` frames it, computed on first use. */
  encoded(encoder: Encoder): string | Uint8Array<ArrayBuffer> | undefined {
    const cached = this.#cache[encoder.id];
    if (cached !== undefined) return cached ?? undefined;
    const value = encoder.encode(this);
    this.#cache[encoder.id] = value ?? null;
    return value;
  }

  /** Whether this event changes the job snapshot. */
  get changesState(): boolean {
    return changesState(this.type);
  }

  /**
   * The job's status right after this event, when the event tells it: a `status` event
   * by its data, any other by the job it carries.
   */
  get statusAfter(): JobStatus | undefined {
    if (this.type === "status") return this.#status();
    if (this.job !== undefined) return this.job.status;
    // A progress event that says `running` leaves the job running, whatever it was before
    // (a job not yet started is started by it). Read only when the text can say so.
    if (this.type === "progress" && this.envelope.includes('"status":"running"')) {
      const parsed = JSON.parse(this.envelope) as { data?: { status?: unknown } };
      if (parsed.data?.status === "running") return "running";
    }
    return undefined;
  }

  /** Whether this event moved the job to a terminal status. */
  get terminal(): boolean {
    if (this.#terminal === undefined) {
      this.#terminal = this.type === "status" && isTerminal(this.#status());
    }
    return this.#terminal;
  }

  #status(): JobStatus {
    if (this.job !== undefined) return this.job.status;
    const parsed = JSON.parse(this.envelope) as { data?: { status?: string } };
    return normalizeStatus(parsed.data?.status ?? "") ?? "running";
  }
}
