/**
 * Per-job ordering: keeps each job's cursor (the last sequence delivered) and snapshot,
 * drops duplicates, and fills gaps from the events page before delivering what follows
 * them. A gap shows as an event more than one past the cursor (the server may skip
 * superseded progress events for a slow client) or a heartbeat whose high-water mark is
 * ahead of the cursor. Nothing at or below a cursor is ever delivered again.
 *
 * @module
 */
import type { Emitter } from "./emitter.ts";
import { JobwireError, STREAM_ERROR_STATUS } from "./errors.ts";
import { applyEvent, changesState, isFinished } from "./job_state.ts";
import {
  type Envelope,
  type EventsPage,
  isTerminalStatus,
  type JobEvent,
  type JobSnapshot,
  type JobStatus,
} from "./types.ts";
import type { WatcherEvents } from "./watch_events.ts";
import type { StreamTarget } from "./transport.ts";

/** What the sequencer knows of one job. */
export interface Track {
  /** Last delivered sequence. */
  cursor: number;
  job: JobSnapshot | undefined;
  finished: boolean;
}

/** The I/O a sequencer needs. */
export interface SequencerIo {
  emitter: Emitter<WatcherEvents>;
  /** One page of events after `since`. */
  fetchPage(jobId: string, since: number): Promise<EventsPage>;
  fetchJob(jobId: string): Promise<JobSnapshot>;
  /** Whether the watcher has stopped (nothing more is delivered). */
  stopped(): boolean;
}

interface ReplayInfo {
  from: number | null;
  truncated: boolean;
  first_available: number;
}

/** Error codes of a job the server does not have. */
const MISSING = new Set(["job_not_found", "job_gone"]);

/** Orders and completes the event streams of the jobs a watcher follows. */
export class Sequencer {
  readonly tracks = new Map<string, Track>();
  #io: SequencerIo;
  /** True for `all` watchers, which adopt jobs they learn of. */
  #adopting: boolean;
  /** True for watchers of several named jobs, which go on without one that is not there. */
  #several: boolean;
  /** Named jobs let go of: the server had no such job, or it was deleted. */
  #dropped = 0;
  /** Whether an `all` watcher has had its first list of jobs. */
  #listed = false;

  /**
   * @param since the starting cursor of each named job
   * @param kind what the watcher follows: one job, several named ones, or `all`
   */
  constructor(io: SequencerIo, since: ReadonlyMap<string, number>, kind: StreamTarget["kind"]) {
    this.#io = io;
    this.#adopting = kind === "all";
    this.#several = kind === "jobs";
    for (const [id, cursor] of since) {
      this.tracks.set(id, { cursor, job: undefined, finished: false });
    }
  }

  /** Whether every followed job has finished (never for an `all` watcher). */
  allFinished(): boolean {
    if (this.#adopting) return false;
    // Every named job let go of: nothing is left to follow.
    if (this.tracks.size === 0) return this.#dropped > 0;
    for (const track of this.tracks.values()) if (!track.finished) return false;
    return true;
  }

  /**
   * Handles one message of the stream.
   *
   * @throws {JobwireError} `gap_fill_failed` when missing events could not be fetched;
   *   the caller reconnects from the cursors, which loses nothing
   */
  async handle(message: Envelope): Promise<void> {
    if (this.#io.stopped()) return;
    const data = message.data ?? {};
    if (message.sequence !== null && message.job_id !== null) {
      await this.#event(message as JobEvent);
      return;
    }
    switch (message.type) {
      case "connection":
      case "subscribed":
        if (isJob(data.job) && message.job_id !== null) {
          await this.#greeting(message.job_id, data.job, data.replay as ReplayInfo | undefined);
        } else if (Array.isArray(data.jobs)) {
          // Jobs that had ended before an `all` watcher's first connection are history: their
          // snapshots are handed on, but they did not finish while it watched.
          const history = !this.#listed;
          this.#listed = true;
          for (const job of data.jobs) if (isJob(job)) await this.#adopt(job, history);
        }
        this.#io.emitter.emit("connection", message);
        break;
      case "heartbeat":
        if (message.job_id !== null && typeof data.last_sequence === "number") {
          await this.#catchUp(message.job_id, data.last_sequence);
        } else if (typeof data.last_sequences === "object" && data.last_sequences !== null) {
          for (const [id, last] of Object.entries(data.last_sequences)) {
            if (typeof last === "number") await this.#catchUp(id, last);
          }
        }
        break;
      case "created":
        if (isJob(data.job)) {
          await this.#adopt(data.job);
          this.#io.emitter.emit("created", { job_id: data.job.id, job: data.job });
        }
        break;
      case "deleted":
      case "unsubscribed":
        // An `all` watcher tells of every deletion, also of a job it had no event of: its
        // user may have listed that job itself (a page of `GET /jobs` past the greeting's).
        if (
          message.job_id !== null &&
          (this.tracks.delete(message.job_id) || (this.#adopting && message.type === "deleted"))
        ) {
          if (this.#several && message.type === "deleted") this.#dropped++;
          const reason = typeof data.reason === "string" ? data.reason : "job deleted";
          this.#io.emitter.emit("deleted", { job_id: message.job_id, reason });
        }
        break;
      case "error":
        // A stream of several jobs goes on without one the server does not have (never
        // made, or deleted): waiting for it to finish would reconnect for ever.
        if (
          this.#several && message.job_id !== null && MISSING.has(String(data.code)) &&
          this.tracks.delete(message.job_id)
        ) {
          this.#dropped++;
        }
        this.#io.emitter.emit(
          "error",
          new JobwireError(
            typeof data.code === "string" ? data.code : "server_error",
            typeof data.error === "string" ? data.error : "The server reported an error",
            {
              status: STREAM_ERROR_STATUS[String(data.code)] ?? null,
              details: {
                job_id: message.job_id,
                ...(data.details === undefined ? {} : { details: data.details }),
              },
            },
          ),
        );
        break;
    }
  }

  async #event(event: JobEvent): Promise<void> {
    let track = this.tracks.get(event.job_id);
    if (track === undefined) {
      if (!this.#adopting) return;
      // A job this `all` watcher has not seen (older than the jobs its greeting listed): it
      // starts here, with a fresh snapshot, which already holds this event and is handed on
      // after it, since `#deliver` finds nothing newer in it to tell.
      track = { cursor: event.sequence - 1, job: undefined, finished: false };
      this.tracks.set(event.job_id, track);
      const job = await this.#io.fetchJob(event.job_id).catch(() => undefined);
      if (event.sequence <= track.cursor) return;
      this.#deliver(event.job_id, track, event);
      if (job !== undefined && track.job === undefined && !this.#io.stopped()) {
        this.#setJob(event.job_id, track, job);
      }
      return;
    }
    if (event.sequence <= track.cursor) return;
    if (event.sequence > track.cursor + 1) {
      await this.#fill(event.job_id, track, event.sequence - 1);
    }
    if (event.sequence <= track.cursor) return;
    this.#deliver(event.job_id, track, event);
  }

  async #greeting(jobId: string, job: JobSnapshot, replay: ReplayInfo | undefined): Promise<void> {
    let track = this.tracks.get(jobId);
    if (track === undefined) {
      if (!this.#adopting) return;
      track = { cursor: job.last_sequence, job: undefined, finished: false };
      this.tracks.set(jobId, track);
    }
    if (replaced(track, job)) {
      // The id names a new job (the one followed was deleted while the watcher was away):
      // it is followed from its first event, up to where the stream's replay takes over.
      this.#restart(jobId, track, job);
      const upTo = replay?.from != null ? replay.from - 1 : job.last_sequence;
      if (upTo > 0) await this.#fill(jobId, track, upTo);
      return;
    }
    if (replay?.truncated === true) {
      this.#io.emitter.emit("truncated", {
        job_id: jobId,
        since: track.cursor,
        first_available: replay.first_available,
      });
      // Purged events cannot come back: continue from what the server still has. A cursor
      // ahead of the job (a job made again under its id, or a since past its end) goes back
      // to where the job is, or every event up to the old cursor would be taken for a repeat.
      const after = replay.from !== null ? replay.from - 1 : job.last_sequence;
      if (after > track.cursor || track.cursor > job.last_sequence) track.cursor = after;
    }
    this.#setJob(jobId, track, job);
  }

  async #adopt(job: JobSnapshot, history = false): Promise<void> {
    const track = this.tracks.get(job.id);
    if (track === undefined) {
      const fresh: Track = { cursor: job.last_sequence, job: undefined, finished: false };
      this.tracks.set(job.id, fresh);
      this.#setJob(job.id, fresh, job, history);
      return;
    }
    if (replaced(track, job)) this.#restart(job.id, track, job);
    else this.#setJob(job.id, track, job);
    if (job.last_sequence > track.cursor) await this.#fill(job.id, track, job.last_sequence);
  }

  /** Follows a job made again under a followed id from its start. */
  #restart(jobId: string, track: Track, job: JobSnapshot): void {
    track.cursor = 0;
    track.finished = false;
    this.#setJob(jobId, track, job);
  }

  async #catchUp(jobId: string, last: number): Promise<void> {
    const track = this.tracks.get(jobId);
    if (track !== undefined && last > track.cursor) await this.#fill(jobId, track, last);
  }

  /** Fetches and delivers the events after the cursor, up to `target` (or more). */
  async #fill(jobId: string, track: Track, target: number): Promise<void> {
    const from = track.cursor + 1;
    let filled = 0;
    try {
      while (track.cursor < target && !this.#io.stopped()) {
        const page = await this.#io.fetchPage(jobId, track.cursor);
        if (page.truncated && page.first_available - 1 > track.cursor) {
          this.#io.emitter.emit("truncated", {
            job_id: jobId,
            since: track.cursor,
            first_available: page.first_available,
          });
        }
        const before = track.cursor;
        for (const event of page.events) {
          if (event.sequence > track.cursor) {
            this.#deliver(jobId, track, event);
            // Of the gap only: a page may also hold what came after it.
            if (event.sequence <= target) filled++;
          }
        }
        if (track.cursor === before || !page.has_more) break;
      }
    } catch (error) {
      throw new JobwireError(
        "gap_fill_failed",
        `Cannot fetch events ${from}-${target} of job ${jobId}: ${String(error)}`,
        { cause: error },
      );
    }
    this.#io.emitter.emit("gap", { job_id: jobId, from, to: target, filled });
  }

  #deliver(jobId: string, track: Track, event: JobEvent): void {
    if (this.#io.stopped()) return;
    track.cursor = event.sequence;
    // The job is brought up to the event first, so that a listener of `event` reads it as of
    // that event (`watcher.job`); `snapshot` follows for events that change the state.
    let changed = false;
    if (track.job !== undefined && event.sequence > track.job.last_sequence) {
      const stalled = track.job.stalled === true;
      track.job = applyEvent(track.job, event);
      changed = changesState(event.type) || track.job.stalled !== stalled;
    }
    this.#io.emitter.emit("event", event);
    if (changed) this.#io.emitter.emit("snapshot", { job_id: jobId, job: track.job! });
    const terminal = event.type === "status" && isTerminalStatus(event.data.status as string);
    if (terminal || isFinished(track.job, track.cursor)) {
      this.#finish(jobId, track, terminal ? event.data.status as JobStatus : undefined);
    }
  }

  /** @param quiet a job found finished is marked so without a `finished` event */
  #setJob(jobId: string, track: Track, job: JobSnapshot, quiet = false): void {
    track.job = job;
    this.#io.emitter.emit("snapshot", { job_id: jobId, job });
    if (!isFinished(job, track.cursor)) return;
    if (quiet) track.finished = true;
    else this.#finish(jobId, track, undefined);
  }

  #finish(jobId: string, track: Track, status: JobStatus | undefined): void {
    if (track.finished) return;
    track.finished = true;
    this.#io.emitter.emit("finished", {
      job_id: jobId,
      status: status ?? track.job?.status ?? "completed",
      job: track.job,
    });
  }
}

function isJob(value: unknown): value is JobSnapshot {
  return typeof value === "object" && value !== null &&
    typeof (value as JobSnapshot).id === "string" &&
    typeof (value as JobSnapshot).last_sequence === "number";
}

/** Whether `job` is another job than the one `track` follows: one made again under its id. */
function replaced(track: Track, job: JobSnapshot): boolean {
  return track.job !== undefined && job.created_at !== track.job.created_at;
}
