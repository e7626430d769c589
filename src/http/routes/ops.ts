/**
 * Operations routes: `/healthz`, `/stats`, `/metrics` (Prometheus text) and
 * `/openapi.json`.
 *
 * @module
 */
import type { App, AppDeps } from "../app.ts";
import { ApiError } from "../errors.ts";
import { isAdmin } from "../../auth/principal.ts";
import { JOB_STATUSES } from "../../jobs/status.ts";
import { openApiDocument } from "../openapi.ts";
import { requirePrincipal } from "../access.ts";

/** The whole-server figures `/stats` and `/metrics` report. */
export function collectStats(deps: AppDeps): Record<string, unknown> {
  const { hub, sessions, stats, store, committer } = deps;
  const byStatus = store.countByStatus();
  const perJob: Record<string, { connections: number; last_sequence: number }> = {};
  let connectionsOnJobs = 0;
  for (const [id, entry] of hub.jobs()) {
    perJob[id] = entry;
    connectionsOnJobs += entry.connections;
  }
  const counts = sessions.counts();
  const commits = committer.counts;
  return {
    server_time: new Date().toISOString(),
    uptime_seconds: stats.uptimeSeconds(),
    connections: {
      total: sessions.size,
      ...counts,
      opened_total: sessions.opened,
    },
    jobs: {
      total: Object.values(byStatus).reduce((a, b) => a + b, 0),
      by_status: Object.fromEntries(JOB_STATUSES.map((s) => [s, byStatus[s] ?? 0])),
      watched: Object.keys(perJob).length,
      created_total: stats.jobsCreated,
    },
    events: {
      published_total: stats.eventsPublished,
      delivered_total: hub.counts.delivered,
      gap_fills_total: hub.counts.gapFills,
    },
    rates: stats.rates(),
    buffered_events: sessions.buffered(),
    commits: {
      transactions: commits.commits,
      appends: commits.appends,
      mean_group_size: commits.commits === 0
        ? 0
        : Math.round((commits.appends / commits.commits) * 100) / 100,
    },
    per_job: perJob,
    // The shape of hand-written progress channels' stats endpoints, for their dashboards.
    websocket_connections: {
      total_jobs: Object.keys(perJob).length,
      total_connections: connectionsOnJobs,
      jobs: perJob,
    },
  };
}

function metricsText(deps: AppDeps): string {
  const { hub, sessions, stats, store, committer } = deps;
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const counts = sessions.counts();
  metric("jobwire_connections", "gauge", "Open stream connections by transport.", [
    ['{transport="websocket"}', counts.websocket],
    ['{transport="sse"}', counts.sse],
    ['{transport="ndjson"}', counts.ndjson],
  ]);
  metric("jobwire_connections_opened_total", "counter", "Stream connections opened since start.", [
    ["", sessions.opened],
  ]);
  const byStatus = store.countByStatus();
  metric(
    "jobwire_jobs",
    "gauge",
    "Jobs by status.",
    JOB_STATUSES.map((s) => [`{status="${s}"}`, byStatus[s] ?? 0]),
  );
  metric("jobwire_jobs_created_total", "counter", "Jobs created since start.", [[
    "",
    stats.jobsCreated,
  ]]);
  metric("jobwire_events_published_total", "counter", "Events committed since start.", [[
    "",
    stats.eventsPublished,
  ]]);
  metric(
    "jobwire_messages_delivered_total",
    "counter",
    "Events handed to subscribers since start.",
    [
      ["", hub.counts.delivered],
    ],
  );
  metric("jobwire_gap_fills_total", "counter", "Gaps filled from the store before delivery.", [
    ["", hub.counts.gapFills],
  ]);
  metric("jobwire_commits_total", "counter", "Store transactions (group commits).", [[
    "",
    committer.counts.commits,
  ]]);
  metric("jobwire_commit_appends_total", "counter", "Publish requests committed.", [[
    "",
    committer.counts.appends,
  ]]);
  metric("jobwire_buffered_messages", "gauge", "Messages waiting for slow clients.", [[
    "",
    sessions.buffered(),
  ]]);
  metric("jobwire_long_polls_total", "counter", "Long-poll requests that waited.", [[
    "",
    stats.longPolls,
  ]]);
  metric("jobwire_server_errors_total", "counter", "Requests answered 500.", [[
    "",
    stats.serverErrors,
  ]]);
  metric("jobwire_uptime_seconds", "gauge", "Seconds since start.", [["", stats.uptimeSeconds()]]);
  return lines.join("\n") + "\n";
}

export function registerOpsRoutes(app: App, deps: AppDeps): void {
  app.get("/healthz", (c) => {
    try {
      deps.store.getJob("healthz");
    } catch {
      throw new ApiError("unavailable", "The event store is not answering");
    }
    return c.json({ status: "ok", uptime_seconds: deps.stats.uptimeSeconds() });
  });

  app.get("/stats", (c) => {
    if (!isAdmin(requirePrincipal(c))) {
      throw new ApiError("forbidden", "Stats need the admin scope");
    }
    return c.json(collectStats(deps));
  });

  app.get(
    "/metrics",
    (c) =>
      c.body(metricsText(deps), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }),
  );

  let openapi: string | undefined;
  app.get("/openapi.json", (c) => {
    openapi ??= JSON.stringify(openApiDocument());
    return c.body(openapi, 200, { "content-type": "application/json; charset=utf-8" });
  });
}
