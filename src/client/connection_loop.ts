/**
 * The connection lifecycle of a watcher: connects over the current transport, pings,
 * hands messages to the sequencer, and on a close decides between stopping (the jobs
 * ended, or a refusal no retry can fix), falling back to the next transport, and
 * reconnecting after a backoff. Resuming needs no bookkeeping here: each connection
 * starts from the sequencer's cursors.
 *
 * Every transport callback goes through one queue, so a connection's close is handled
 * after the messages that came before it (a finishing job is seen before its close).
 *
 * @module
 */
import { backoffDelay } from "./backoff.ts";
import type { Emitter } from "./emitter.ts";
import { asJobwireError, isAbort, JobwireError } from "./errors.ts";
import type { HttpContext } from "./http.ts";
import { type StreamCredentials, streamCredentials } from "./credentials.ts";
import { openPoll } from "./poll_transport.ts";
import { QualityMeter } from "./quality.ts";
import { fatalError, probeServer } from "./reachability.ts";
import type { Sequencer } from "./sequencer.ts";
import { openSse } from "./sse_transport.ts";
import { Timers } from "./timers.ts";
import {
  type CloseInfo,
  type Connection,
  type Connector,
  type StreamTarget,
  targetJobIds,
} from "./transport.ts";
import { TransportLadder } from "./transport_ladder.ts";
import type { ConnectionQuality, ConnectionState, Envelope, TransportName } from "./types.ts";
import type { WatcherEvents } from "./watch_events.ts";
import type { ResolvedWatchOptions } from "./watch_options.ts";
import { openWebSocket } from "./websocket_transport.ts";

const CONNECTORS: Record<TransportName, Connector> = {
  websocket: openWebSocket,
  sse: openSse,
  poll: openPoll,
};

/** What a connection loop works with. */
export interface LoopContext {
  emitter: Emitter<WatcherEvents>;
  sequencer: Sequencer;
  http: HttpContext;
  target: StreamTarget;
  options: ResolvedWatchOptions;
}

/** Connects, reconnects and falls back until stopped. */
export class ConnectionLoop {
  #emitter: Emitter<WatcherEvents>;
  #sequencer: Sequencer;
  #http: HttpContext;
  #target: StreamTarget;
  #options: ResolvedWatchOptions;
  #ladder: TransportLadder;
  #timers = new Timers<"reconnect" | "ping" | "connect" | "idle">();
  #state: ConnectionState = "connecting";
  #meter = new QualityMeter((quality, rttMs) => this.#emitter.emit("quality", { quality, rttMs }));
  #transport: TransportName | null = null;
  #attempt = 0;
  #stopped = false;
  #conn: Connection | undefined;
  #greeted = false;
  /** Bumped for each connection; callbacks of older ones are ignored. */
  #generation = 0;
  /** The connection whose gap could not be filled: the rest of what it sent is passed over. */
  #abandoned = -1;
  #queue: Promise<void> = Promise.resolve();
  #abort = new AbortController();

  constructor(context: LoopContext) {
    this.#emitter = context.emitter;
    this.#sequencer = context.sequencer;
    this.#http = context.http;
    this.#target = context.target;
    this.#options = context.options;
    this.#ladder = new TransportLadder(context.options.transports, context.options.fallbackAfter);
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get quality(): ConnectionQuality {
    return this.#meter.quality;
  }

  get rttMs(): number | null {
    return this.#meter.rttMs;
  }

  get transport(): TransportName | null {
    return this.#transport;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Aborted when the loop stops (cancels page fetches). */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Connects on the next tick (so listeners added right after construction see it all). */
  start(): void {
    this.#timers.set("reconnect", 0, () => this.#connect());
  }

  /** Connects again now with a fresh attempt count, even after the loop stopped. */
  restart(): void {
    this.#drop();
    this.#timers.clearAll();
    if (this.#stopped) {
      this.#stopped = false;
      this.#abort = new AbortController();
    }
    this.#attempt = 0;
    this.#ladder.reset();
    this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    const transport = this.#ladder.current;
    if (transport === undefined) {
      this.#fail(new JobwireError("connect_failed", "No transport is usable in this runtime"));
      return;
    }
    if (transport !== this.#transport) {
      const from = this.#transport;
      this.#transport = transport;
      this.#emitter.emit("transport", {
        from,
        to: transport,
        reason: from === null ? "first connection" : "fallback",
      });
    }
    let credentials: StreamCredentials;
    try {
      credentials = await streamCredentials(transport, this.#target, this.#options);
    } catch (error) {
      const info = { opened: false, code: null, reason: "no credentials" };
      this.#closeLater(generation, { ...info, error: error as JobwireError });
      return;
    }
    if (generation !== this.#generation || this.#stopped) return;
    const cursors = new Map<string, number>();
    for (const [id, track] of this.#sequencer.tracks) cursors.set(id, track.cursor);
    const current = () => generation === this.#generation;
    this.#greeted = false;
    this.#conn = CONNECTORS[transport]({
      http: this.#http,
      target: this.#target,
      cursors,
      ...credentials,
      WebSocket: this.#options.WebSocket,
      pollWaitSeconds: this.#options.pollWaitSeconds,
    }, {
      open: () => current() && this.#startPings(),
      message: (message) => current() && this.#message(message),
      close: (info) => current() && this.#closeLater(generation, info),
    });
    const ms = this.#options.connectTimeoutMs;
    this.#timers.set("connect", ms, () =>
      this.#drop({
        opened: false,
        code: null,
        reason: "connect timeout",
        error: new JobwireError("connect_failed", `No greeting within ${ms} ms`),
      }));
  }

  #startPings(): void {
    const interval = this.#options.pingIntervalMs;
    if (this.#conn?.transport !== "websocket" || interval <= 0) return;
    const ping = () => {
      this.#conn?.send({ type: "ping", client_time: Date.now() });
      this.#timers.set("ping", interval, ping);
    };
    ping();
  }

  #message(message: Envelope): void {
    if (this.#stopped) return;
    const idle = this.#options.idleTimeoutMs;
    if (idle > 0) {
      this.#timers.set(
        "idle",
        idle,
        () => this.#drop({ opened: true, code: null, reason: "idle" }),
      );
    }
    // An error before any greeting is a refusal (an unknown job), said before the close.
    if (!this.#greeted && message.type !== "error") {
      this.#greeted = true;
      this.#timers.clear("connect");
      this.#attempt = 0;
      this.#ladder.succeeded();
      this.#state = "connected";
      this.#emitter.emit("connected", { transport: this.#transport! });
    }
    if (message.type === "pong") {
      this.#meter.pong(message.data);
      return;
    }
    const generation = this.#generation;
    // Events and keep-alives that connection sent after a gap it could not fill wait for
    // nothing: the next connection resumes from the cursors and sends them again (handled,
    // each would try the page again and fail again, every 30 s while the page hangs). Other
    // messages (created, deleted, errors) need no page and are sent once: they are handled.
    const resent = message.sequence !== null || message.type === "heartbeat";
    this.#queue = this.#queue.then(() =>
      resent && generation === this.#abandoned ? undefined : this.#sequencer.handle(message)
    ).catch((error) => {
      if (this.#stopped || isAbort(error)) return;
      if (generation === this.#abandoned) return;
      this.#emitter.emit("error", asJobwireError(error, "connection_lost"));
      // Reconnecting resumes from the cursors: the stream replays what the page could not.
      this.#abandoned = generation;
      if (generation === this.#generation) {
        this.#drop({ opened: true, code: null, reason: "gap fill failed" });
      }
    }).then(() => {
      if (!this.#stopped && this.#done()) this.stop("finished");
    });
  }

  /** Closes the current connection ourselves; with `info`, handles it as a lost one. */
  #drop(info?: CloseInfo): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    const generation = ++this.#generation;
    conn.close();
    this.#conn = undefined;
    if (info !== undefined) this.#closeLater(generation, info);
  }

  #closeLater(generation: number, info: CloseInfo): void {
    const greeted = this.#greeted;
    this.#conn = undefined;
    this.#greeted = false;
    for (const name of ["ping", "connect", "idle"] as const) this.#timers.clear(name);
    this.#queue = this.#queue.then(() =>
      generation === this.#generation ? this.#closed(info, greeted) : undefined
    ).catch((error) => this.#emitter.emit("error", asJobwireError(error, "connection_lost")));
  }

  async #closed(info: CloseInfo, greeted: boolean): Promise<void> {
    if (this.#stopped) return;
    if (this.#done()) {
      this.stop("finished");
      return;
    }
    this.#meter.reset();
    if (greeted) {
      this.#emitter.emit("disconnected", {
        transport: this.#transport!,
        code: info.code,
        reason: info.reason,
      });
    }
    if (info.error !== undefined) this.#emitter.emit("error", info.error);
    const refreshable = typeof this.#options.token === "function" ||
      this.#options.getTicket !== undefined;
    const target = this.#target;
    const fatal = fatalError(info, refreshable, target.kind === "job" ? target.jobId : undefined);
    if (fatal !== undefined) {
      this.#fail(fatal, fatal !== info.error);
      return;
    }
    let stepped = false;
    if (!greeted && this.#ladder.canFallBack) {
      // A failure counts against the transport only if the server answers plain HTTP right
      // after it: when the server itself is down, another transport would not help.
      const unsupported = info.unsupported === true;
      const [first] = targetJobIds(this.#target);
      const since = first === undefined ? 0 : (this.#sequencer.tracks.get(first)?.cursor ?? 0);
      const probe = unsupported ? { ok: true as const } : await probeServer(
        this.#http,
        first,
        since,
        this.#abort.signal,
        refreshable,
        this.#options.connectTimeoutMs,
      );
      if (this.#stopped) return;
      if (!probe.ok && probe.fatal) {
        this.#fail(probe.error);
        return;
      }
      if (!probe.ok) {
        // Why the server cannot be reached says more than why the stream failed.
        this.#emitter.emit("error", probe.error);
        this.#ladder.serverDown();
      } else if (this.#ladder.failed(unsupported) === "step") {
        this.#ladder.step();
        stepped = true;
      }
    }
    this.#scheduleReconnect(stepped);
  }

  #scheduleReconnect(immediate: boolean): void {
    this.#attempt++;
    if (this.#attempt > this.#options.maxAttempts) {
      this.#emitter.emit("max_reconnect_attempts", { attempts: this.#options.maxAttempts });
      this.stop("max reconnect attempts");
      return;
    }
    const delayMs = immediate ? 0 : backoffDelay(this.#attempt, this.#options);
    this.#state = "reconnecting";
    const transport = this.#ladder.current ?? this.#transport!;
    this.#emitter.emit("reconnecting", { attempt: this.#attempt, delayMs, transport });
    this.#timers.set("reconnect", delayMs, () => this.#connect());
  }

  /** Whether every followed job has ended and the watcher should stop. */
  #done(): boolean {
    return this.#target.kind !== "all" && this.#target.closeOnFinish &&
      this.#sequencer.allFinished();
  }

  #fail(error: JobwireError, emit = true): void {
    if (emit) this.#emitter.emit("error", error);
    this.stop(error.message);
  }

  /** Stops for good and emits `closed`. Idempotent. */
  stop(reason: string): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#drop();
    this.#timers.clearAll();
    this.#abort.abort();
    this.#meter.reset();
    this.#state = "closed";
    this.#emitter.emit("closed", { reason });
  }
}
