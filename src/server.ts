/**
 * The composition root of one server isolate: opens the store, builds the hub, the
 * committer, the sweeper and the app, serves, and shuts all of it down in order.
 * `main.ts` calls it for the CLI; tests call it to run the real server in-process.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { openSqliteStore } from "./store/sqlite_store.ts";
import { Committer } from "./store/committer.ts";
import { Sweeper, sweepInterval } from "./store/sweeper.ts";
import { Hub } from "./hub/hub.ts";
import { type Fanout, LocalFanout } from "./hub/fanout.ts";
import { Sessions } from "./protocol/sessions.ts";
import { CLOSE } from "./protocol/session.ts";
import { Stats } from "./stats.ts";
import { createApp } from "./http/app.ts";
import { loadStaticFiles, type StaticFiles } from "./http/static_files.ts";
import { Authenticator } from "./auth/authenticator.ts";
import { loadKeys, type TokenKeys } from "./auth/keys.ts";
import { loadOrCreateSecret } from "./auth/secret.ts";
import { Visitors } from "./auth/limits.ts";
import { LOGIN_WINDOW_MS } from "./http/routes/auth.ts";
import { log, logError, setLogLevel } from "./log.ts";

/** A running server. */
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
  /** The token keys, when authentication is on. */
  readonly keys: TokenKeys | undefined;
  /** Where the generated signing secret is kept, when this start created it or found it. */
  readonly secret: { path: string | null; created: boolean } | undefined;
}

/** Extension points for tests and other entry points. */
export interface ServerOptions {
  /** Cross-isolate fanout; a single-isolate server needs none. */
  fanout?: Fanout;
  staticFiles?: StaticFiles;
  /** Called with the base URL once listening (instead of printing it). */
  onListen?: (url: string) => void;
}

/** Longest wait for open requests to finish at shutdown, in milliseconds. */
const SHUTDOWN_GRACE_MS = 5000;

/** Starts a server with `config`. Resolves once it is listening. */
export async function startServer(
  config: Config,
  options: ServerOptions = {},
): Promise<ServerHandle> {
  setLogLevel(config.logLevel);
  const store = openSqliteStore(config.dataDir, { maxEventsPerJob: config.maxEventsPerJob });
  let authenticator: Authenticator | undefined;
  let secretInfo: ServerHandle["secret"];
  const authStore = config.noAuth ? undefined : store.authStore();
  if (!config.noAuth) {
    try {
      const generated = config.jwtSecret === undefined && config.jwtPublicKey === undefined &&
        config.jwksUrl === undefined;
      const secret = loadOrCreateSecret(config.dataDir, config.jwtSecret);
      if (config.jwtSecret === undefined) {
        secretInfo = { path: secret.path, created: secret.created && generated };
      }
      authenticator = new Authenticator(
        await loadKeys({
          secret: secret.secret,
          publicKeyFile: config.jwtPublicKey,
          jwksUrl: config.jwksUrl,
          issuer: config.jwtIssuer,
          audience: config.jwtAudience,
        }),
      );
    } catch (error) {
      store.close();
      throw error;
    }
  }
  const visitors = new Visitors({
    maxConnections: config.maxConnections,
    maxConnectionsPerPrincipal: config.maxConnectionsPerPrincipal,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    publishRate: config.maxPublishRate,
    publishBurst: config.publishBurst,
  });
  const hub = new Hub(store, options.fanout ?? new LocalFanout());
  const committer = new Committer(store, (outcomes) => {
    for (const outcome of outcomes) {
      if (outcome.ok && outcome.committed.length > 0) hub.publishLocal(outcome.committed);
    }
  });
  const sessions = new Sessions(config.heartbeatMs);
  const stats = new Stats(() => hub.counts.delivered);
  const sweeper: Sweeper = new Sweeper(store, {
    policy: {
      retentionMs: config.retentionMs,
      tombstoneMs: config.tombstoneTtlMs,
      idempotencyMs: config.idempotencyTtlMs,
      batch: 500,
    },
    stallAfterMs: config.stallAfterMs,
    intervalMs: sweepInterval(config.retentionMs, config.stallAfterMs),
    onPurged: (ids) => {
      for (const id of ids) hub.jobDeleted(id, "job purged");
      log("info", "purged finished jobs past retention", { count: ids.length });
    },
    onStalled: (ids) => {
      for (const id of ids) {
        committer.append({
          jobId: id,
          events: [{
            type: "log",
            data: {
              line: `No event for ${
                Math.round(config.stallAfterMs / 1000)
              } s: the job may be stalled`,
              level: "warning",
              source: "jobwire",
            },
          }],
          markStalled: true,
        }).catch((error) => logError("stall warning failed", error, { job: id }))
          .finally(() => sweeper.stallHandled(id));
      }
    },
    also: (now) => authStore?.sweep(now, now - LOGIN_WINDOW_MS),
  });
  const app = createApp({
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
  });

  let resolveListen!: (addr: Deno.NetAddr) => void;
  const listening = new Promise<Deno.NetAddr>((resolve) => (resolveListen = resolve));
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: config.host,
      port: config.port,
      onListen: (addr) => resolveListen(addr),
    }, (request, info) => app.fetch(request, { info }));
  } catch (error) {
    sweeper.stop();
    stats.stop();
    sessions.stop();
    store.close();
    throw error;
  }
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}`;

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      const drained = server.shutdown();
      sessions.closeAll(CLOSE.goingAway, "server shutting down");
      hub.closeAll("server shutting down");
      committer.flush();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        drained,
        new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
      ]);
      clearTimeout(timer);
      committer.flush();
      sweeper.stop();
      stats.stop();
      sessions.stop();
      options.fanout?.close();
      store.close();
    })();
    return stopping;
  };
  options.onListen?.(url);
  return {
    url,
    port: addr.port,
    shutdown,
    finished: server.finished.then(() => stopping),
    keys: authenticator?.keys,
    secret: secretInfo,
  };
}
