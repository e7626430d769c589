/**
 * Stream routes: `/ws/jobs/:id` (one job), `/ws` (many jobs over one socket) and
 * `/events` (many jobs over SSE or NDJSON).
 *
 * @module
 */
import type { Context } from "hono";
import type { App, AppDeps, AppEnv } from "../app.ts";
import { ApiError } from "../errors.ts";
import { parseOr, streamQuery } from "../schemas.ts";
import { canRead, type Principal } from "../../auth/principal.ts";
import { codecFor } from "../../protocol/codec.ts";
import { serveWebSocket } from "../../protocol/websocket.ts";
import { serveHttpStream } from "../../protocol/http_stream.ts";
import { CLOSE, type FirehoseFilter, type Session } from "../../protocol/session.ts";
import { type JobRecord, publicJob } from "../../jobs/job.ts";
import type { JobStatus } from "../../jobs/status.ts";
import { findJob } from "../lookup.ts";
import {
  jobList,
  lastEventId,
  negotiate,
  parseSince,
  sessionContext,
  type Since,
  sinceFor,
  STREAM_HIGH_WATER,
} from "../streaming.ts";

/** Most jobs one stream may name in `jobs=`. */
export const MAX_JOBS_PER_STREAM = 100;

/** Largest WebSocket client message, in bytes. */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024;

/** Jobs listed in the `connection` message of an `all=1` stream, newest first. */
const FIREHOSE_SNAPSHOT_LIMIT = 200;

function requireUpgrade(c: Context<AppEnv>): void {
  if ((c.req.header("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new ApiError(
      "upgrade_required",
      "This is a WebSocket endpoint: connect with ws:// or wss://",
    );
  }
}

export function registerStreamRoutes(app: App, deps: AppDeps): void {
  const { store, sessions } = deps;

  /** Subscribes a session to a job named by the client, answering problems in-stream. */
  function subscribeNamed(session: Session, jobId: string, since: number | null): void {
    const result = session.subscribe(jobId, since);
    if (result === "not_found") {
      const gone = store.isGone(jobId);
      session.error("job_not_found", gone ? `Job ${jobId} was purged` : `No job ${jobId}`, jobId);
    } else if (result === "forbidden") {
      session.error("forbidden", `No access to job ${jobId}`, jobId);
    } else if (result === "already") {
      session.error("already_subscribed", `Already subscribed to job ${jobId}`, jobId);
    }
  }

  /** Snapshots of the jobs an `all=1` stream starts with. */
  function visibleJobs(
    principal: Principal,
    filter: FirehoseFilter,
  ): ReturnType<typeof publicJob>[] {
    const page = store.listJobs({ ...filter, limit: FIREHOSE_SNAPSHOT_LIMIT });
    return page.jobs.filter((job: JobRecord) => canRead(principal, job)).map((job) => {
      const { result: _r, ...rest } = publicJob(job);
      return rest as ReturnType<typeof publicJob>;
    });
  }

  app.get("/ws/jobs/:id", (c) => {
    requireUpgrade(c);
    const principal = c.get("principal");
    const id = c.req.param("id");
    const options = parseOr(streamQuery, c.req.query(), "invalid_query", "The query");
    const since = parseSince(options.since);
    const format = options.format === "snapshot" ? "snapshot" : "envelope";
    return serveWebSocket(
      c.req.raw,
      codecFor("websocket", format),
      sessionContext(deps, principal),
      {
        maxMessageBytes: MAX_CLIENT_MESSAGE_BYTES,
        closeOnFinish: options.close_on_finish ?? false,
        single: true,
        onOpen(session) {
          sessions.add(session);
          const result = session.subscribe(id, sinceFor(since, id));
          if (result === "not_found") {
            session.close(CLOSE.jobNotFound, store.isGone(id) ? "job was purged" : "job not found");
          } else if (result === "forbidden") {
            session.close(CLOSE.policy, "forbidden");
          }
        },
        onSubscribe: subscribeNamed,
      },
    );
  });

  app.get("/ws", (c) => {
    requireUpgrade(c);
    const principal = c.get("principal");
    const options = parseOr(streamQuery, c.req.query(), "invalid_query", "The query");
    const since = parseSince(options.since);
    const jobs = jobList(options.jobs, MAX_JOBS_PER_STREAM);
    const format = options.format === "snapshot" ? "snapshot" : "envelope";
    return serveWebSocket(
      c.req.raw,
      codecFor("websocket", format),
      sessionContext(deps, principal),
      {
        maxMessageBytes: MAX_CLIENT_MESSAGE_BYTES,
        closeOnFinish: options.close_on_finish ?? false,
        single: false,
        onOpen(session) {
          sessions.add(session);
          if (options.all === true) {
            const filter = firehoseFilter(options);
            session.subscribeAll(filter, visibleJobs(principal, filter));
            return;
          }
          session.greet(jobs);
          for (const id of jobs) subscribeNamed(session, id, sinceFor(since, id));
        },
        onSubscribe: subscribeNamed,
      },
    );
  });

  app.get("/events", (c) => {
    const principal = c.get("principal");
    const query = c.req.query();
    const options = parseOr(streamQuery, query, "invalid_query", "The query");
    const wanted = negotiate(c.req.header("accept") ?? null, options.format);
    const transport = wanted.transport === "json" ? "sse" : wanted.transport;
    const jobs = jobList(options.jobs, MAX_JOBS_PER_STREAM);
    if (options.all !== true && jobs.length === 0) {
      throw new ApiError("invalid_query", "Name jobs (jobs=a,b) or ask for all=1", [
        { path: "jobs", message: "Required unless all=1" },
      ]);
    }
    for (const id of jobs) {
      const job = findJob(store, id);
      if (!canRead(principal, job)) throw new ApiError("forbidden", `No access to job ${id}`);
    }
    const since: Since = lastEventId(c.req.header("last-event-id") ?? null, jobs) ??
      parseSince(options.since);
    const codec = codecFor(transport, wanted.format);
    return serveHttpStream(
      codec,
      sessionContext(deps, principal),
      {
        closeOnFinish: options.close_on_finish ?? false,
        single: false,
        highWater: STREAM_HIGH_WATER,
        ...(transport === "sse" && options.all !== true ? { cursorIds: jobs } : {}),
      },
      (session) => {
        sessions.add(session);
        if (options.all === true) {
          const filter = firehoseFilter(options);
          session.subscribeAll(filter, visibleJobs(principal, filter));
          return;
        }
        session.greet(jobs);
        for (const id of jobs) subscribeNamed(session, id, sinceFor(since, id));
      },
    );
  });
}

function firehoseFilter(
  options: { kind?: string | undefined; status?: JobStatus | undefined },
): FirehoseFilter {
  return {
    ...(options.kind === undefined ? {} : { kind: options.kind }),
    ...(options.status === undefined ? {} : { status: options.status }),
  };
}
