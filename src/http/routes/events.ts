/**
 * `GET /jobs/:id/events`: SSE or NDJSON by `Accept` (or `format`), else a JSON page of
 * events with optional long-poll.
 *
 * @module
 */
import type { App, AppDeps } from "../app.ts";
import { ApiError } from "../errors.ts";
import { eventsPageQuery, parseOr, streamQuery } from "../schemas.ts";
import { canRead } from "../../auth/principal.ts";
import { codecFor } from "../../protocol/codec.ts";
import { serveHttpStream, streamHead } from "../../protocol/http_stream.ts";
import { CLOSE } from "../../protocol/session.ts";
import { isTerminal } from "../../jobs/status.ts";
import type { StoredEvent } from "../../jobs/envelope.ts";
import { type EventStore, readEventsWhile } from "../../store/event_store.ts";
import { findJob, jobAfterWait, waitForEvent } from "../lookup.ts";
import { admitStream, streamPrincipal, whileAdmitted } from "../access.ts";
import { noteStorageFault } from "../storage_fault.ts";
import { log } from "../../log.ts";
import { lastEventId, negotiate, parseSince, sessionContext, sinceFor } from "../streaming.ts";

/** Default number of events on a page. */
const DEFAULT_PAGE = 100;

/**
 * Most of a page's events, in characters of their JSON: a page of the largest events
 * (1,000 of 64 KiB) would otherwise be 64 MiB held for a client that may read it slowly.
 */
export const MAX_PAGE_CHARS = 4 * 1024 * 1024;

/**
 * Up to `limit` events after `since`: the leading ones that fit in {@link MAX_PAGE_CHARS},
 * and always the first. Rows past that are not read.
 */
function readPage(
  store: EventStore,
  id: string,
  since: number,
  limit: number,
  maxEventBytes: number,
): StoredEvent[] {
  const events: StoredEvent[] = [];
  let size = 0;
  readEventsWhile(store, id, since, limit, (event) => {
    size += event.envelope.length;
    if (size > MAX_PAGE_CHARS && events.length > 0) return false;
    events.push(event);
    return true;
  }, maxEventBytes);
  return events;
}

export function registerEventRoutes(app: App, deps: AppDeps): void {
  const { store, hub, sessions } = deps;

  app.get("/jobs/:id/events", async (c) => {
    const id = c.req.param("id");
    const query = c.req.query();
    // Before the credentials: a request that cannot be answered (406) uses up no ticket.
    const wanted = negotiate(c.req.header("accept") ?? null, query.format);
    // So is a query that cannot be read (422).
    const pageQuery = wanted.transport === "json"
      ? parseOr(eventsPageQuery, query, "invalid_query", "The query")
      : undefined;
    const options = pageQuery === undefined
      ? parseOr(streamQuery, query, "invalid_query", "The query")
      : undefined;
    const fromHeader = lastEventId(c.req.header("last-event-id") ?? null, [id]);
    const since = options === undefined ? undefined : fromHeader ?? parseSince(options.since);
    const principal = await streamPrincipal(c, deps, [id]);
    const job = findJob(store, id);
    if (!canRead(principal, job)) throw new ApiError("forbidden", `No access to job ${id}`);

    if (wanted.transport === "json") {
      const page = pageQuery!;
      const since = page.since ?? 0;
      const limit = page.limit ?? DEFAULT_PAGE;
      // The page and the job as it was read: one read transaction holds both, so that
      // another isolate's commit lands before or after them.
      const read = () => {
        const [page, now] = store.readConsistently(() =>
          [readPage(store, id, since, limit, deps.config.maxEventBytes), store.getJob(id)] as const
        );
        // Deleted meanwhile (by another isolate): 410, as it would be told a moment later.
        if (now === undefined || now.created_at !== job.created_at) {
          throw new ApiError("job_gone", `Job ${id} was deleted meanwhile`);
        }
        return [page, now] as const;
      };
      let [events, current] = read();
      if (
        events.length === 0 && (page.wait ?? 0) > 0 && !isTerminal(current.status) &&
        since <= current.last_sequence
      ) {
        const ended = await whileAdmitted(
          c,
          deps,
          principal,
          (signal) => waitForEvent(hub, id, page.wait! * 1000, signal),
        );
        jobAfterWait(store, id, ended, "its events");
        [events, current] = read();
      }
      // The job says it keeps events after `since` and none could be read: a damaged file.
      // The page says they are lost (truncated) and goes on from the job's end, so that a
      // client paging on `has_more`, or filling a gap, moves on rather than ask again for
      // ever; the log and /healthz tell the operator.
      const lost = events.length === 0 && since < current.last_sequence &&
        since >= current.first_sequence - 1;
      if (lost) {
        log("error", "the database lacks events it should hold (damaged?)", {
          job: id,
          first: current.first_sequence,
          last: current.last_sequence,
          since,
        });
        noteStorageFault(deps, undefined, true);
      }
      const last = events.at(-1)?.sequence;
      // Past the job's end (a job made again under its id): on from where the job is.
      const next = last ??
        (lost ? current.last_sequence : Math.max(0, Math.min(since, current.last_sequence)));
      // Envelopes are stored as JSON text: the page is assembled without parsing them.
      const body = `{"job_id":${JSON.stringify(id)},"events":[${
        events.map((e) => e.envelope).join(",")
      }],"last_sequence":${current.last_sequence},"next_since":${next},"first_available":${current.first_sequence},"truncated":${
        lost || since < current.first_sequence - 1 || since > current.last_sequence
      },"has_more":${next < current.last_sequence},"status":${JSON.stringify(current.status)}}`;
      return c.body(body, 200, {
        "content-type": "application/json; charset=utf-8",
        "x-watchers": String(hub.watchers(id) + deps.peers.remoteWatchers(id)),
      });
    }

    const start = sinceFor(since!, id);
    const closeOnFinish = options!.close_on_finish ?? false;
    if (
      closeOnFinish && fromHeader !== undefined && isTerminal(job.status) &&
      (start ?? 0) === job.last_sequence
    ) {
      // An EventSource reconnecting after the end has everything: 204 stops its retries. One
      // past the end (a job made again under its id) gets the stream, which says `truncated`.
      return c.body(null, 204);
    }
    const codec = codecFor(wanted.transport, wanted.format);
    if (c.req.method === "HEAD") return streamHead(codec);
    const release = admitStream(c, deps, principal);
    return serveHttpStream(
      codec,
      sessionContext(deps, principal, release, c.get("ip")),
      { closeOnFinish, single: true, completed: c.env?.info?.completed },
      (session) => {
        sessions.add(session);
        const result = session.subscribe(id, start);
        if (result === "not_found") session.jobGone(id, "job not found", "job_not_found");
        if (result === "forbidden") session.close(CLOSE.policy, "forbidden");
      },
    );
  });
}
