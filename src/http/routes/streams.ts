/**
 * Stream routes: `/ws/jobs/:id` (one job), `/ws` (many jobs over one socket) and
 * `/events` (many jobs over SSE or NDJSON).
 *
 * @module
 */
import type { Context } from "hono";
import type { z } from "zod";
import { admitStream, refuseWebSocket, streamPrincipal } from "../access.ts";
import { visibility } from "./jobs.ts";
import type { App, AppDeps, AppEnv } from "../app.ts";
import { ApiError } from "../errors.ts";
import { parseOr, streamQuery } from "../schemas.ts";
import { canRead, type Principal } from "../../auth/principal.ts";
import { codecFor } from "../../protocol/codec.ts";
import { serveWebSocket } from "../../protocol/websocket.ts";
import { serveHttpStream, streamHead } from "../../protocol/http_stream.ts";
import { CLOSE, type FirehoseFilter, type Session } from "../../protocol/session.ts";
import { type JobRecord, publicJob } from "../../jobs/job.ts";
import { isTerminal, type JobStatus } from "../../jobs/status.ts";
import { findJob } from "../lookup.ts";
import {
  jobList,
  lastEventId,
  negotiate,
  parseSince,
  sessionContext,
  type Since,
  sinceFor,
} from "../streaming.ts";

/** Most jobs one stream may name in `jobs=`. */
export const MAX_JOBS_PER_STREAM = 100;

/** Largest WebSocket client message, in bytes. */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024;

/** Jobs listed in the `connection` message of an `all=1` stream, newest first. */
const FIREHOSE_SNAPSHOT_LIMIT = 200;

/** What a 426 must name (RFC 9110 §15.5.22): the protocol to upgrade to. */
const UPGRADE_HEADERS = { upgrade: "websocket", connection: "Upgrade" };

function requireUpgrade(c: Context<AppEnv>): void {
  if ((c.req.header("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new ApiError(
      "upgrade_required",
      "This is a WebSocket endpoint: connect with ws:// or wss://",
      undefined,
      UPGRADE_HEADERS,
    );
  }
  // What the runtime's upgrade needs besides, checked here so that a handshake without it
  // is refused like any bad request, before a connection slot is taken.
  if (!/(^|,)\s*upgrade\s*(,|$)/i.test(c.req.header("connection") ?? "")) {
    throw new ApiError("invalid_upgrade", "A WebSocket upgrade needs Connection: Upgrade");
  }
  if ((c.req.header("sec-websocket-key") ?? "").trim() === "") {
    throw new ApiError("invalid_upgrade", "A WebSocket upgrade needs a Sec-WebSocket-Key");
  }
  // RFC 6455 §4.4: a version the server does not speak is answered 426 with the one it does.
  const version = (c.req.header("sec-websocket-version") ?? "").trim();
  if (version !== "13") {
    throw new ApiError(
      "upgrade_required",
      `This server speaks WebSocket version 13, not ${version === "" ? "none" : version}`,
      undefined,
      { ...UPGRADE_HEADERS, "sec-websocket-version": "13" },
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
      if (gone) session.error("job_gone", `Job ${jobId} was deleted or purged`, jobId);
      else session.error("job_not_found", `No job ${jobId}`, jobId);
    } else if (result === "forbidden") {
      session.error("forbidden", `No access to job ${jobId}`, jobId);
    } else if (result === "already") {
      session.error("already_subscribed", `Already subscribed to job ${jobId}`, jobId);
    }
  }

  /** Snapshots of the jobs an `all=1` stream starts with, and whether there are more. */
  function visibleJobs(
    principal: Principal,
    filter: FirehoseFilter,
  ): { jobs: ReturnType<typeof publicJob>[]; more: boolean } {
    const page = store.listJobs({
      ...filter,
      limit: FIREHOSE_SNAPSHOT_LIMIT,
      ...visibility(principal),
    });
    const jobs = page.jobs.filter((job: JobRecord) => canRead(principal, job)).map((job) => {
      const { result: _r, ...rest } = publicJob(job);
      return rest as ReturnType<typeof publicJob>;
    });
    return { jobs, more: page.next_cursor !== null };
  }

  /** Starts a many-job session: every visible job (`all=1`), or the jobs it names. */
  function followJobs(
    session: Session,
    principal: Principal,
    options: StreamOptions,
    jobs: string[],
    since: Since,
  ): void {
    if (options.all === true) {
      const filter = firehoseFilter(options);
      const { jobs, more } = visibleJobs(principal, filter);
      session.subscribeAll(filter, jobs, more);
      return;
    }
    session.greet(jobs);
    for (const id of jobs) session.expect(id, sinceFor(since, id));
    session.join(jobs, (id) => subscribeNamed(session, id, sinceFor(since, id)));
  }

  /**
   * Opens a WebSocket session, or, when access is refused, accepts the socket only to close
   * it with the code that says why (a browser sees close codes, not HTTP statuses).
   */
  async function webSocket(
    c: Context<AppEnv>,
    jobIds: readonly string[],
    options: StreamOptions,
    single: boolean,
    onOpen: (session: Session, principal: Principal) => void,
    mayRead?: (principal: Principal) => void,
  ): Promise<Response> {
    requireUpgrade(c);
    let principal: Principal;
    let release: () => void;
    try {
      principal = await streamPrincipal(c, deps, jobIds);
      // Refused for access before the limits: a client without access hears "forbidden",
      // not "try again later".
      mayRead?.(principal);
      release = admitStream(c, deps, principal);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return refuseWebSocket(c, deps, error);
    }
    const format = options.format === "snapshot" ? "snapshot" : "envelope";
    try {
      return serveWebSocket(
        c.req.raw,
        codecFor("websocket", format),
        sessionContext(deps, principal, release, c.get("ip")),
        {
          maxMessageBytes: MAX_CLIENT_MESSAGE_BYTES,
          closeOnFinish: options.close_on_finish ?? false,
          batch: options.batch ?? false,
          single,
          onOpen(session) {
            sessions.add(session);
            onOpen(session, principal);
          },
          onSubscribe(session, jobId, since) {
            // As many jobs as a stream may name in its URL, whatever way they were added.
            if (session.jobCount >= MAX_JOBS_PER_STREAM && !session.follows(jobId)) {
              session.error(
                "too_many_jobs",
                `A stream follows at most ${MAX_JOBS_PER_STREAM} jobs: unsubscribe from one first`,
                jobId,
              );
              return;
            }
            subscribeNamed(session, jobId, since);
          },
        },
      );
    } catch (error) {
      // The runtime refused the handshake: the slot goes back, and the client hears why.
      release();
      const why = error instanceof Error ? error.message : String(error);
      throw new ApiError("invalid_upgrade", `The WebSocket handshake was refused: ${why}`);
    }
  }

  app.get("/ws/jobs/:id", (c) => {
    const id = c.req.param("id");
    const options = parseOr(streamQuery, c.req.query(), "invalid_query", "The query");
    const since = parseSince(options.since);
    return webSocket(c, [id], options, true, (session) => {
      const result = session.subscribe(id, sinceFor(since, id));
      if (result === "not_found") {
        if (store.isGone(id)) session.jobGone(id, "job deleted or purged");
        else session.jobGone(id, "job not found", "job_not_found");
      } else if (result === "forbidden") {
        session.close(CLOSE.policy, "forbidden");
      }
    }, (principal) => {
      const job = store.getJob(id);
      if (job !== undefined && !canRead(principal, job)) {
        throw new ApiError("forbidden", `No access to job ${id}`);
      }
    });
  });

  app.get("/ws", (c) => {
    const options = parseOr(streamQuery, c.req.query(), "invalid_query", "The query");
    const since = parseSince(options.since);
    const jobs = jobList(options.jobs, MAX_JOBS_PER_STREAM);
    return webSocket(
      c,
      options.all === true ? [] : jobs,
      options,
      false,
      (session, principal) => followJobs(session, principal, options, jobs, since),
    );
  });

  app.get("/events", async (c) => {
    const query = c.req.query();
    const options = parseOr(streamQuery, query, "invalid_query", "The query");
    const wanted = negotiate(c.req.header("accept") ?? null, options.format, false);
    const transport = wanted.transport === "json" ? "sse" : wanted.transport;
    const jobs = jobList(options.jobs, MAX_JOBS_PER_STREAM);
    if (options.all !== true && jobs.length === 0) {
      throw new ApiError("invalid_query", "Name jobs (jobs=a,b) or ask for all=1", [
        { path: "jobs", message: "Required unless all=1" },
      ]);
    }
    // Read before the credentials: a query refused (422) uses up no ticket.
    const fromHeader = lastEventId(c.req.header("last-event-id") ?? null, jobs);
    const since: Since = fromHeader ?? parseSince(options.since);
    const principal = await streamPrincipal(c, deps, options.all === true ? [] : jobs);
    // A job gone from the list is told in an error message on the stream, and the others go
    // on: an EventSource resuming a stream of several jobs would otherwise stop for good
    // once one of them was deleted. With none left there is nothing to follow.
    let found = 0;
    for (const id of jobs) {
      const job = store.getJob(id);
      if (job === undefined) continue;
      found++;
      if (!canRead(principal, job)) throw new ApiError("forbidden", `No access to job ${id}`);
    }
    if (jobs.length > 0 && found === 0) findJob(store, jobs[0]!);
    if (
      fromHeader !== undefined && options.close_on_finish === true && options.all !== true &&
      jobs.every((id) => {
        const job = store.getJob(id);
        return job === undefined ||
          (isTerminal(job.status) && sinceFor(fromHeader, id) === job.last_sequence);
      })
    ) {
      // As on a one-job stream: an EventSource reconnecting after every job's end has
      // everything, and 204 stops its retries.
      return c.body(null, 204);
    }
    const codec = codecFor(transport, wanted.format);
    if (c.req.method === "HEAD") return streamHead(codec);
    const release = admitStream(c, deps, principal);
    return serveHttpStream(
      codec,
      sessionContext(deps, principal, release, c.get("ip")),
      {
        closeOnFinish: options.close_on_finish ?? false,
        single: false,
        ...(transport === "sse" && options.all !== true ? { cursorIds: jobs } : {}),
        completed: c.env?.info?.completed,
      },
      (session) => {
        sessions.add(session);
        followJobs(session, principal, options, jobs, since);
      },
    );
  });
}

/** The query of a stream route, as parsed. */
type StreamOptions = z.output<typeof streamQuery>;

function firehoseFilter(
  options: { kind?: string | undefined; status?: JobStatus | undefined },
): FirehoseFilter {
  return {
    ...(options.kind === undefined ? {} : { kind: options.kind }),
    ...(options.status === undefined ? {} : { status: options.status }),
  };
}
