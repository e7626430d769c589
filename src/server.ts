/**
 * The composition root of one server isolate: opens the store, builds the hub, the
 * committer, the sweeper and the app, and shuts all of it down in order. `startServer`
 * serves it with `Deno.serve` (one isolate); `src/worker.ts` hands the same core to
 * `deno serve --parallel` (one isolate per core). Tests start it in-process.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { openSqliteStore } from "./store/sqlite_store.ts";
import { Committer } from "./store/committer.ts";
import { Sweeper, sweepInterval } from "./store/sweeper.ts";
import { Hub, SHUTTING_DOWN } from "./hub/hub.ts";
import { type Fanout, LocalFanout } from "./hub/fanout.ts";
import { BroadcastFanout } from "./hub/broadcast_fanout.ts";
import { FIREHOSE_KEY, Peers, watcherKey } from "./hub/peers.ts";
import { Sessions } from "./protocol/sessions.ts";
import { deliveryRound } from "./protocol/outbox.ts";
import { CLOSE } from "./protocol/session.ts";
import { Stats } from "./stats.ts";
import { type AppDeps, createApp } from "./http/app.ts";
import { markStorageFault } from "./http/storage_fault.ts";
import { loadStaticFiles, type StaticFiles } from "./http/static_files.ts";
import { localFigures } from "./http/routes/ops.ts";
import { Authenticator, type RevocableToken } from "./auth/authenticator.ts";
import { loadKeys, type TokenKeys } from "./auth/keys.ts";
import { loadOrCreateSecret } from "./auth/secret.ts";
import { Visitors } from "./auth/limits.ts";
import type { AuthStore } from "./store/auth_store.ts";
import { LOGIN_WINDOW_MS } from "./http/routes/auth.ts";
import { log, logError, setLogLevel } from "./log.ts";

/** How often each isolate checks that its database file is still the one it opened, in ms. */
const FILE_CHECK_MS = 1000;

/** One isolate's server, before or without a listener. */
export interface ServerCore {
  /** The request handler (`Deno.serve`'s, or the `fetch` of a `deno serve` module). */
  handler(request: Request, info: Deno.ServeHandlerInfo): Promise<Response>;
  /** The token keys, when authentication is on. */
  readonly keys: TokenKeys | undefined;
  /** Where the generated signing secret is kept, when no secret was configured. */
  readonly secret: { path: string | null; created: boolean } | undefined;
  /** Requests being handled now (streams count only until their response starts). */
  readonly inflight: number;
  /** First step of a shutdown: every stream closes with 1001, waiters answer, commits flush. */
  closeStreams(): void;
  /** Last step: flushes commits, stops timers, closes the database. Idempotent. */
  close(): void;
}

/** Extension points for tests and the multi-isolate worker. */
export interface ServerOptions {
  /**
   * Name of the `BroadcastChannel` the isolates of one `deno serve --parallel` process
   * share; a single-isolate server has none.
   */
  cluster?: string;
  /**
   * Whether the process that launched the isolates checkpoints the database for them all,
   * so this isolate starts no checkpointer of its own.
   */
  launcherCheckpoints?: boolean;
  /** Cross-isolate fanout to use instead of one made from `cluster`. */
  fanout?: Fanout;
  staticFiles?: StaticFiles;
}

/** Builds one isolate's server. */
export async function createCore(config: Config, options: ServerOptions = {}): Promise<ServerCore> {
  setLogLevel(config.logLevel);
  const store = openSqliteStore(config.dataDir, {
    maxEventsPerJob: config.maxEventsPerJob,
    checkpoints: options.launcherCheckpoints === true ? "elsewhere" : "thread",
  });
  // The launcher of several isolates checked this before starting them.
  if (options.launcherCheckpoints !== true) {
    try {
      store.assertWritable();
    } catch (error) {
      store.close();
      throw error;
    }
  }
  let authenticator: Authenticator | undefined;
  let secretInfo: ServerCore["secret"];
  const authStore = config.noAuth ? undefined : store.authStore();
  if (!config.noAuth) {
    try {
      const secret = loadOrCreateSecret(config.dataDir, config.jwtSecret);
      if (config.jwtSecret === undefined) {
        secretInfo = { path: secret.path, created: secret.created };
      }
      const revocations = authStore!;
      authenticator = new Authenticator(
        await loadKeys({
          secret: secret.secret,
          publicKeyFile: config.jwtPublicKey,
          jwksUrl: config.jwksUrl,
          issuer: config.jwtIssuer,
          audience: config.jwtAudience,
        }),
        (token) => revocations.isRevoked(token.tokenId) || userGone(revocations, token),
      );
    } catch (error) {
      store.close();
      throw error;
    }
  }
  const fanout = options.fanout ??
    (options.cluster === undefined
      ? new LocalFanout()
      : new BroadcastFanout(`${options.cluster}:events`));
  // The peers are built before the hub and the visitors, which report their counts to them,
  // and read them lazily, so the order of construction does not matter after this.
  // deno-lint-ignore prefer-const -- assigned once below; the closures above read it later
  let deps!: AppDeps;
  const peers = new Peers(
    options.cluster === undefined ? undefined : `${options.cluster}:peers`,
    () => {
      const counts: Record<string, number> = deps.visitors.counts();
      for (const [jobId, count] of Object.entries(deps.hub.watcherCounts())) {
        counts[watcherKey(jobId)] = count;
      }
      counts[FIREHOSE_KEY] = deps.hub.counts.firehose;
      return counts;
    },
    () => localFigures(deps),
  );
  // Every isolate commits what it receives. One waiting for the write lock retries when
  // another says it has committed: the events message of a commit says so, and a commit
  // with nothing to send says it alone.
  // deno-lint-ignore prefer-const -- assigned below; the hub's callbacks read it later
  let committer!: Committer;
  const hub = new Hub(store, fanout, {
    onWatchers: (jobId, count) => peers.setCount(watcherKey(jobId), count),
    onFirehose: (count) => peers.setCount(FIREHOSE_KEY, count),
    onRemote: () => committer.lockReleased(),
    round: deliveryRound,
    recent: { events: config.maxEventsPerJob, bytes: config.replayCacheBytes },
    maxEventBytes: config.maxEventBytes,
    // Counts of other isolates arrive by message, so they may lag; an isolate that gets a
    // job's events without them reads them from the store.
    watchedElsewhere: (jobId) =>
      peers.remoteWatchers(jobId) > 0 || peers.remoteCount(FIREHOSE_KEY) > 0,
  });
  committer = new Committer(store, (outcomes) => {
    // Every event committed here counts, the server's own stall warnings too.
    for (const outcome of outcomes) {
      if (outcome.ok && !outcome.replayed) stats.eventsPublished += outcome.sequences.length;
    }
    const batches = outcomes.flatMap((outcome) => (outcome.ok ? [outcome.committed] : []));
    if (!hub.publishLocal(batches)) peers.unlocked();
  });
  peers.onUnlocked = () => committer.lockReleased();
  const sessions = new Sessions(config.heartbeatMs);
  peers.onRevoked = (tokenId) => sessions.revoke(tokenId);
  peers.onFault = (at) => {
    stats.storageFaultAt = Math.max(stats.storageFaultAt ?? 0, at);
  };
  const stats = new Stats(() => hub.counts.delivered);
  const visitors = new Visitors({
    maxConnections: config.maxConnections,
    maxConnectionsPerPrincipal: config.maxConnectionsPerPrincipal,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    publishRate: config.maxPublishRate,
    publishBurst: config.publishBurst,
  }, peers);
  const sweeper: Sweeper = new Sweeper(store, {
    policy: {
      retentionMs: config.retentionMs,
      tombstoneMs: config.tombstoneTtlMs,
      idempotencyMs: config.idempotencyTtlMs,
      batch: 100,
    },
    stallAfterMs: config.stallAfterMs,
    intervalMs: sweepInterval(
      config.retentionMs,
      config.stallAfterMs,
      config.tombstoneTtlMs,
      config.idempotencyTtlMs,
    ),
    onPurged: (ids) => {
      for (const id of ids) hub.jobDeleted(id, "job purged");
      log("info", "purged finished jobs past retention", { count: ids.length });
    },
    onStalled: (ids, quietSince) => {
      for (const id of ids) {
        committer.append({
          jobId: id,
          events: [{
            type: "log",
            data: {
              line: `No event for ${stallText(config.stallAfterMs)}: the job may be stalled`,
              level: "warning",
              source: "jobwire",
              // Tells clients that fold events into a snapshot to set its `stalled`.
              stalled: true,
            },
          }],
          stalledIfQuietSince: quietSince,
        }).catch((error) => logError("stall warning failed", error, { job: id }))
          .finally(() => sweeper.stallHandled(id));
      }
    },
    also: (now) => authStore?.sweep(now, now - LOGIN_WINDOW_MS),
  });
  deps = {
    config,
    store,
    hub,
    committer,
    sessions,
    stats,
    staticFiles: options.staticFiles ?? loadStaticFiles(),
    authenticator,
    authStore,
    visitors,
    peers,
    instance: options.cluster ?? `jobwire-${crypto.randomUUID()}`,
  };
  const app = createApp(deps);

  // The database file removed or replaced under the server (its data directory deleted):
  // every write is refused from then on, and /healthz says so, rather than acknowledge
  // events no restart would find.
  let lostTold = false;
  const fileCheck = setInterval(() => {
    const lost = store.checkFile();
    if (lost === undefined) return;
    markStorageFault(deps);
    if (!lostTold) {
      lostTold = true;
      log("error", `${lost}: every write is refused from now on; restart the server`);
    }
  }, FILE_CHECK_MS);
  Deno.unrefTimer(fileCheck);

  let inflight = 0;
  let closed = false;
  return {
    keys: authenticator?.keys,
    secret: secretInfo,
    get inflight() {
      return inflight;
    },
    async handler(request, info) {
      inflight++;
      try {
        const response = await app.fetch(request, { info });
        return request.method === "HEAD" ? headAnswer(response) : response;
      } finally {
        inflight--;
      }
    },
    closeStreams() {
      sessions.closeAll(CLOSE.goingAway, "server shutting down");
      hub.closeAll(SHUTTING_DOWN);
      committer.flush();
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(fileCheck);
      committer.flush();
      sweeper.stop();
      stats.stop();
      sessions.stop();
      peers.close();
      fanout.close();
      store.close();
    },
  };
}

/**
 * A HEAD answer as the runtime should send it. Routing answers HEAD with the GET answer's
 * headers and no body, which the runtime would describe as `Content-Length: 0`: an answer
 * that says its length (see `headOf` in `src/http/app.ts`) is kept, and a stream's gets an
 * empty body of unknown length, so the headers say what a GET's would (chunked).
 */
function headAnswer(response: Response): Response {
  if (response.headers.has("content-length") || NULL_BODY.has(response.status)) return response;
  const body = new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/** Statuses whose answers have no body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** A running single-isolate server. */
export interface ServerHandle {
  /** Base URL, such as `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  /**
   * Stops accepting, closes every stream with 1001, lets in-flight publishes commit,
   * then closes the database. Idempotent.
   */
  shutdown(): Promise<void>;
  /** Settles once the server has shut down. */
  readonly finished: Promise<void>;
  readonly keys: TokenKeys | undefined;
  readonly secret: ServerCore["secret"];
}

/**
 * Whether the user a sign-in token was issued to has been removed since, or given another
 * password or scopes (`user add` again): its earlier tokens go with it. Only tokens of this
 * server's sign-in say which credentials they were given for, and only they are asked
 * about: others (minted with `main.ts token`, or by an identity provider) name subjects
 * that need not be users.
 */
function userGone(users: AuthStore, token: RevocableToken): boolean {
  if (token.sub === null || token.credentialsAt === undefined) return false;
  const user = users.getUser(token.sub);
  return user === undefined || token.credentialsAt !== (user.changed_at ?? user.created_at);
}

/** Longest wait for open requests to finish at shutdown, in milliseconds. */
export const SHUTDOWN_GRACE_MS = 5000;

/** Starts a single-isolate server with `config`. Resolves once it is listening. */
export async function startServer(
  config: Config,
  options: ServerOptions = {},
): Promise<ServerHandle> {
  // The port first: a server that cannot listen upgrades no database (one an older server
  // may still be using).
  if (config.port !== 0) freePort(config.host, config.port);
  const core = await createCore(config, options);
  let resolveListen!: (addr: Deno.NetAddr) => void;
  const listening = new Promise<Deno.NetAddr>((resolve) => (resolveListen = resolve));
  const listen = (port: number, onListen: (addr: Deno.NetAddr) => void) =>
    Deno.serve({ hostname: config.host, port, onListen }, core.handler);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = listen(config.port, resolveListen);
  } catch (error) {
    core.close();
    throw error;
  }
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}`;

  // Settles once a shutdown is done, whether or not every connection has ended: a client that
  // never reads holds its socket (and so the runtime's `finished`) for as long as it likes.
  const done = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      const drained = server.shutdown();
      core.closeStreams();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        drained,
        new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
      ]);
      clearTimeout(timer);
      try {
        core.close();
      } finally {
        done.resolve();
      }
    })();
    return stopping;
  };
  // The runtime stops accepting for good when its accept fails (out of file descriptors,
  // say): with no launcher to start this process again, it listens again itself, on the
  // same port, once it can, while the connections it has go on.
  const serving = (async () => {
    for (let attempt = 0;; attempt++) {
      try {
        await server.finished;
        return;
      } catch (error) {
        if (stopping !== undefined) return;
        log(
          "error",
          `stopped accepting connections (${(error as Error).message}): listening again`,
        );
      }
      for (let wait = 100;; wait = Math.min(wait * 2, 5000)) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        if (stopping !== undefined) return;
        try {
          server = listen(addr.port, () => {});
          log("info", "accepting connections again", { attempts: attempt + 1 });
          break;
        } catch (error) {
          if (wait === 100) log("warn", `cannot listen again yet: ${(error as Error).message}`);
        }
      }
    }
  })();
  return {
    url,
    port: addr.port,
    shutdown,
    finished: Promise.race([serving.then(() => stopping), done.promise]),
    keys: core.keys,
    secret: core.secret,
  };
}

/** A stall threshold as the warning says it: `30 s`, or `400 ms` below a second. */
function stallText(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

/**
 * A free TCP port on `hostname`, or `port` when it is free: found before a server opens its
 * database, and the one port the isolates of a launcher all bind.
 *
 * @throws {Deno.errors.AddrInUse} here, at once, rather than once the database is open (or
 *   from every isolate)
 */
export function freePort(hostname: string, port = 0): number {
  const listener = Deno.listen({ hostname: hostname.replace(/^\[|\]$/g, ""), port });
  const bound = listener.addr.port;
  listener.close();
  return bound;
}
