/**
 * The most recent events of each job on this isolate, kept in memory so that a replay
 * (a late joiner, a reconnect with `since`) takes them from here instead of reading them
 * back from SQLite.
 *
 * Each job has one run: consecutive events, in sequence order. A committed event never
 * changes, so any part of a run may be replayed as it is, provided the run belongs to the
 * same job (the hub checks the job's creation time: an id deleted and made again starts
 * over). Memory is bounded twice: per job (the newest `events` events, and up to a quarter
 * more between trims) and per isolate (`bytes`; past it, the runs started longest ago are
 * dropped whole, and a run that alone is over it keeps only its newest events).
 *
 * @module
 */
import type { StoredEvent } from "../jobs/envelope.ts";

/** Bounds of the recent events kept on one isolate. */
export interface RecentLimits {
  /** Most events kept per job. */
  events: number;
  /** Most bytes kept in all (0 keeps nothing). */
  bytes: number;
}

/** The recent events of one job. */
export class RecentRun {
  /** Consecutive events, oldest first. */
  events: StoredEvent[] = [];
  bytes = 0;

  /** Sequence of the oldest event kept, or `undefined` when empty. */
  get first(): number | undefined {
    return this.events[0]?.sequence;
  }

  /** Sequence of the newest event kept, or `undefined` when empty. */
  get last(): number | undefined {
    return this.events[this.events.length - 1]?.sequence;
  }
}

/**
 * What an event costs in memory beyond its envelope text: the object and its array slot,
 * and the job id and type strings of an event read back from the store.
 */
const EVENT_OVERHEAD = 160;

/**
 * Bytes one kept event is counted for. The envelope counts two bytes a character, as a
 * string holding any character past Latin-1 takes, so that the bound is never exceeded.
 */
export function eventCost(event: StoredEvent): number {
  return 2 * event.envelope.length + EVENT_OVERHEAD;
}

/** Bytes `events` are counted for in all. */
function costOf(events: readonly StoredEvent[]): number {
  let bytes = 0;
  for (const event of events) bytes += eventCost(event);
  return bytes;
}

/** The runs of every job on one isolate, and what they hold in all. */
export class RecentEvents {
  #limits: RecentLimits;
  /** Non-empty runs, in the order they were started (the first is dropped first). */
  #runs = new Set<RecentRun>();
  #bytes = 0;

  constructor(limits: RecentLimits) {
    this.#limits = limits;
  }

  /** Bytes held in all runs. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Adds the next event of a job; an event that does not follow the run starts it again. */
  append(run: RecentRun, event: StoredEvent): void {
    if (this.#limits.bytes <= 0) return;
    const last = run.last;
    if (last !== undefined && event.sequence !== last + 1) this.release(run);
    if (run.events.length === 0) this.#runs.add(run);
    run.events.push(event);
    const bytes = eventCost(event);
    run.bytes += bytes;
    this.#bytes += bytes;
    this.#bound(run);
  }

  /**
   * Puts events read from the store in front of a run: they must end right before its
   * first event, or the run must be empty. Anything else is ignored.
   */
  prepend(run: RecentRun, events: readonly StoredEvent[]): void {
    if (this.#limits.bytes <= 0 || events.length === 0) return;
    const first = run.first;
    const end = events[events.length - 1]!.sequence;
    // Read in order from a table keyed by sequence: consecutive exactly when the ends say so.
    if (end - events[0]!.sequence !== events.length - 1) return;
    if (first !== undefined && end !== first - 1) return;
    // Never more than a job may keep: the newest of what was read, when the run is empty.
    const room = this.#limits.events - run.events.length;
    if (room <= 0) return;
    const added = events.length > room ? events.slice(events.length - room) : events;
    const bytes = costOf(added);
    if (run.events.length === 0) {
      run.events = [...added];
      this.#runs.add(run);
    } else {
      run.events = [...added, ...run.events];
    }
    run.bytes += bytes;
    this.#bytes += bytes;
    this.#bound(run);
  }

  /** Drops a job's run (the job finished, went away, or its run broke). */
  release(run: RecentRun): void {
    if (run.events.length === 0) return;
    this.#bytes -= run.bytes;
    run.events = [];
    run.bytes = 0;
    this.#runs.delete(run);
  }

  /** Drops every run. */
  clear(): void {
    for (const run of this.#runs) {
      run.events = [];
      run.bytes = 0;
    }
    this.#runs.clear();
    this.#bytes = 0;
  }

  /** Keeps a run within the per-job bound and all runs within the byte bound. */
  #bound(run: RecentRun): void {
    // Trimmed in steps of a quarter, so appending stays cheap for a job at its bound.
    const limit = this.#limits.events;
    if (run.events.length > limit + (limit >> 2)) {
      const bytes = costOf(run.events.splice(0, run.events.length - limit));
      run.bytes -= bytes;
      this.#bytes -= bytes;
    }
    if (this.#bytes <= this.#limits.bytes) return;
    for (const oldest of this.#runs) {
      if (oldest !== run) this.release(oldest);
      if (this.#bytes <= this.#limits.bytes) return;
    }
    // This run alone is over the bound (large events): it keeps its newest events, down to
    // three quarters of the bound so that the next appends do not trim again at once.
    const target = this.#limits.bytes - (this.#limits.bytes >> 2);
    let drop = 0;
    let bytes = 0;
    while (drop < run.events.length && run.bytes - bytes > target) {
      bytes += eventCost(run.events[drop++]!);
    }
    run.events.splice(0, drop);
    run.bytes -= bytes;
    this.#bytes -= bytes;
    if (run.events.length === 0) this.#runs.delete(run);
  }
}
