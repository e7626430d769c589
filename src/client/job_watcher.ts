/**
 * A watcher: follows one job, several, or every visible job over the best transport
 * that works, reconnects with backoff, resumes from the last delivered sequence, fills
 * gaps, measures quality, and stops once the jobs end. Made by `watchJob`/`watchJobs`.
 *
 * @module
 */
import { ConnectionLoop } from "./connection_loop.ts";
import { Emitter, type Listener } from "./emitter.ts";
import { fetchEventsPage, fetchJob, type HttpContext } from "./http.ts";
import { Sequencer } from "./sequencer.ts";
import type { StreamTarget } from "./transport.ts";
import type {
  ConnectionQuality,
  ConnectionState,
  JobEvent,
  JobSnapshot,
  TransportName,
} from "./types.ts";
import { WATCHER_EVENT_NAMES, type WatcherEvents } from "./watch_events.ts";
import type { ResolvedWatchOptions } from "./watch_options.ts";

/** Follows jobs and emits {@link WatcherEvents}. */
export class JobWatcher {
  #emitter = new Emitter<WatcherEvents>();
  #sequencer: Sequencer;
  #loop: ConnectionLoop;

  /** @internal Use `watchJob` or `watchJobs`. */
  constructor(
    baseUrl: string,
    target: StreamTarget,
    since: ReadonlyMap<string, number>,
    options: ResolvedWatchOptions,
  ) {
    const http: HttpContext = { baseUrl, token: options.token, fetch: options.fetch };
    this.#sequencer = new Sequencer(
      {
        emitter: this.#emitter,
        fetchPage: (jobId, after) =>
          fetchEventsPage(http, jobId, { since: after }, this.#loop.signal),
        fetchJob: (jobId) => fetchJob(http, jobId, this.#loop.signal),
        stopped: () => this.#loop.stopped,
      },
      since,
      target.kind,
    );
    this.#loop = new ConnectionLoop({
      emitter: this.#emitter,
      sequencer: this.#sequencer,
      http,
      target,
      options,
    });
    if (options.signal?.aborted) {
      this.#loop.stop("aborted");
      return;
    }
    options.signal?.addEventListener("abort", () => this.#loop.stop("aborted"), { once: true });
    this.#loop.start();
  }

  /** Where the connection stands. */
  get state(): ConnectionState {
    return this.#loop.state;
  }

  /** Round-trip quality of the WebSocket (`unknown` on other transports). */
  get quality(): ConnectionQuality {
    return this.#loop.quality;
  }

  /** Last measured round trip, in ms, or `null`. */
  get rttMs(): number | null {
    return this.#loop.rttMs;
  }

  /** The transport in use (or being tried), `null` before the first attempt. */
  get transport(): TransportName | null {
    return this.#loop.transport;
  }

  /** Snapshot of the (first) followed job, kept current from events. */
  get job(): JobSnapshot | undefined {
    return this.#sequencer.tracks.values().next().value?.job;
  }

  /** Snapshots of every followed job, by id. */
  get jobs(): ReadonlyMap<string, JobSnapshot> {
    const out = new Map<string, JobSnapshot>();
    for (const [id, { job }] of this.#sequencer.tracks) if (job !== undefined) out.set(id, job);
    return out;
  }

  /** Last sequence delivered for `jobId` (default: the first followed job); 0 before any. */
  lastSequence(jobId?: string): number {
    const track = jobId === undefined
      ? this.#sequencer.tracks.values().next().value
      : this.#sequencer.tracks.get(jobId);
    return track?.cursor ?? 0;
  }

  /**
   * Adds a listener.
   *
   * @returns a function that removes it
   */
  on<K extends keyof WatcherEvents>(name: K, listener: Listener<WatcherEvents, K>): () => void {
    return this.#emitter.on(knownName(name), listener);
  }

  /**
   * Adds a listener of the events of one type (`"model_deployed"`, `"progress"`, …), in
   * sequence order like {@link on}`("event")`.
   *
   * @returns a function that removes it
   */
  onEvent(type: string, listener: (event: JobEvent) => void): () => void {
    return this.#emitter.on("event", (event) => {
      if (event.type === type) listener(event);
    });
  }

  /** Adds a listener called at most once. */
  once<K extends keyof WatcherEvents>(name: K, listener: Listener<WatcherEvents, K>): () => void {
    return this.#emitter.once(knownName(name), listener);
  }

  /** Removes a listener. */
  off<K extends keyof WatcherEvents>(name: K, listener: Listener<WatcherEvents, K>): void {
    this.#emitter.off(name, listener);
  }

  /** Stops for good: closes the connection, cancels timers and requests. Idempotent. */
  close(): void {
    this.#loop.stop("closed by the client");
  }

  /**
   * Connects again now with a fresh attempt count (the "retry" button after
   * `max_reconnect_attempts`). Resumes from the last delivered sequences.
   */
  reconnect(): void {
    this.#loop.restart();
  }
}

/**
 * The name, if a watcher emits it. From JavaScript, a listener of another name would never
 * be called: most likely an event type, which {@link JobWatcher.onEvent} listens to.
 *
 * @throws {TypeError} naming `onEvent`
 */
function knownName<K extends keyof WatcherEvents>(name: K): K {
  if (WATCHER_EVENT_NAMES.has(name)) return name;
  throw new TypeError(
    `A watcher emits no ${JSON.stringify(name)}: for the events of a type, use ` +
      `onEvent(${JSON.stringify(name)}, listener)`,
  );
}
