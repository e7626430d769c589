/**
 * The hub: job id → subscribers, on one isolate. It hands each committed event to every
 * subscriber of its job exactly once and in sequence order, and replays history to new
 * subscribers without a gap or a duplicate.
 *
 * Gap-free join: registering a subscriber, reading its history and recording its cursor
 * happen in one synchronous step (the store is synchronous), so no event can commit in
 * between. Events from other isolates may arrive late or out of order: each job channel
 * remembers the last sequence it delivered, drops what it has seen and fills a gap from
 * the store before delivering what follows it.
 *
 * Each channel also keeps its job's newest events ({@link RecentEvents}), so a replay
 * reads from the store only what is older, or what has not reached this isolate yet.
 *
 * @module
 */
import { type Job, type JobRecord, publicJob } from "../jobs/job.ts";
import { envelopesOf, type StoredEvent } from "../jobs/envelope.ts";
import { type CommittedEvent, type EventStore, readEventsWhile } from "../store/event_store.ts";
import type { CarriedEvents, CommitEntry, Fanout, FanoutMessage, FanoutNotice } from "./fanout.ts";
import { isTerminal } from "../jobs/status.ts";
import { changesState, WireEvent } from "./wire_event.ts";
import { RecentEvents, type RecentLimits, RecentRun } from "./recent.ts";

/** Receives one job's events in order. */
export interface Subscriber {
  /** Last sequence this subscriber has received; the hub never delivers one at or below it. */
  cursor: number;
  deliver(event: WireEvent): void;
  /** The job went away (deleted or purged); the subscriber should end. */
  end(reason: string): void;
  /** True once it wants nothing more (its connection closed): a replay stops reading. */
  readonly closed?: boolean;
}

/** Receives events of every job (`?all=1` streams) and job notices. */
export interface FirehoseSubscriber {
  deliver(event: WireEvent): void;
  created(job: Job): void;
  /** A job was deleted or purged; `job` is what it was, when known (not after a purge). */
  deleted(jobId: string, job?: Job, reason?: string): void;
}

/** How a join went, for the `connection`/`subscribed` message. */
export interface ReplayInfo {
  /** The `since` the client asked for, or `null` for the default window. */
  since: number | null;
  /** Number of events replayed. */
  count: number;
  /** First and last replayed sequence, or `null` when none. */
  from: number | null;
  to: number | null;
  /** Set when events the client asked for are no longer retained (or never existed). */
  truncated: boolean;
  /** Oldest retained sequence. */
  first_available: number;
}

/** What a hub tells, and asks, the rest of the server. */
export interface HubOptions {
  /**
   * Told whenever the number of subscribers of a job changes here (so other isolates can
   * count whole-server watchers).
   */
  onWatchers?: (jobId: string, count: number) => void;
  /** Told whenever the number of subscribers to every job changes here. */
  onFirehose?: (count: number) => void;
  /** Told after a commit message of another isolate was delivered here. */
  onRemote?: (message: FanoutMessage) => void;
  /** Runs each batch of deliveries (the transports gather writes per round). */
  round?: (deliver: () => void) => void;
  /** Bounds of the recent events kept in memory for replays. */
  recent?: RecentLimits;
  /**
   * Whether another isolate may have someone following a job (its subscribers, or any
   * subscriber to every job). A commit message carries the events only of such jobs; an
   * isolate whose subscriber came meanwhile reads them from the store. Default: always.
   */
  watchedElsewhere?: (jobId: string) => boolean;
  /** The clock that tells whether the isolates are idle, in ms. Default `performance.now()`. */
  clock?: () => number;
  /** The largest event the store may hold (`--max-event-bytes`), which sizes replays' reads. */
  maxEventBytes?: number;
}

/**
 * How long after the isolates last exchanged a message the others are taken to be idle
 * again, in ms: a publish then wakes them first (see {@link Hub.prepare}). Under steady
 * load messages follow each other more closely than this and few wakes are sent.
 */
const IDLE_AFTER_MS = 1;

/** Most bytes of event data of one request that its commit message carries to other isolates. */
const CARRY_BYTES = 2048;

/** Most events one replay reads from the store at a time (bounds each read, not the replay). */
const REPLAY_PAGE = 1000;

/**
 * One job's place in the stream on this isolate. Every unfinished job has one, whether
 * or not anyone subscribes, so an event that arrives ahead of an earlier one is always
 * recognised and the gap filled, including for `all=1` subscribers that follow no job
 * in particular.
 */
class Channel {
  /** Last sequence delivered to this channel's subscribers. */
  last: number;
  /**
   * Creation time of the job this channel was made for, when known. A job made again
   * under a deleted id is always created later, so this tells the two apart: a commit
   * message of an earlier job is dropped, only events of this job are kept in
   * {@link recent}, and a replay takes events from there only when the job it reads from
   * the store has the same time.
   */
  readonly createdAt: string | undefined;
  /** Set once the job has finished: the channel goes when its last subscriber does. */
  ended = false;
  /**
   * Whether `all=1` streams here were told of this job (`created`), or need not be (it was
   * there when this isolate started). Until then its events do not reach them: the job's
   * `created` notice, or its first event here while such a stream is open, tells them.
   */
  told = false;
  readonly subscribers = new Set<Subscriber>();
  /** The job's most recent events, for replays. */
  readonly recent = new RecentRun();
  constructor(last: number, createdAt: string | undefined) {
    this.last = last;
    this.createdAt = createdAt;
  }
}

/** Unfinished jobs tracked from the store at start; later ones are tracked as they appear. */
const MAX_TRACKED_AT_START = 1_000_000;

/**
 * Finished jobs whose channel went that are remembered (their creation time and last
 * sequence), the oldest forgotten first: a commit message of another isolate that comes
 * after the job's end here is then known for what it is, not taken for a job this isolate
 * never heard of. Messages come within milliseconds; this covers thousands of jobs ending.
 */
const FINISHED_REMEMBERED = 10_000;

/** Recent events kept for replays when the server does not say: 10,000 per job, 32 MiB in all. */
export const DEFAULT_RECENT: RecentLimits = { events: 10_000, bytes: 32 * 1024 * 1024 };

/** The reason subscribers are ended with when the server stops (the job itself is still there). */
export const SHUTTING_DOWN = "server shutting down";

/** Fan-out of committed events on one isolate. */
export class Hub {
  #store: EventStore;
  /** Jobs that finished and whose channel went, by id (see {@link FINISHED_REMEMBERED}). */
  #finished = new Map<string, { createdAt: string | undefined; last: number }>();
  #fanout: Fanout;
  #channels = new Map<string, Channel>();
  #recent: RecentEvents;
  #firehose = new Set<FirehoseSubscriber>();
  #delivered = 0;
  #gapFills = 0;
  #replayedFromMemory = 0;
  #replayedFromStore = 0;

  #onWatchers: (jobId: string, count: number) => void;
  #onFirehose: (count: number) => void;
  #onRemote: (message: FanoutMessage) => void;
  #round: (deliver: () => void) => void;
  #watchedElsewhere: (jobId: string) => boolean;
  #clock: () => number;
  #maxEventBytes: number | undefined;
  /**
   * When this isolate last sent the others a commit message or a wake, or heard a commit
   * message from them (by {@link HubOptions.clock}): either way they were awake then.
   */
  #lastContact = -Infinity;

  constructor(store: EventStore, fanout: Fanout, options: HubOptions = {}) {
    this.#recent = new RecentEvents(options.recent ?? DEFAULT_RECENT);
    this.#store = store;
    this.#fanout = fanout;
    this.#onWatchers = options.onWatchers ?? (() => {});
    this.#onFirehose = options.onFirehose ?? (() => {});
    this.#onRemote = options.onRemote ?? (() => {});
    this.#round = options.round ?? ((deliver) => deliver());
    this.#watchedElsewhere = options.watchedElsewhere ?? (() => true);
    this.#clock = options.clock ?? (() => performance.now());
    this.#maxEventBytes = options.maxEventBytes;
    for (const { id, last_sequence, created_at } of store.openJobs(MAX_TRACKED_AT_START)) {
      const channel = new Channel(last_sequence, created_at);
      channel.told = true;
      this.#channels.set(id, channel);
    }
    fanout.listen(
      (message) => this.#receiveRemote(message),
      (notice) => this.#receiveNotice(notice),
      () => this.#catchUpAll(),
    );
  }

  /**
   * Subscribes to a job and replays its history, all in one step.
   *
   * @param since last sequence the client has, or `null` for the last `window` events
   * @param window events replayed when `since` is `null`
   * @returns the job and what was replayed, or `undefined` when the job does not exist
   */
  subscribe(
    jobId: string,
    subscriber: Subscriber,
    since: number | null,
    window: number,
    beforeReplay: (job: JobRecord, replay: ReplayInfo) => void,
  ): { job: JobRecord; replay: ReplayInfo } | undefined {
    // One read of the store: a deletion committed on another isolate meanwhile would leave a
    // job's row read and its events gone, and a replay its greeting announced cut short.
    return this.#store.readConsistently(() =>
      this.#subscribe(jobId, subscriber, since, window, beforeReplay)
    );
  }

  #subscribe(
    jobId: string,
    subscriber: Subscriber,
    since: number | null,
    window: number,
    beforeReplay: (job: JobRecord, replay: ReplayInfo) => void,
  ): { job: JobRecord; replay: ReplayInfo } | undefined {
    const job = this.#store.getJob(jobId);
    if (job === undefined) return undefined;
    const last = job.last_sequence;
    const first = job.first_sequence;
    let after: number;
    let truncated = false;
    if (since === null) {
      after = Math.max(first - 1, last - window);
    } else if (since > last) {
      // The client is ahead of the job (a recreated id, or a bad since): it can only
      // continue from now on; the snapshot tells it the current state.
      after = last;
      truncated = true;
    } else {
      after = since;
      if (since < first - 1) {
        after = first - 1;
        truncated = true;
      }
    }
    const count = last - after;
    const replay: ReplayInfo = {
      since,
      count,
      from: count > 0 ? after + 1 : null,
      to: count > 0 ? last : null,
      truncated,
      first_available: first,
    };
    beforeReplay(job, replay);
    subscriber.cursor = after;
    const channel = this.#channel(jobId, last, job.created_at);
    const run = channel.createdAt === job.created_at ? channel.recent : undefined;
    const runFirst = run?.first ?? Infinity;
    const send = (stored: StoredEvent) => {
      subscriber.cursor = stored.sequence;
      subscriber.deliver(new WireEvent(stored, stored.sequence === last ? job : undefined));
    };
    // Three parts, each possibly empty: from the store up to the events kept in memory,
    // those kept in memory, and from the store again the newest ones committed on another
    // isolate that have not reached this one yet.
    // Collected only when there is a run to put them in front of.
    const older: StoredEvent[] | undefined = run === undefined ? undefined : [];
    const closed = () => subscriber.closed === true;
    let fromStore = this.#replayFromStore(
      jobId,
      after,
      Math.min(last, runFirst - 1),
      send,
      older,
      closed,
    );
    // A replay cut short (its connection closed on the way, past its byte budget) read
    // no further: what it read does not reach the run, and nothing is left to send.
    if (run !== undefined && older !== undefined && !closed()) {
      this.#recent.prepend(run, older);
      const first = run.first;
      const from = subscriber.cursor;
      if (first !== undefined && from >= first - 1) {
        const events = run.events;
        for (let i = from + 1 - first; i < events.length; i++) {
          const stored = events[i]!;
          if (stored.sequence > last || closed()) break;
          send(stored);
        }
        this.#replayedFromMemory += subscriber.cursor - from;
      }
    }
    fromStore += this.#replayFromStore(jobId, subscriber.cursor, last, send, undefined, closed);
    this.#replayedFromStore += fromStore;
    subscriber.cursor = last;
    if (isTerminal(job.status)) channel.ended = true;
    channel.subscribers.add(subscriber);
    this.#onWatchers(jobId, channel.subscribers.size);
    return { job, replay };
  }

  /**
   * Hands `send` a job's events after `after` up to `last`, read from the store, until
   * `stopped` says the receiver wants no more.
   *
   * @param into also gets the events, in order (to keep them in memory)
   * @returns how many were read
   */
  #replayFromStore(
    jobId: string,
    after: number,
    last: number,
    send: (stored: StoredEvent) => void,
    into?: StoredEvent[],
    stopped: () => boolean = () => false,
  ): number {
    let read = 0;
    if (stopped()) return read;
    readEventsWhile(this.#store, jobId, after, last - after, (stored) => {
      if (stored.sequence > last) return false;
      send(stored);
      into?.push(stored);
      read++;
      return !stopped();
    }, this.#maxEventBytes);
    return read;
  }

  /** Removes a subscriber; unknown subscribers are ignored. */
  unsubscribe(jobId: string, subscriber: Subscriber): void {
    const channel = this.#channels.get(jobId);
    if (channel === undefined) return;
    if (!channel.subscribers.delete(subscriber)) return;
    this.#onWatchers(jobId, channel.subscribers.size);
    if (channel.subscribers.size === 0 && channel.ended) this.#dropEnded(jobId, channel);
  }

  /** Adds a subscriber to every job's events. */
  subscribeAll(subscriber: FirehoseSubscriber): void {
    this.#firehose.add(subscriber);
    this.#onFirehose(this.#firehose.size);
  }

  unsubscribeAll(subscriber: FirehoseSubscriber): void {
    if (this.#firehose.delete(subscriber)) this.#onFirehose(this.#firehose.size);
  }

  /**
   * Delivers events committed on this isolate, and tells the other isolates in one
   * message for the whole commit. The message goes first: the other isolates deliver to
   * their subscribers while this one delivers to its own.
   *
   * @param batches the committed events of each request of one commit
   * @returns whether anything was sent to the other isolates
   */
  publishLocal(batches: readonly (readonly CommittedEvent[])[]): boolean {
    const jobs: CommitEntry[] = [];
    // A job past its cap of events loses its oldest at every commit: another isolate could
    // find this commit's events gone from the store, so they are carried whatever their
    // size to an isolate that follows the job. One that does not may have a subscriber
    // newer than what this isolate has heard: for it, they are carried too when they are
    // half or more of what the job keeps (the next commits would drop them soon, or this
    // one did). Carrying every commit of such a job to isolates that follow nothing of it
    // held their thread decoding megabytes, and stalled their own publishes for seconds.
    const capped = new Map<string, { added: number; kept: number }>();
    for (const batch of batches) {
      const last = batch.at(-1);
      if (last === undefined || last.job.first_sequence <= 1) continue;
      const entry = capped.get(last.job.id) ?? { added: 0, kept: 0 };
      entry.added += batch.length;
      entry.kept = last.job.last_sequence - last.job.first_sequence + 1;
      capped.set(last.job.id, entry);
    }
    for (const batch of batches) {
      const jobId = batch[0]?.event.job_id;
      if (jobId === undefined) continue;
      const watched = this.#watchedElsewhere(jobId);
      const cap = capped.get(jobId);
      const whole = cap !== undefined && (watched || cap.added * 2 >= cap.kept);
      jobs.push(commitEntry(batch, whole || watched, whole));
    }
    const told = jobs.length > 0;
    if (told) {
      this.#fanout.publish({ jobs });
      this.#lastContact = this.#clock();
    }
    this.#round(() => {
      for (const batch of batches) {
        const stateAt = lastStateChange(batch);
        for (let i = 0; i < batch.length; i++) {
          const { event, job } = batch[i]!;
          this.#dispatch(new WireEvent(event, job, i === stateAt));
        }
      }
    });
    return told;
  }

  /**
   * Called when a publish to `jobId` is about to be committed here. When someone follows
   * the job on another isolate and the isolates have exchanged nothing for a while, the
   * others are woken now, so that they are awake when the commit message comes, a commit later
   * (about 0.25 ms): a hop to an idle isolate otherwise took 0.27–0.5 ms (median) on the
   * machines this was measured on, and 0.1 ms after a wake.
   */
  prepare(jobId: string): void {
    const now = this.#clock();
    if (now - this.#lastContact < IDLE_AFTER_MS || !this.#watchedElsewhere(jobId)) return;
    this.#lastContact = now;
    this.#fanout.wake();
  }

  /** Announces a new job to firehose subscribers here and on other isolates. */
  jobCreated(job: Job): void {
    this.#announce(this.#channel(job.id, job.last_sequence, job.created_at), job);
    this.#fanout.notify({ kind: "created", job });
  }

  /** Tells `all=1` streams here of the job a new channel is for. */
  #announce(channel: Channel, job: Job): void {
    channel.told = true;
    for (const subscriber of this.#firehose) subscriber.created(job);
  }

  /**
   * Tells `all=1` streams here of a job whose events may have reached this isolate before
   * its `created` (streams of the job by name had them): `created` with the job as it is
   * now, then its retained events up to where the channel is, from the store, so that they
   * get every event of the job as they would have had the notice come first.
   *
   * @param known the job as a notice or an event knew it, for when the store has a later
   *   job under the id already; without either, `all=1` streams hear nothing of this job
   */
  #announceLate(
    channel: Channel,
    jobId: string,
    createdAt: string | undefined,
    known?: Job,
  ): void {
    const stored = this.#store.getJob(jobId);
    const inStore = stored !== undefined &&
      (createdAt === undefined || stored.created_at === createdAt);
    const job = inStore
      ? publicJob(stored)
      : known !== undefined && known.created_at === createdAt
      ? publicJob(known as JobRecord)
      : undefined;
    if (job === undefined) return;
    const from = Math.min(channel.last, Math.max(0, job.first_sequence - 1));
    this.#announce(channel, { ...job, last_sequence: from });
    if (!inStore) return;
    this.#replayFromStore(jobId, from, channel.last, (event) => {
      const wire = new WireEvent(event, undefined);
      for (const subscriber of this.#firehose) {
        subscriber.deliver(wire);
        this.#delivered++;
      }
    });
  }

  /**
   * The channel an event of a job goes through. One whose job `all=1` streams here were not
   * told of yet is for a job whose `created` notice has not come (it crossed with this
   * event): they are told of the job now, as it is with events from this one on, so that
   * they never get an event of a job before its `created`; the notice tells nobody twice.
   */
  #eventChannel(
    jobId: string,
    last: number,
    createdAt: string | undefined,
    known: Job | undefined,
  ): Channel {
    const channel = this.#channel(jobId, last, createdAt);
    if (!channel.told && this.#firehose.size > 0) {
      this.#announceLate(channel, jobId, createdAt, known);
    }
    return channel;
  }

  /**
   * Delivers here whatever the store holds of a job that this isolate has not delivered yet
   * (commits of other isolates whose messages are still on the way). Called just before the
   * job is deleted: its events go, and every event committed before the deletion must reach
   * this isolate's subscribers before their `deleted`.
   */
  settle(jobId: string): void {
    const channel = this.#channels.get(jobId);
    if (channel === undefined) return;
    if (channel.subscribers.size === 0 && this.#firehose.size === 0) return;
    const job = this.#store.getJob(jobId);
    if (job === undefined) return;
    if (channel.createdAt !== undefined && job.created_at !== channel.createdAt) return;
    if (job.last_sequence > channel.last) {
      this.#round(() => this.#readUpTo(channel, jobId, job.last_sequence, true));
    }
  }

  /**
   * Ends every subscription of a job that was deleted or purged, here and elsewhere.
   *
   * @param job the job as it was, so that streams of every job can tell who may hear of it
   */
  jobDeleted(jobId: string, reason: string, job?: Job): void {
    this.#endJob(jobId, reason, job);
    this.#fanout.notify({ kind: "deleted", jobId, reason, ...(job === undefined ? {} : { job }) });
  }

  #endJob(jobId: string, reason: string, job?: Job): void {
    this.#finished.delete(jobId);
    const channel = this.#channels.get(jobId);
    if (channel !== undefined) this.#endChannel(jobId, channel, reason);
    for (const subscriber of this.#firehose) subscriber.deleted(jobId, job, reason);
  }

  /** Stops tracking a job here and ends its subscribers. */
  #endChannel(jobId: string, channel: Channel, reason: string): void {
    this.#drop(jobId, channel);
    if (channel.subscribers.size > 0) this.#onWatchers(jobId, 0);
    for (const subscriber of channel.subscribers) subscriber.end(reason);
  }

  /** Ends every subscription (shutdown): waiters answer, streams close. */
  closeAll(reason: string = SHUTTING_DOWN): void {
    const channels = [...this.#channels.values()];
    this.#channels.clear();
    this.#recent.clear();
    for (const channel of channels) {
      for (const subscriber of channel.subscribers) subscriber.end(reason);
    }
  }

  #receiveRemote(message: FanoutMessage): void {
    this.#lastContact = this.#clock();
    this.#round(() => {
      for (const [jobId, first, last, terminal, createdAt, carried] of message.jobs) {
        // Every job made since start has its channel here: one missing is a job deleted
        // while the message travelled (unless the store has it, as it was then).
        if (!this.#channels.has(jobId)) {
          if (this.#store.getJob(jobId)?.created_at !== createdAt) continue;
          // Events of a job that finished here already (they crossed with its end): `all=1`
          // streams had them; telling of the job again would start it over for them.
          const done = this.#finished.get(jobId);
          if (done?.createdAt === createdAt && last <= done.last) continue;
        }
        const channel = this.#eventChannel(jobId, first - 1, createdAt, carried?.job);
        // Events of an earlier job under the same id, deleted and made again while this
        // message travelled: none of them belong to the job followed here now.
        if (channel.createdAt !== undefined && createdAt < channel.createdAt) continue;
        if (last <= channel.last) continue;
        if (channel.subscribers.size === 0 && this.#firehose.size === 0) {
          // Nobody here to deliver to: the channel only keeps its place (and its recent
          // events no longer reach it).
          channel.last = last;
          this.#recent.release(channel.recent);
        } else if (carried === undefined) {
          if (first > channel.last + 1) this.#gapFills++;
          this.#readUpTo(channel, jobId, last, true);
        } else {
          if (first > channel.last + 1) {
            this.#gapFills++;
            if (!this.#readUpTo(channel, jobId, first - 1, false)) continue;
          }
          const envelope = envelopesOf(jobId);
          for (let i = Math.max(0, channel.last + 1 - first); i < carried.data.length; i++) {
            const sequence = first + i;
            const type = carried.types[i]!;
            const stored = {
              job_id: jobId,
              sequence,
              type,
              envelope: envelope(type, sequence, carried.timestamp, carried.data[i]!),
            };
            const withJob = i === (carried.jobAt ?? carried.data.length - 1);
            this.#deliver(
              channel,
              new WireEvent(stored, withJob ? carried.job : undefined),
              createdAt,
            );
          }
        }
        if (terminal) this.#ended(channel, jobId);
      }
    });
    this.#onRemote(message);
  }

  /**
   * After messages from other isolates were lost: brings every followed job up to what
   * the store holds, and ends the subscriptions of jobs that are gone.
   */
  #catchUpAll(): void {
    this.#round(() => {
      if (this.#firehose.size > 0) {
        // A job made elsewhere whose notice was lost: every job made since start has its
        // channel here, so an unfinished one without is told of now, as it is.
        for (const { id } of this.#store.openJobs(MAX_TRACKED_AT_START)) {
          const known = this.#channels.get(id);
          if (known?.told) continue;
          const job = this.#store.getJob(id);
          if (job === undefined) continue;
          if (known?.createdAt !== undefined && known.createdAt !== job.created_at) continue;
          // Its events up to where the channel is, then what came after as the others.
          const channel = known ?? this.#channel(id, job.last_sequence, job.created_at);
          this.#announceLate(channel, id, job.created_at);
        }
      }
      for (const [jobId, channel] of [...this.#channels]) {
        if (channel.subscribers.size === 0 && this.#firehose.size === 0) continue;
        const job = this.#store.getJob(jobId);
        if (job === undefined) {
          this.#endJob(jobId, "job deleted");
          continue;
        }
        if (job.last_sequence > channel.last) {
          this.#readUpTo(channel, jobId, job.last_sequence, true);
        }
        if (isTerminal(job.status)) this.#ended(channel, jobId);
      }
    });
  }

  #receiveNotice(notice: FanoutNotice): void {
    if (notice.kind === "created") {
      const { job } = notice;
      // A notice that comes after the job's end here: it was told of then.
      if (this.#finished.get(job.id)?.createdAt === job.created_at) return;
      const channel = this.#channel(job.id, job.last_sequence, job.created_at);
      // Told already (an event of it came first), or a late notice of an earlier job under
      // an id made again since: nobody here is told twice, or of a job that is gone.
      if (channel.createdAt !== job.created_at || channel.told) return;
      if (channel.last <= job.last_sequence) this.#announce(channel, job);
      else this.#announceLate(channel, job.id, job.created_at, job);
      return;
    }
    // A late notice about an earlier job under an id made again since: the new job stays.
    const gone = notice.job?.created_at;
    if (gone !== undefined) {
      const channel = this.#channels.get(notice.jobId);
      const current = channel?.createdAt ?? this.#store.getJob(notice.jobId)?.created_at;
      if (current !== undefined && current > gone) return;
    }
    this.#endJob(notice.jobId, notice.reason ?? "job deleted", notice.job);
  }

  /**
   * The channel of a job, made when missing. A channel left from an earlier job under the
   * same id (deleted, and its notice or a late message of it came after) is replaced once a
   * later job shows up: it would take the new job's first events for ones delivered already.
   */
  #channel(jobId: string, last: number, createdAt: string | undefined): Channel {
    let channel = this.#channels.get(jobId);
    if (
      channel !== undefined && createdAt !== undefined && channel.createdAt !== undefined &&
      createdAt > channel.createdAt
    ) {
      // The job was deleted and made again, and the deletion's notice has not come yet.
      this.#endChannel(jobId, channel, "job deleted");
      for (const subscriber of this.#firehose) subscriber.deleted(jobId, undefined, "job deleted");
      channel = undefined;
    }
    if (channel === undefined) {
      channel = new Channel(last, createdAt);
      const done = this.#finished.get(jobId);
      if (done !== undefined && (createdAt === undefined || createdAt === done.createdAt)) {
        // A job that finished here before: `all=1` streams here were told of it and had
        // its events, up to its end (a late message of another isolate's brings nothing new).
        this.#finished.delete(jobId);
        channel.told = true;
        channel.last = Math.max(last, done.last);
        channel.ended = true;
      }
      this.#channels.set(jobId, channel);
    }
    return channel;
  }

  #dispatch(event: WireEvent): void {
    // A job not tracked yet (created before a restart past the tracking cap) starts here.
    const channel = this.#eventChannel(
      event.jobId,
      event.sequence - 1,
      event.job?.created_at,
      event.job,
    );
    if (event.sequence <= channel.last) return;
    if (event.sequence > channel.last + 1) {
      if (channel.subscribers.size === 0 && this.#firehose.size === 0) {
        // Another isolate committed the events in between, and nobody here follows the
        // job: nothing to read back, the channel only keeps its place (a subscriber who
        // comes later replays from the store, and the other isolate's message finds them
        // passed).
        channel.last = event.sequence - 1;
        this.#recent.release(channel.recent);
      } else {
        this.#gapFills++;
        if (!this.#readUpTo(channel, event.jobId, event.sequence - 1, false)) return;
      }
    }
    this.#deliver(channel, event, event.job?.created_at);
    if (event.terminal) this.#ended(channel, event.jobId);
  }

  /** Marks a channel's job finished; the channel goes once nobody follows it. */
  #ended(channel: Channel, jobId: string): void {
    channel.ended = true;
    if (channel.subscribers.size === 0) this.#dropEnded(jobId, channel);
  }

  /** Lets a finished job's channel go, remembering where it ended. */
  #dropEnded(jobId: string, channel: Channel): void {
    this.#drop(jobId, channel);
    this.#finished.delete(jobId);
    if (this.#finished.size >= FINISHED_REMEMBERED) {
      this.#finished.delete(this.#finished.keys().next().value!);
    }
    this.#finished.set(jobId, { createdAt: channel.createdAt, last: channel.last });
  }

  /** Stops tracking a job here, and lets go of its recent events. */
  #drop(jobId: string, channel: Channel): void {
    this.#channels.delete(jobId);
    this.#recent.release(channel.recent);
  }

  /**
   * Delivers a job's events from the store, after the channel's last up to `last`.
   *
   * @param snapshot whether the last event up to `last` that changes the job carries the
   *   job's state (as the store has it now)
   * @returns false when the store no longer has the channel's job (deleted, or deleted and
   *   made again): nothing was delivered, and the caller delivers nothing after `last` either
   */
  #readUpTo(channel: Channel, jobId: string, last: number, snapshot: boolean): boolean {
    // One read of the store: another isolate's deletion committed between the job's row and
    // its events would look like events dropped by the per-job cap, and be skipped.
    return this.#store.readConsistently(() => this.#readUpToNow(channel, jobId, last, snapshot));
  }

  #readUpToNow(channel: Channel, jobId: string, last: number, snapshot: boolean): boolean {
    // One read of the job serves the whole call (the store cannot change meanwhile): what
    // the store holds belongs to the job it has now, which may be a newer one under the same
    // id than this channel's, and its state goes with the event at `last`.
    const current = this.#store.getJob(jobId);
    if (
      current === undefined ||
      (channel.createdAt !== undefined && current.created_at !== channel.createdAt)
    ) {
      // Deleted on another isolate (and perhaps made again) since these events were
      // committed: they went with it. Nothing after them is delivered either (a stream never
      // skips a sequence); what the other isolates' messages still carry of them comes next,
      // then the deletion's notice.
      return false;
    }
    while (channel.last < last) {
      const page = this.#store.readEvents(
        jobId,
        channel.last,
        Math.min(REPLAY_PAGE, last - channel.last),
      );
      if (page.length === 0) {
        // Purged meanwhile (per-job cap): nothing older can be delivered any more.
        channel.last = last;
        this.#recent.release(channel.recent);
        return true;
      }
      // The job's state goes with the last event up to `last` that changed it, when the page
      // holds it (events after it change nothing a snapshot shows). The state is the store's
      // now, which may include later commits: it still goes with a progress, result or error
      // event, as a later commit that changes nothing (a log) would otherwise leave snapshot
      // streams on a state from before this one; never with a status event, whose state says
      // whether it ended the job.
      let stateAt = -1;
      if (snapshot && current !== undefined && page.at(-1)!.sequence >= last) {
        for (let i = page.length - 1; i >= 0 && stateAt === -1; i--) {
          if (page[i]!.sequence <= last && changesState(page[i]!.type)) stateAt = i;
        }
        const moved = current.last_sequence !== last;
        if (stateAt !== -1 && moved && page[stateAt]!.type === "status") stateAt = -1;
      }
      for (let i = 0; i < page.length; i++) {
        const stored = page[i]!;
        if (stored.sequence > last) return true;
        this.#deliver(
          channel,
          new WireEvent(stored, i === stateAt ? current : undefined),
          current?.created_at,
        );
      }
    }
    return true;
  }

  /**
   * @param generation creation time of the job the event belongs to, when known: only an
   *   event of the channel's own job is kept for replays
   */
  #deliver(channel: Channel, event: WireEvent, generation: string | undefined): void {
    channel.last = event.sequence;
    if (generation !== undefined && generation === channel.createdAt) {
      this.#recent.append(channel.recent, event.stored);
    } else {
      this.#recent.release(channel.recent);
    }
    for (const subscriber of channel.subscribers) {
      if (event.sequence <= subscriber.cursor) continue;
      subscriber.cursor = event.sequence;
      subscriber.deliver(event);
      this.#delivered++;
    }
    // Never an event of a job `all=1` streams here were not told of.
    if (!channel.told) return;
    for (const subscriber of this.#firehose) {
      subscriber.deliver(event);
      this.#delivered++;
    }
  }

  /** Subscriber counts of every job followed here. */
  watcherCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const [id, channel] of this.#channels) {
      if (channel.subscribers.size > 0) counts[id] = channel.subscribers.size;
    }
    return counts;
  }

  /** Number of subscribers of a job on this isolate. */
  watchers(jobId: string): number {
    return this.#channels.get(jobId)?.subscribers.size ?? 0;
  }

  /** The highest sequence this isolate has delivered for a job, if it follows the job. */
  lastSequence(jobId: string): number | undefined {
    return this.#channels.get(jobId)?.last;
  }

  /** Per-job subscriber counts and delivered sequence, for `/stats`. */
  jobs(): Map<string, { connections: number; last_sequence: number }> {
    const out = new Map<string, { connections: number; last_sequence: number }>();
    for (const [id, channel] of this.#channels) {
      if (channel.subscribers.size > 0) {
        out.set(id, { connections: channel.subscribers.size, last_sequence: channel.last });
      }
    }
    return out;
  }

  /** Bytes of recent events kept in memory for replays on this isolate. */
  get recentBytes(): number {
    return this.#recent.bytes;
  }

  /**
   * Counters since start: deliveries to subscribers, gaps filled from the store, and
   * replayed events taken from memory and from the store; and firehose subscribers now.
   */
  get counts(): {
    delivered: number;
    gapFills: number;
    replayedFromMemory: number;
    replayedFromStore: number;
    firehose: number;
  } {
    return {
      delivered: this.#delivered,
      gapFills: this.#gapFills,
      replayedFromMemory: this.#replayedFromMemory,
      replayedFromStore: this.#replayedFromStore,
      firehose: this.#firehose.size,
    };
  }
}

/**
 * What one request of a commit added, as other isolates learn it: the job, the first and
 * last sequence, whether the job is finished, and the events when they are small and
 * `carry` (someone may follow the job on another isolate).
 *
 * @param carry whether to carry the events (as far as {@link CARRY_BYTES} allows)
 * @param whole whether to carry them all, whatever their size
 */
function commitEntry(
  batch: readonly CommittedEvent[],
  carry: boolean,
  whole = false,
): CommitEntry {
  const first = batch[0]!;
  const last = batch[batch.length - 1]!;
  const entry: CommitEntry = [
    last.job.id,
    first.event.sequence,
    last.event.sequence,
    isTerminal(last.job.status),
    last.job.created_at,
  ];
  if (!carry) return entry;
  const carried: CarriedEvents = { timestamp: first.timestamp, types: [], data: [] };
  let bytes = 0;
  for (const { event, data } of batch) {
    bytes += data.length + event.type.length;
    if (bytes > CARRY_BYTES && !whole) break;
    carried.types.push(event.type);
    carried.data.push(data);
  }
  if (bytes <= CARRY_BYTES || whole) {
    // The state goes with the last event that changed it: events after it (logs) change
    // nothing a snapshot shows.
    const at = lastStateChange(batch);
    if (at >= 0) {
      carried.job = batch[at]!.job;
      if (at < batch.length - 1) carried.jobAt = at;
    }
    entry.push(carried);
  }
  return entry;
}

/** Index of the last event of a request that changes the job's snapshot, or -1. */
function lastStateChange(batch: readonly CommittedEvent[]): number {
  let at = batch.length - 1;
  while (at >= 0 && !changesState(batch[at]!.event.type)) at--;
  return at;
}
