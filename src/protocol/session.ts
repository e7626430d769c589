/**
 * The one subscription loop every stream transport shares. A session is one client
 * connection following one job, several jobs, or every visible job (`all=1`); the
 * transports differ only in their codec and sink.
 *
 * Order of messages for each job: `connection` (or `subscribed`) with the snapshot and
 * replay bounds, the replayed events, then live events. The hub makes the three one
 * atomic step, so nothing committed meanwhile is lost or repeated.
 *
 * @module
 */
import type { FirehoseSubscriber, Hub, ReplayInfo, Subscriber } from "../hub/hub.ts";
import type { WireEvent } from "../hub/wire_event.ts";
import { encodeEnvelope } from "../jobs/envelope.ts";
import { flatSnapshot, type Job, publicJob } from "../jobs/job.ts";
import type { JobRecord } from "../jobs/job.ts";
import { isTerminal, type JobStatus } from "../jobs/status.ts";
import { type Codec, frameLength, type Transport } from "./codec.ts";
import { Outbox, type OutboxLimits, type Sink, SLOW_CONSUMER_REASON } from "./outbox.ts";
import type { ReplayAllowance } from "./replay_allowance.ts";

/** Where a job's replay starts after: before its first event, or its end when it has none. */
function replayStart(job: Job, replay: ReplayInfo): number {
  return replay.from === null ? job.last_sequence : replay.from - 1;
}

/** WebSocket close codes (DESIGN §6). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  serverError: 1011,
  overloaded: 1013,
  jobNotFound: 4004,
  slowConsumer: 4008,
} as const;

/** Longest close reason a WebSocket close frame can carry, in bytes. */
export const MAX_REASON_BYTES = 123;

const utf8 = new TextEncoder();

/** Filters of an `all=1` session. */
export interface FirehoseFilter {
  kind?: string;
  status?: JobStatus;
}

/** What a session needs from the server around it. */
export interface SessionContext {
  hub: Hub;
  /** Looks a job up in the store (for filters and visibility of `all=1` sessions). */
  job(jobId: string): JobRecord | undefined;
  /** Whether the session's principal may see a job. */
  visible(job: Job): boolean;
  limits: OutboxLimits;
  /** Told when the outbox starts holding frames, so they are drained later. */
  onBacklog(outbox: Outbox): void;
  /** Told once when the session has started (registered with the isolate's sessions). */
  onOpen?(session: Session): void;
  /** Told once when the session has closed, for bookkeeping. */
  onClose(session: Session): void;
  /**
   * Told once when the connection itself is over: the client answered the close, or left.
   * That can be long after the session closed (a client that stops reading holds its
   * socket, and what was written to it, until it reads or goes), so the connection's slot
   * is given back only then.
   */
  onEnded(): void;
  /** Events replayed when a subscription gives no `since`. */
  window: number;
  /** The isolate's allowance of replay bytes, shared by its connections (none: unbounded). */
  readonly replays?: ReplayAllowance;
  /** When the principal's credential expires (epoch ms): the session closes then (1008). */
  expiresAt: number | null;
  /** The `jti` of the token the stream was opened with, by which it is revoked. */
  readonly tokenId?: string | undefined;
  /** Whether that token has been revoked since (signed out, or its user removed). */
  revoked?(): boolean;
}

/**
 * The `error_type` of a refusal that is not about the message itself (those are
 * `validation_error`): the job is not there, or not the caller's to see.
 */
const REFUSAL_TYPES: Readonly<Record<string, string>> = {
  job_not_found: "not_found",
  job_gone: "not_found",
  forbidden: "forbidden",
};

/** Outcome of subscribing a session to a job. */
export type SubscribeResult = "ok" | "not_found" | "forbidden" | "already";

class JobSubscription implements Subscriber {
  cursor = 0;
  finished = false;
  constructor(readonly session: Session, readonly jobId: string) {}
  deliver(event: WireEvent): void {
    this.session.send(this, event);
  }
  get closed(): boolean {
    return this.session.closed;
  }
  end(reason: string): void {
    this.session.jobEnded(this, reason);
  }
}

class FirehoseSubscription implements FirehoseSubscriber {
  /** Per job: whether it passes the filter and visibility (statuses change, kinds do not). */
  #kinds = new Map<string, boolean>();
  /**
   * Per job the client knows that has not ended: the last sequence sent of it, for
   * heartbeats. A job leaves on its terminal event or its deletion.
   */
  readonly open = new Map<string, number>();
  /**
   * Per job, for a `status` filter: its status as of the last event handed to this stream.
   * Only `status` events change it, so each event is kept or not by the same rule on
   * every isolate, whatever that isolate's copy of the job holds by the time it delivers.
   */
  #statuses = new Map<string, JobStatus>();
  /**
   * Per job the stream started with, until an event after it is sent: the last sequence
   * the `connection` message gave. The list is read from the store, which may already hold
   * commits of other isolates whose messages are still on the way; those come after, and are
   * not sent again (nor a `created` for a job listed already).
   */
  #listed = new Map<string, { last: number; createdAt: string }>();
  constructor(readonly session: Session, readonly filter: FirehoseFilter) {}

  /** Jobs the stream started with: the client knows them, so it hears of their deletion. */
  started(jobs: readonly Job[]): void {
    for (const job of jobs) {
      this.#listed.set(job.id, { last: job.last_sequence, createdAt: job.created_at });
      this.#kinds.set(job.id, true);
      if (this.filter.status !== undefined) this.#statuses.set(job.id, job.status);
      if (!isTerminal(job.status)) this.open.set(job.id, job.last_sequence);
    }
  }

  #admits(job: Job | undefined): boolean {
    return job !== undefined && this.session.context.visible(job) &&
      (this.filter.kind === undefined || job.kind === this.filter.kind);
  }

  #passes(jobId: string, job: Job | undefined, event?: WireEvent): boolean {
    let seen = this.#kinds.get(jobId);
    if (seen === undefined) {
      seen = this.#admits(job ?? this.session.context.job(jobId));
      this.#kinds.set(jobId, seen);
    }
    if (!seen) return false;
    if (this.filter.status === undefined) return true;
    // The status as of this event: told by the event, else carried on from the job's
    // earlier events, and only for a job first met here, from what this isolate knows.
    const status = event?.statusAfter ?? this.#statuses.get(jobId) ?? job?.status ??
      this.session.context.job(jobId)?.status;
    if (status !== undefined) this.#statuses.set(jobId, status);
    return status === this.filter.status;
  }

  deliver(event: WireEvent): void {
    const listed = this.#listed.get(event.jobId);
    if (listed !== undefined) {
      // A job made again under the id is told of (`created`) before any event of it.
      if (event.sequence <= listed.last) return;
      this.#listed.delete(event.jobId);
    }
    const passes = this.#passes(event.jobId, event.job, event);
    if (passes) this.session.sendFirehose(event);
    // A job that ended, or left the filter's status, is no longer followed here.
    if (passes && !event.terminal) this.open.set(event.jobId, event.sequence);
    else this.open.delete(event.jobId);
    if (event.terminal) this.#statuses.delete(event.jobId);
  }
  created(job: Job): void {
    const listed = this.#listed.get(job.id);
    if (listed?.createdAt === job.created_at) return;
    if (listed !== undefined) {
      // The listed job was deleted and another made under its id, and the deletion's notice
      // (which the newer job makes the hub pass over) has not come: the client hears of both.
      this.deleted(job.id);
    }
    if (this.filter.status !== undefined) this.#statuses.set(job.id, job.status);
    if (!this.#passes(job.id, job)) return;
    // Followed from now on: the notice's marks include it.
    if (!isTerminal(job.status)) this.open.set(job.id, job.last_sequence);
    this.session.sendNotice("created", job.id, { job });
  }
  deleted(jobId: string, job?: Job, reason = "job deleted"): void {
    // Also a job this stream never saw an event of: the client may have listed it itself.
    const tell = this.#kinds.get(jobId) ?? this.#admits(job);
    this.#kinds.delete(jobId);
    this.#statuses.delete(jobId);
    this.#listed.delete(jobId);
    this.open.delete(jobId);
    // After it left the marks, which the notice carries.
    if (tell) this.session.sendNotice("deleted", jobId, { reason });
  }
}

/** One client connection and what it follows. */
export class Session {
  readonly transport: Transport;
  readonly codec: Codec;
  readonly context: SessionContext;
  readonly closeOnFinish: boolean;
  /** Set for multi-job SSE: each event's id is the cursor of every job, by query order. */
  readonly cursorIds: string[] | undefined;
  #outbox: Outbox;
  #subs = new Map<string, JobSubscription>();
  /** The `since` of each job a multi-job stream is about to follow (see {@link expect}). */
  #since: Map<string, number> | undefined;
  #firehose: FirehoseSubscription | undefined;
  #replaying = false;
  /** Bytes of events the replay under way has written. */
  #replayed = 0;
  /** Bytes the current replay may write: the outbox's budget within the isolate's allowance. */
  #replayLimit = 0;
  #closed = false;
  /** Set while a multi-job stream subscribes to the jobs it names (see {@link join}). */
  #joining = false;
  #single: boolean;
  /** The job a one-job stream is for (the first it followed). */
  #own: string | undefined;
  /** What {@link followed} says once the subscriptions are gone. */
  #followedAtClose: string | undefined;

  /**
   * @param single true for a one-job stream (`/ws/jobs/:id`, `/jobs/:id/events`): its
   *   first message is `connection` and a deleted job closes it
   */
  constructor(
    codec: Codec,
    sink: Sink,
    context: SessionContext,
    options: { closeOnFinish: boolean; single: boolean; cursorIds?: string[] },
  ) {
    this.transport = codec.transport;
    this.codec = codec;
    this.context = context;
    this.closeOnFinish = options.closeOnFinish;
    this.#single = options.single;
    this.cursorIds = options.cursorIds;
    // An outbox that closes the connection itself (a consumer too slow) ends the session
    // now, not when the client answers the close: its subscriptions go at once (its slot
    // when the transport tells the connection is over, see `ended`).
    this.#outbox = new Outbox(sink, context.limits, context.onBacklog, () => this.dispose());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Job ids this session follows. */
  get jobIds(): string[] {
    return [...this.#subs.keys()];
  }

  /** The outbox, for the owner's drain loop and stats. */
  get outbox(): Outbox {
    return this.#outbox;
  }

  /**
   * Starts following a job: `connection` (first job of a single-job session) or
   * `subscribed`, then replay from `since`, then live events.
   */
  subscribe(jobId: string, since: number | null): SubscribeResult {
    if (this.#closed) return "ok";
    if (this.#subs.has(jobId)) return "already";
    if (this.#outbox.overfull()) {
      this.close(CLOSE.slowConsumer, SLOW_CONSUMER_REASON);
      return "ok";
    }
    const sub = new JobSubscription(this, jobId);
    const snapshot = this.codec.format === "snapshot";
    const first = this.#single && this.#subs.size === 0;
    let denied = false;
    this.#replaying = true;
    this.#replayed = 0;
    this.#replayLimit = Math.min(
      this.#outbox.replayBudget,
      this.context.replays?.available() ?? Infinity,
    );
    this.#outbox.cork();
    let joined: { job: Job; replay: ReplayInfo } | undefined;
    try {
      joined = this.context.hub.subscribe(
        jobId,
        sub,
        // A snapshot stream starts from the current state; it replays nothing.
        snapshot ? null : since,
        snapshot ? 0 : this.context.window,
        (job, replay) => {
          if (!this.context.visible(job)) {
            denied = true;
            throw new DeniedError();
          }
          this.#subs.set(jobId, sub);
          if (first) this.#own ??= jobId;
          // A one-job SSE stream says where it stands from its first message: an
          // EventSource whose stream ends before any event (a finished job it is up to
          // date with) then resumes with that place, and is told 204 rather than fed the
          // same greeting every few seconds.
          const place = first && this.cursorIds === undefined
            ? (snapshot ? job.last_sequence : replayStart(job, replay))
            : undefined;
          if (snapshot) {
            this.#push(JSON.stringify(flatSnapshot(job)), "snapshot", false, place);
          } else {
            this.#sendMessage(
              first ? "connection" : "subscribed",
              jobId,
              {
                ...(first
                  ? {
                    status: "connected",
                    message: `Connected to job ${jobId}`,
                    server_time: new Date().toISOString(),
                  }
                  : {}),
                last_sequence: job.last_sequence,
                job: publicJob(job),
                replay,
              },
              false,
              place,
            );
          }
        },
      );
    } catch (error) {
      if (!(error instanceof DeniedError)) throw error;
    } finally {
      this.#replaying = false;
      this.context.replays?.spend(this.#replayed);
      this.#outbox.uncork();
    }
    if (denied) return "forbidden";
    if (joined === undefined) return "not_found";
    if (this.#closed) {
      // Closed by its own replay (the terminal event of a job followed with close_on_finish):
      // the hub registered the subscription after the close let go of the others.
      this.context.hub.unsubscribe(jobId, sub);
      return "ok";
    }
    if (isTerminal(joined.job.status)) this.#finished(sub);
    return "ok";
  }

  /** How many jobs the session follows by name. */
  get jobCount(): number {
    return this.#subs.size;
  }

  /** Whether the session follows `jobId` by name. */
  follows(jobId: string): boolean {
    return this.#subs.has(jobId);
  }

  /** Stops following a job; answers `unsubscribed`. */
  unsubscribe(jobId: string): boolean {
    const sub = this.#subs.get(jobId);
    if (sub === undefined) return false;
    this.#subs.delete(jobId);
    this.#since?.delete(jobId);
    this.context.hub.unsubscribe(jobId, sub);
    this.#sendAbout("unsubscribed", jobId, { last_sequence: sub.cursor });
    return true;
  }

  /**
   * Follows every job the principal may see (`all=1`), with optional filters.
   *
   * @param jobs the newest of them, sent first
   * @param more whether there are more than `jobs` (the client lists the rest page by page)
   */
  subscribeAll(filter: FirehoseFilter, jobs: Job[], more = false): void {
    if (this.#closed) return;
    this.#firehose = new FirehoseSubscription(this, filter);
    this.#firehose.started(jobs);
    this.context.hub.subscribeAll(this.#firehose);
    if (this.codec.format === "snapshot") {
      for (const job of jobs) this.#push(JSON.stringify(flatSnapshot(job)), "snapshot", false);
      return;
    }
    this.#sendMessage("connection", null, {
      status: "connected",
      message: "Connected to every visible job",
      server_time: new Date().toISOString(),
      filter,
      jobs,
      more_jobs: more,
      ...this.#marks(null),
    }, false);
  }

  /** The high-water marks of the named jobs the principal may read (none of the others). */
  #namedMarks(jobIds: readonly string[]): Record<string, number> {
    const marks: Record<string, number> = {};
    for (const id of jobIds) {
      const job = this.context.job(id);
      if (job !== undefined && this.context.visible(job)) marks[id] = job.last_sequence;
    }
    return marks;
  }

  /** Sends the first message of a multi-job session. */
  greet(jobIds: string[]): void {
    if (this.codec.format === "snapshot") return;
    this.#sendMessage("connection", null, {
      status: "connected",
      message: "Connected",
      server_time: new Date().toISOString(),
      jobs: jobIds,
      // Each named job it may read, as it stands (its `subscribed` message follows).
      last_sequences: this.#namedMarks(jobIds),
    }, false);
  }

  /** @internal Called by a subscription for each event of its job. */
  send(sub: JobSubscription, event: WireEvent): void {
    if (this.#closed) return;
    const frame = this.cursorIds === undefined
      ? event.encoded(this.codec.events)
      : this.codec.withId(event, this.#cursor());
    if (frame !== undefined) {
      const coalesce = this.codec.format === "snapshot" || event.type === "progress";
      this.#outbox.push(frame, coalesce ? sub.jobId : undefined, !this.#replaying);
      if (this.#replaying) {
        this.#replayed += frameLength(frame);
        if (this.#replayed > this.#replayLimit) {
          // The client gets this event and what waited before it (frames behind a backlog
          // would be dropped by a plain close), and resumes after it; the rest of the replay is
          // not held here. The reason gives the `since` to resume with: a one-job stream's
          // sequence, or every job's place when the stream follows several (a one-job
          // WebSocket may subscribe to others too), or on a WebSocket, whose close reason holds
          // 123 bytes, only the cut job's, with every job's in an error message before the close.
          const alone = this.#single && this.#subs.size === 1 && sub.jobId === this.#own;
          const since = alone ? String(event.sequence) : this.#everyPlace(sub, event.sequence);
          let reason = `replay continues with since=${since}`;
          if (!alone && this.codec.transport === "websocket") {
            this.#sendError("slow_consumer", reason, sub.jobId, {
              error_type: "system_error",
              code: "slow_consumer",
              close_code: CLOSE.slowConsumer,
            }, false);
            reason = `replay continues with since=${sub.jobId}:${event.sequence}`;
            // A place cut short would resume from the wrong sequence: a long job id leaves
            // the place to the error message alone.
            if (utf8.encode(reason).byteLength > MAX_REASON_BYTES) {
              reason =
                "replay continues: resume with since from the error message before this close";
            }
          }
          this.finish(CLOSE.slowConsumer, reason);
          return;
        }
      }
    }
    if (event.terminal) this.#finished(sub);
  }

  /** @internal Called by the firehose subscription for each visible event. */
  sendFirehose(event: WireEvent): void {
    if (this.#closed) return;
    const frame = event.encoded(this.codec.events);
    if (frame === undefined) return;
    const coalesce = this.codec.format === "snapshot" || event.type === "progress";
    this.#outbox.push(frame, coalesce ? event.jobId : undefined);
  }

  /** @internal Sends a `created` or `deleted` notice on an `all=1` session. */
  sendNotice(type: "created" | "deleted", jobId: string, data: Record<string, unknown>): void {
    if (this.codec.format === "snapshot" && type === "created") {
      if (data.job !== undefined) {
        this.#push(JSON.stringify(flatSnapshot(data.job as Job)), "snapshot", true);
      }
      return;
    }
    // As every other envelope of such a stream: the marks of what it follows (a flat
    // message has none, and they are not worked out for it).
    this.#sendAbout(
      type,
      jobId,
      this.codec.format === "snapshot" ? data : { ...data, ...this.#marks(null) },
    );
  }

  /** @internal The job was deleted or purged. */
  jobEnded(sub: JobSubscription, reason: string): void {
    this.#subs.delete(sub.jobId);
    this.#since?.delete(sub.jobId);
    if (this.#single && this.#subs.size === 0) {
      this.jobGone(sub.jobId, reason, "job_gone", sub.cursor);
      return;
    }
    this.#sendAbout("unsubscribed", sub.jobId, { last_sequence: sub.cursor, reason });
  }

  #finished(sub: JobSubscription): void {
    sub.finished = true;
    this.#closeIfAllFinished();
  }

  /**
   * Follows the jobs a multi-job stream names, one after the other, and only then asks
   * whether they have all ended: a first job that had ended already is not all of them.
   */
  join(jobIds: readonly string[], subscribe: (jobId: string) => void): void {
    this.#joining = true;
    try {
      for (const id of jobIds) subscribe(id);
    } finally {
      this.#joining = false;
    }
    this.#closeIfAllFinished();
  }

  #closeIfAllFinished(): void {
    if (!this.closeOnFinish || this.#firehose !== undefined || this.#joining) return;
    if (this.#subs.size === 0) return;
    for (const other of this.#subs.values()) if (!other.finished) return;
    this.finish(CLOSE.normal, "job finished");
  }

  /**
   * Tells a multi-job stream where the client stands on a job it is about to follow: event
   * ids then carry that place for the job until it is followed, and a client resuming from
   * an event of an earlier job is not sent this one's history again.
   */
  expect(jobId: string, since: number | null): void {
    if (since !== null) (this.#since ??= new Map()).set(jobId, since);
  }

  /**
   * Every followed job's place as a multi-job `since` (`a:5,b:7`), `sub`'s at `sequence`,
   * and a job named but not joined yet at the `since` it was asked from (a job left since,
   * unsubscribed or deleted, is not named).
   */
  #everyPlace(sub: JobSubscription, sequence: number): string {
    const places = new Map(this.#since);
    for (const [id, s] of this.#subs) places.set(id, s === sub ? sequence : s.cursor);
    return [...places].map(([id, at]) => `${id}:${at}`).join(",");
  }

  #cursor(): string {
    return (this.cursorIds ?? []).map((id) =>
      this.#subs.get(id)?.cursor ?? this.#since?.get(id) ?? 0
    ).join(",");
  }

  /** Sends a keep-alive: `heartbeat` with each job's high-water mark, or `ping` for snapshots. */
  heartbeat(now: string): void {
    if (this.#closed) return;
    if (this.codec.comment !== undefined) this.#outbox.push(this.codec.comment);
    if (this.codec.format === "snapshot") {
      this.#push(JSON.stringify({ type: "ping", timestamp: now }), "ping", true);
      return;
    }
    const jobId = this.#only()?.jobId ?? null;
    this.#sendMessage("heartbeat", jobId, { timestamp: now, ...this.#marks(jobId) });
  }

  /**
   * The job of a one-job stream (`/ws/jobs/:id`, `/jobs/:id/events`) while it follows that
   * job alone: its session messages name the job and carry `last_sequence`. Any other stream,
   * or one that has subscribed to more, reports `last_sequences`, so that a stream's messages
   * keep one shape.
   */
  #only(): JobSubscription | undefined {
    if (!this.#single || this.#subs.size !== 1 || this.#firehose !== undefined) return undefined;
    return this.#subs.get(this.#own ?? "");
  }

  /** The job id and high-water marks of the `error` an HTTP stream ends with (see `finish`). */
  endMarks(): { jobId: string | null; marks: Record<string, unknown> } {
    const jobId = this.#only()?.jobId ?? null;
    return { jobId, marks: this.#marks(jobId) };
  }

  /**
   * The high-water marks a session message reports, so a client can tell it missed
   * something: `last_sequence` on a one-job stream following its job alone (see
   * {@link #only}) when the message names that job or none, else `last_sequences` of every
   * job followed (on an `all=1` stream, each job it has told of that has not ended or left
   * its filter).
   */
  #marks(
    jobId: string | null,
  ): { last_sequence: number } | { last_sequences: Record<string, number> } {
    const only = this.#only();
    if (only !== undefined && (jobId === null || jobId === only.jobId)) {
      return { last_sequence: this.#highWater(only) };
    }
    const lastSequences: Record<string, number> = {};
    for (const [id, sent] of this.#firehose?.open ?? []) {
      lastSequences[id] = Math.max(sent, this.context.hub.lastSequence(id) ?? 0);
    }
    for (const sub of this.#subs.values()) lastSequences[sub.jobId] = this.#highWater(sub);
    return { last_sequences: lastSequences };
  }

  #highWater(sub: JobSubscription): number {
    return Math.max(sub.cursor, this.context.hub.lastSequence(sub.jobId) ?? 0);
  }

  /** Answers a client ping with the server time (for round-trip and quality). */
  pong(clientTime: unknown): void {
    const now = new Date().toISOString();
    if (this.codec.format === "snapshot") {
      this.#push(
        JSON.stringify({ type: "pong", timestamp: now, client_time: clientTime ?? null }),
        "pong",
        true,
      );
      return;
    }
    const jobId = this.#only()?.jobId ?? null;
    this.#sendMessage("pong", jobId, {
      client_time: clientTime ?? null,
      server_time: now,
      ...this.#marks(jobId),
    });
  }

  /** Tells the client its message was refused; the connection stays open. */
  error(code: string, message: string, jobId: string | null = null, details?: unknown): void {
    // On a stream that follows one job, an error about no job in particular names that job.
    jobId ??= this.#only()?.jobId ?? null;
    this.#sendError(code, message, jobId, {
      error_type: REFUSAL_TYPES[code] ?? "validation_error",
      code,
      ...(details === undefined ? {} : { details }),
    }, true);
  }

  /**
   * An `error` message: `{type, error, code}` on snapshot streams, else an envelope whose
   * data is the error and `fields` (the code among them).
   */
  #sendError(
    code: string,
    message: string,
    jobId: string | null,
    fields: Record<string, unknown>,
    bounded: boolean,
    marks: Record<string, unknown> = this.#marks(jobId),
  ): void {
    if (this.codec.format === "snapshot") {
      this.#push(JSON.stringify({ type: "error", error: message, code }), "error", bounded);
    } else {
      this.#sendMessage("error", jobId, { error: message, ...fields, ...marks }, bounded);
    }
  }

  /**
   * A session message about one job: an envelope, or on snapshot streams a flat
   * `{type, job_id, timestamp, reason?}`, so that a client of flat messages can tell it from
   * a snapshot (which has no `type`) by its `type`, as it does keep-alives and errors.
   */
  #sendAbout(type: string, jobId: string, data: Record<string, unknown>): void {
    if (this.codec.format !== "snapshot") {
      this.#sendMessage(type, jobId, data);
      return;
    }
    const flat: Record<string, unknown> = {
      type,
      job_id: jobId,
      timestamp: new Date().toISOString(),
    };
    if (data.reason !== undefined) flat.reason = data.reason;
    this.#push(JSON.stringify(flat), type, true);
  }

  #sendMessage(
    type: string,
    jobId: string | null,
    data: Record<string, unknown>,
    bounded = true,
    place?: number,
  ): void {
    this.#push(
      encodeEnvelope(type, jobId, null, new Date().toISOString(), data),
      type,
      bounded,
      place,
    );
  }

  #push(json: string, type: string, bounded: boolean, place?: number): void {
    if (this.#closed) return;
    this.#outbox.push(this.codec.session(type, json, place), undefined, bounded);
  }

  /**
   * Ends a one-job stream whose job is unknown, purged or deleted: what is waiting, an
   * `error` message that names the job, then close 4004.
   *
   * @param code `job_gone` for a job that was there (deleted or purged: its id answers 410)
   * @param lastSequence the last of its events the stream sent (0: none)
   */
  jobGone(
    jobId: string,
    reason: string,
    code: "job_gone" | "job_not_found" = "job_gone",
    lastSequence = 0,
  ): void {
    if (this.#closed) return;
    this.#sendError(
      code,
      reason,
      jobId,
      {
        error_type: REFUSAL_TYPES[code],
        code,
        close_code: CLOSE.jobNotFound,
      },
      false,
      { last_sequence: lastSequence },
    );
    this.finish(CLOSE.jobNotFound, reason);
  }

  /** Flushes what is waiting, then closes (normal end, shutdown, job finished). */
  finish(code: number, reason: string): void {
    if (this.#closed) return;
    this.#outbox.finish(code, reason);
    this.dispose();
  }

  /** Closes at once, dropping what is waiting (policy violations, overload). */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#outbox.close(code, reason);
    this.dispose();
  }

  /**
   * Called by the transport when the connection is over (the client answered the close, or
   * left): ends the session if it was still open, and gives back the connection's slot.
   * Idempotent.
   */
  ended(): void {
    try {
      this.dispose();
    } finally {
      this.context.onEnded();
    }
  }

  /**
   * The jobs the session follows (`*`: every job it may see), or followed when it closed:
   * for the log.
   */
  get followed(): string {
    if (this.#firehose !== undefined) return "*";
    return this.#followedAtClose ?? [...this.#subs.keys()].join(",");
  }

  /** Releases every subscription; the connection may still be closing. Idempotent. */
  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#subs.size > 0) this.#followedAtClose = [...this.#subs.keys()].join(",");
    for (const [jobId, sub] of this.#subs) this.context.hub.unsubscribe(jobId, sub);
    this.#subs.clear();
    if (this.#firehose !== undefined) this.context.hub.unsubscribeAll(this.#firehose);
    this.context.onClose(this);
  }
}

class DeniedError extends Error {}
