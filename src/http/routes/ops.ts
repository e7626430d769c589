/**
 * Operations routes: `/healthz` (and `/health`), `/stats`, `/metrics` (Prometheus text) and
 * `/openapi.json`.
 *
 * @module
 */
import type { Context } from "hono";
import type { App, AppDeps, AppEnv } from "../app.ts";
import { ApiError } from "../errors.ts";
import { isAdmin } from "../../auth/principal.ts";
import { JOB_STATUSES } from "../../jobs/status.ts";
import { openApiDocument } from "../openapi.ts";
import type { IsolateFigures } from "../../hub/peers.ts";
import { requirePrincipal } from "../access.ts";
import { recentStorageFault } from "../storage_fault.ts";

/** This isolate's figures. */
export function localFigures(deps: AppDeps): IsolateFigures {
  const { hub, sessions, stats, committer } = deps;
  const perJob: IsolateFigures["perJob"] = {};
  for (const [id, entry] of hub.jobs()) perJob[id] = entry;
  const rates = stats.rates();
  return {
    connections: { ...sessions.counts(), long_poll: stats.longPollsWaiting },
    closing: sessions.closing,
    opened: sessions.opened,
    published: stats.eventsPublished,
    delivered: hub.counts.delivered,
    gapFills: hub.counts.gapFills,
    replayedFromMemory: hub.counts.replayedFromMemory,
    replayedFromStore: hub.counts.replayedFromStore,
    replayCacheBytes: hub.recentBytes,
    commits: committer.counts.commits,
    appends: committer.counts.appends,
    lockWaits: committer.counts.lockWaits,
    buffered: sessions.buffered(),
    serverErrors: stats.serverErrors,
    storageErrors: stats.storageErrors,
    longPolls: stats.longPolls,
    jobsCreated: stats.jobsCreated,
    publishedPerSecond: rates.events_published_per_second,
    deliveredPerSecond: rates.messages_delivered_per_second,
    perJob,
    refusals: { ...stats.refusals },
    closes: { ...stats.closes },
  };
}

/** Samples labelled by `code`, in order of code. */
function byCode(counts: Record<string, number>): [string, number][] {
  return Object.keys(counts).sort().map((code) => [`{code="${code}"}`, counts[code]!]);
}

/** Adds the counts of `from` to `into`, key by key. */
function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, count] of Object.entries(from)) into[key] = (into[key] ?? 0) + count;
}

/** The figures of every isolate of this server added up. */
export async function serverFigures(
  deps: AppDeps,
  waitMs?: number,
): Promise<IsolateFigures & { isolates: number; expected: number; each: IsolateFigures[] }> {
  const expected = deps.peers.count + 1;
  const others = await deps.peers.gather(waitMs);
  const all = [localFigures(deps), ...others.figures];
  const total: IsolateFigures & { isolates: number; expected: number; each: IsolateFigures[] } = {
    ...all[0]!,
    connections: { websocket: 0, sse: 0, ndjson: 0, long_poll: 0 },
    perJob: {},
    refusals: {},
    closes: {},
    // Those that answered now; one that did not is counted with the figures it last gave.
    isolates: all.length - others.stale,
    expected,
    each: all,
  };
  const sums = [
    "closing",
    "opened",
    "published",
    "delivered",
    "gapFills",
    "replayedFromMemory",
    "replayedFromStore",
    "replayCacheBytes",
    "commits",
    "appends",
    "lockWaits",
    "buffered",
    "serverErrors",
    "storageErrors",
    "longPolls",
    "jobsCreated",
    "publishedPerSecond",
    "deliveredPerSecond",
  ] as const;
  for (const key of sums) total[key] = 0;
  for (const figures of all) {
    for (const key of sums) total[key] += figures[key];
    total.connections.websocket += figures.connections.websocket;
    total.connections.sse += figures.connections.sse;
    total.connections.ndjson += figures.connections.ndjson;
    total.connections.long_poll += figures.connections.long_poll;
    addCounts(total.refusals, figures.refusals);
    addCounts(total.closes, figures.closes);
    for (const [id, entry] of Object.entries(figures.perJob)) {
      const sum = total.perJob[id] ?? { connections: 0, last_sequence: 0 };
      sum.connections += entry.connections;
      sum.last_sequence = Math.max(sum.last_sequence, entry.last_sequence);
      total.perJob[id] = sum;
    }
  }
  total.publishedPerSecond = Math.round(total.publishedPerSecond * 10) / 10;
  total.deliveredPerSecond = Math.round(total.deliveredPerSecond * 10) / 10;
  return total;
}

/** Open streams and waiting long-polls, every transport. */
function connectionCount(c: IsolateFigures["connections"]): number {
  return c.websocket + c.sse + c.ndjson + c.long_poll;
}

/** The whole-server figures `/stats` reports. */
export async function collectStats(deps: AppDeps): Promise<Record<string, unknown>> {
  const { stats, store } = deps;
  const f = await serverFigures(deps);
  const byStatus = store.countByStatus();
  let connectionsOnJobs = 0;
  for (const entry of Object.values(f.perJob)) connectionsOnJobs += entry.connections;
  const total = connectionCount(f.connections);
  return {
    server_time: new Date().toISOString(),
    uptime_seconds: stats.uptimeSeconds(),
    isolates: f.isolates,
    // An isolate busy past the wait (a second) is left out, and its counts with it: the
    // figures are then this much of the server's, not all of it.
    isolates_expected: Math.max(f.expected, f.isolates),
    partial: f.isolates < f.expected,
    // Each isolate's share (the first is the one answering), to see how load spreads.
    per_isolate: f.each.map((one) => ({
      connections: connectionCount(one.connections),
      published_total: one.published,
      delivered_total: one.delivered,
      commits: one.commits,
      lock_waits: one.lockWaits,
    })),
    // `closing`: closed by the server, but their clients have not taken the close (nor what
    // came before it) yet; they still count against the connection limits.
    connections: { total, ...f.connections, opened_total: f.opened, closing: f.closing },
    jobs: {
      total: Object.values(byStatus).reduce((a, b) => a + b, 0),
      by_status: Object.fromEntries(JOB_STATUSES.map((s) => [s, byStatus[s] ?? 0])),
      watched: Object.keys(f.perJob).length,
      created_total: f.jobsCreated,
    },
    events: {
      published_total: f.published,
      delivered_total: f.delivered,
      gap_fills_total: f.gapFills,
      replayed_from_memory_total: f.replayedFromMemory,
      replayed_from_store_total: f.replayedFromStore,
    },
    replay_cache_bytes: f.replayCacheBytes,
    rates: {
      events_published_per_second: f.publishedPerSecond,
      messages_delivered_per_second: f.deliveredPerSecond,
    },
    buffered_events: f.buffered,
    // Error answers by error code, and streams ended by close code (`client`: the client left).
    errors: f.refusals,
    streams_closed: f.closes,
    commits: {
      transactions: f.commits,
      appends: f.appends,
      mean_group_size: f.commits === 0 ? 0 : Math.round((f.appends / f.commits) * 100) / 100,
      lock_waits: f.lockWaits,
    },
    per_job: f.perJob,
    // The shape of hand-written progress channels' stats endpoints, for their dashboards.
    websocket_connections: {
      total_jobs: Object.keys(f.perJob).length,
      total_connections: connectionsOnJobs,
      jobs: f.perJob,
    },
  };
}

/**
 * How long `/metrics` waits for the other isolates: longer than `/stats` (a scraper's timeout
 * is seconds), so that one busy with a burst of replays is still counted fresh.
 */
const METRICS_WAIT_MS = 5_000;

async function metricsText(deps: AppDeps): Promise<string> {
  const { stats, store } = deps;
  const f = await serverFigures(deps, METRICS_WAIT_MS);
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric(
    "jobwire_connections",
    "gauge",
    "Open stream connections and waiting long-polls, by transport.",
    [
      ['{transport="websocket"}', f.connections.websocket],
      ['{transport="sse"}', f.connections.sse],
      ['{transport="ndjson"}', f.connections.ndjson],
      ['{transport="long_poll"}', f.connections.long_poll],
    ],
  );
  metric(
    "jobwire_connections_closing",
    "gauge",
    "Connections closed by the server whose clients have not taken the close yet.",
    [["", f.closing]],
  );
  metric("jobwire_connections_opened_total", "counter", "Stream connections opened since start.", [[
    "",
    f.opened,
  ]]);
  const byStatus = store.countByStatus();
  metric(
    "jobwire_jobs",
    "gauge",
    "Jobs by status.",
    JOB_STATUSES.map((s) => [`{status="${s}"}`, byStatus[s] ?? 0]),
  );
  metric("jobwire_jobs_created_total", "counter", "Jobs created since start.", [[
    "",
    f.jobsCreated,
  ]]);
  metric("jobwire_events_published_total", "counter", "Events committed since start.", [[
    "",
    f.published,
  ]]);
  metric(
    "jobwire_messages_delivered_total",
    "counter",
    "Events handed to subscribers since start.",
    [
      ["", f.delivered],
    ],
  );
  metric("jobwire_gap_fills_total", "counter", "Gaps filled from the store before delivery.", [[
    "",
    f.gapFills,
  ]]);
  metric("jobwire_events_replayed_total", "counter", "Events replayed to joining streams.", [
    ['{source="memory"}', f.replayedFromMemory],
    ['{source="store"}', f.replayedFromStore],
  ]);
  metric("jobwire_replay_cache_bytes", "gauge", "Recent events kept in memory for replays.", [[
    "",
    f.replayCacheBytes,
  ]]);
  metric(
    "jobwire_commits_total",
    "counter",
    "Store transactions (group commits) that wrote events.",
    [[
      "",
      f.commits,
    ]],
  );
  metric("jobwire_commit_appends_total", "counter", "Publish requests committed.", [[
    "",
    f.appends,
  ]]);
  metric("jobwire_buffered_messages", "gauge", "Messages waiting for slow clients.", [[
    "",
    f.buffered,
  ]]);
  metric("jobwire_long_polls_total", "counter", "Long-poll requests that waited.", [[
    "",
    f.longPolls,
  ]]);
  metric(
    "jobwire_errors_total",
    "counter",
    "Requests answered with an error, and WebSocket handshakes refused, by error code.",
    byCode(f.refusals),
  );
  metric(
    "jobwire_streams_closed_total",
    "counter",
    "Streams that ended, by the close code the server gave (client: the client left first; " +
      "replay: a replay cut to go on with since, closed 4008 as a slow consumer is).",
    byCode(f.closes),
  );
  metric("jobwire_server_errors_total", "counter", "Requests answered 500.", [[
    "",
    f.serverErrors,
  ]]);
  metric(
    "jobwire_storage_errors_total",
    "counter",
    "Requests refused (503) because the database could not read or write them: full, " +
      "locked by another process past the wait, damaged or read-only.",
    [["", f.storageErrors]],
  );
  metric(
    "jobwire_lock_waits_total",
    "counter",
    "Commits that found SQLite's write lock taken and waited their turn.",
    [["", f.lockWaits]],
  );
  metric(
    "jobwire_isolates",
    "gauge",
    "Isolates serving (one per core with deno serve --parallel).",
    [
      ["", f.isolates],
    ],
  );
  metric("jobwire_uptime_seconds", "gauge", "Seconds since start.", [["", stats.uptimeSeconds()]]);
  return lines.join("\n") + "\n";
}

export function registerOpsRoutes(app: App, deps: AppDeps): void {
  /** Liveness: the store answers. */
  const health = (status: string) => (c: Context<AppEnv>) => {
    try {
      deps.store.getJob("healthz");
    } catch {
      throw new ApiError("unavailable", "The event store is not answering");
    }
    // A database damaged in places answers the check above and fails the requests that
    // touch those places: such a failure marks the server unhealthy for a while.
    const ago = recentStorageFault(deps);
    if (ago !== undefined) {
      // SQLite's own words stay in the log: this answer is open to anyone.
      throw new ApiError(
        "unavailable",
        `The database failed a request ${ago} s ago as damaged, unreadable, full or read-only: ` +
          "the server's log says more",
      );
    }
    // `isolates` counts this one and the others it hears from: the launcher waits for all.
    return c.json({
      status,
      uptime_seconds: deps.stats.uptimeSeconds(),
      isolates: deps.peers.count + 1,
      instance: deps.instance,
    });
  };
  app.get("/healthz", health("ok"));
  // The word hand-written servers' health checks answer with.
  app.get("/health", health("healthy"));

  app.get("/stats", async (c) => {
    if (!isAdmin(requirePrincipal(c))) {
      throw new ApiError("forbidden", "Stats need the admin scope");
    }
    return c.json(await collectStats(deps));
  });

  app.get(
    "/metrics",
    async (c) =>
      c.body(await metricsText(deps), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }),
  );

  let openapi: string | undefined;
  app.get("/openapi.json", (c) => {
    openapi ??= JSON.stringify(openApiDocument());
    return c.body(openapi, 200, { "content-type": "application/json; charset=utf-8" });
  });
}
