/**
 * Publishing through one writer. With several isolates, one of them (holding the
 * `writer` lease) commits every publish: the others forward theirs on a
 * `BroadcastChannel` and hear the outcome in the commit's own events message, after its
 * events were delivered to their subscribers. One writer means no contention for
 * SQLite's write lock, no page cache invalidated by another connection's commit, and
 * bigger group commits.
 *
 * Deno's channel drops messages for an isolate that falls far behind, so a forward or
 * its outcome can go missing. A forward unanswered after a second is sent again; the
 * writer remembers what it did with each (for longer than anyone waits) and answers a
 * repeat with the outcome it had, never committing the same forward twice.
 *
 * @module
 */
import type { JobStatus } from "../jobs/status.ts";
import type { NewEvent } from "../jobs/events.ts";
import { canWrite, type Principal, type Scope } from "../auth/principal.ts";
import type { AppendOutcome, EventStore } from "./event_store.ts";
import type { Committer } from "./committer.ts";
import { logError } from "../log.ts";

/** A publish, in a form that crosses isolates (no functions, no sets). */
export interface PublishRequest {
  jobId: string;
  events: NewEvent[];
  idempotencyKey?: string;
  expectedSequence?: number;
  /** Who publishes: the writer checks their write access against the job in the commit. */
  principal: { sub: string | null; scopes: Scope[]; jobs: string[] };
}

/** What a publisher learns: sequences and the job's state, or why nothing was written. */
export type PublishOutcome =
  | { ok: true; sequences: number[]; last_sequence: number; status: JobStatus; replayed: boolean }
  | Extract<AppendOutcome, { ok: false }>;

/** An outcome addressed to the isolate that forwarded the publish. */
export interface PublishReply {
  to: string;
  id: number;
  outcome: PublishOutcome;
}

/** Marks a forwarded publish in the committer, so its outcome can be addressed back. */
export interface ForwardTag {
  to: string;
  id: number;
}

/** The summary of a commit outcome a publisher receives. */
export function summarize(outcome: AppendOutcome): PublishOutcome {
  if (!outcome.ok) return outcome;
  return {
    ok: true,
    sequences: outcome.sequences,
    last_sequence: outcome.job.last_sequence,
    status: outcome.job.status,
    replayed: outcome.replayed,
  };
}

/** The principal data of a request as a principal. */
function principalOf(data: PublishRequest["principal"]): Principal {
  return { sub: data.sub, scopes: new Set(data.scopes), jobs: new Set(data.jobs), expiresAt: null };
}

/** Milliseconds a forwarded publish may wait for the writer before it fails (503). */
const FORWARD_TIMEOUT_MS = 10_000;
/** Milliseconds after which an unanswered forward is sent again. */
const RESEND_MS = 1_000;
/** Milliseconds between looks at unanswered forwards (the resend and timeout resolution). */
const WATCH_MS = 100;
/** Milliseconds the writer remembers a forward, so a repeat is never committed twice. */
const REMEMBER_MS = FORWARD_TIMEOUT_MS + 5_000;

/** Lifetime of the writer lease; renewed at a third of it. */
const WRITER_LEASE_MS = 6_000;

/** What travels on the writer channel: a forwarded publish, or an outcome sent again. */
type WriterWire =
  | { kind: "forward"; from: string; id: number; request: PublishRequest }
  | { kind: "reply"; reply: PublishReply };

/** Commits publishes here, or forwards them to the isolate that writes. */
export class Appender {
  #committer: Committer;
  #store: EventStore;
  #id: string;
  #channel: BroadcastChannel | undefined;
  #writer = true;
  /** Forwards waiting for their outcome, oldest first. */
  #pending = new Map<
    number,
    {
      resolve: (o: PublishOutcome) => void;
      reject: (e: unknown) => void;
      forward: WriterWire;
      firstSent: number;
      lastSent: number;
    }
  >();
  /** Sends unanswered forwards again and fails those past the timeout; runs while any wait. */
  #watch: ReturnType<typeof setInterval> | undefined;
  /** On the writer: forwards taken, by `from:id`, with their outcome once committed. */
  #taken = new Map<string, { at: number; outcome?: PublishOutcome }>();
  #next = 1;
  #lease: ReturnType<typeof setInterval> | undefined;
  #leaseName = "";
  #forwarded = 0;

  /**
   * @param channel name of the writer channel the isolates of a server share, or
   *   `undefined` for a single isolate (which always writes)
   * @param id this isolate's id (replies are addressed to it)
   */
  constructor(committer: Committer, store: EventStore, channel: string | undefined, id: string) {
    this.#committer = committer;
    this.#store = store;
    this.#id = id;
    if (channel === undefined) return;
    // One lease per server process (its channel name is unique): a lease left by a process
    // that stopped never holds up the next one on the same data directory.
    this.#leaseName = `writer:${channel}`;
    this.#channel = new BroadcastChannel(channel);
    this.#channel.onmessage = (e: MessageEvent<WriterWire>) => {
      const wire = e.data;
      if (wire.kind === "reply") {
        this.receive([wire.reply]);
        return;
      }
      // Every isolate hears a forwarded publish; only the writer takes it.
      if (this.#writer) this.#take(wire.from, wire.id, wire.request);
    };
    this.#elect();
    this.#lease = setInterval(() => this.#elect(), WRITER_LEASE_MS / 3);
    Deno.unrefTimer(this.#lease);
  }

  #elect(): void {
    try {
      const now = Date.now();
      this.#writer = this.#store.takeLease(this.#leaseName, this.#id, now + WRITER_LEASE_MS, now);
    } catch (error) {
      logError("writer lease failed", error);
    }
  }

  /** Commits a forwarded publish once; a repeat gets the outcome the first one had. */
  #take(from: string, id: number, request: PublishRequest): void {
    const key = `${from}:${id}`;
    const now = Date.now();
    const taken = this.#taken.get(key);
    if (taken !== undefined) {
      if (taken.outcome !== undefined) {
        const reply: PublishReply = { to: from, id, outcome: taken.outcome };
        this.#channel?.postMessage({ kind: "reply", reply } satisfies WriterWire);
      }
      return; // still being committed: its outcome goes out with the commit
    }
    // Forget the oldest first: the map is in the order forwards were taken.
    for (const [old, { at }] of this.#taken) {
      if (at > now - REMEMBER_MS) break;
      this.#taken.delete(old);
    }
    const entry: { at: number; outcome?: PublishOutcome } = { at: now };
    this.#taken.set(key, entry);
    this.#commit(request, { to: from, id }).then((outcome) => {
      entry.outcome = summarize(outcome);
    }).catch((error) => {
      this.#taken.delete(key);
      logError("forwarded publish failed", error, { job: request.jobId });
    });
  }

  /** Whether this isolate commits publishes (always, with a single isolate). */
  get writer(): boolean {
    return this.#writer;
  }

  /** Publishes forwarded to the writer since start. */
  get forwarded(): number {
    return this.#forwarded;
  }

  #commit(request: PublishRequest, tag?: ForwardTag): Promise<AppendOutcome> {
    const principal = principalOf(request.principal);
    return this.#committer.append({
      jobId: request.jobId,
      events: request.events,
      authorize: (job) => canWrite(principal, job),
      ...(request.idempotencyKey === undefined ? {} : { idempotencyKey: request.idempotencyKey }),
      ...(request.expectedSequence === undefined
        ? {}
        : { expectedSequence: request.expectedSequence }),
    }, tag);
  }

  /**
   * Publishes: commits here when this isolate writes, else forwards to the writer.
   *
   * @throws when the commit fails or the writer does not answer in time
   */
  async append(request: PublishRequest): Promise<PublishOutcome> {
    if (this.#writer || this.#channel === undefined) return summarize(await this.#commit(request));
    const id = this.#next++;
    this.#forwarded++;
    const forward: WriterWire = { kind: "forward", from: this.#id, id, request };
    return new Promise((resolve, reject) => {
      const now = Date.now();
      this.#pending.set(id, { resolve, reject, forward, firstSent: now, lastSent: now });
      // One timer for all forwards: a pair of timers each cost more than the forward.
      this.#watch ??= setInterval(() => this.#resendOrFail(Date.now()), WATCH_MS);
      this.#channel!.postMessage(forward);
    });
  }

  #resendOrFail(now: number): void {
    if (this.#pending.size === 0) {
      // Kept for a tick after the last answer: under steady load it is never remade.
      clearInterval(this.#watch);
      this.#watch = undefined;
      return;
    }
    for (const [id, pending] of this.#pending) {
      if (now - pending.firstSent >= FORWARD_TIMEOUT_MS) {
        this.#pending.delete(id);
        pending.reject(new Error("The writing isolate did not answer"));
      } else if (now - pending.lastSent >= RESEND_MS) {
        pending.lastSent = now;
        this.#channel?.postMessage(pending.forward);
      }
    }
  }

  /** Settles forwarded publishes whose outcomes arrived with a commit message. */
  receive(replies: readonly PublishReply[] | undefined): void {
    for (const reply of replies ?? []) {
      if (reply.to !== this.#id) continue;
      const pending = this.#pending.get(reply.id);
      if (pending === undefined) continue;
      this.#pending.delete(reply.id);
      pending.resolve(reply.outcome);
    }
  }

  close(): void {
    if (this.#lease !== undefined) clearInterval(this.#lease);
    this.#channel?.close();
    this.#channel = undefined;
    clearInterval(this.#watch);
    this.#watch = undefined;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(new Error("The server is shutting down"));
    this.#taken.clear();
  }
}
