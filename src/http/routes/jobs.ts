/**
 * Job routes: create, list, get (with `wait=terminal`), delete.
 *
 * @module
 */
import type { App, AppDeps } from "../app.ts";
import { ApiError } from "../errors.ts";
import { readJson } from "../body.ts";
import { sizeOver } from "../../jobs/input.ts";
import { createJobBody, getJobQuery, idempotencyKey, listJobsQuery, parseOr } from "../schemas.ts";
import {
  canCreate,
  canRead,
  canReadAll,
  canWrite,
  canWriteAll,
  isAdmin,
  type Principal,
} from "../../auth/principal.ts";
import { principalKey, requirePrincipal, whileAdmitted } from "../access.ts";
import { type JobRecord, publicJob } from "../../jobs/job.ts";
import { isTerminal } from "../../jobs/status.ts";
import { decodeCursor } from "../../store/cursor.ts";
import { writeSoon } from "../../store/write_soon.ts";
import { findJob, jobAfterWait, waitForEvent } from "../lookup.ts";

/**
 * Absolute URLs a client uses to follow a job, from the origin the request came to (with
 * `https` and `wss` when it reached a trusted proxy over HTTPS).
 */
export function jobUrls(requestUrl: string, id: string, https = false): Record<string, string> {
  const url = new URL(requestUrl);
  if (https) url.protocol = "https:";
  const origin = url.origin;
  const ws = origin.replace(/^http/, "ws");
  const path = `/jobs/${encodeURIComponent(id)}`;
  return {
    self: `${origin}${path}`,
    events: `${origin}${path}/events`,
    ws: `${ws}/ws${path}`,
    sse: `${origin}${path}/events`,
    ndjson: `${origin}${path}/events?format=ndjson`,
    status: `${origin}/#/jobs/${encodeURIComponent(id)}`,
  };
}

/** A job without its result (lists stay small; `has_result` tells whether there is one). */
function listItem(record: JobRecord): Record<string, unknown> {
  const { result: _result, ...rest } = publicJob(record);
  return rest;
}

/** Most ids of a token's `jobs` claim a list query matches against. */
const MAX_CLAIMED_JOBS = 500;

/**
 * The list restriction of a principal that may not see every job: its own jobs and those
 * its token names.
 */
export function visibility(
  principal: Principal,
): { visibleTo?: { owner: string | null; ids: string[] } } {
  if (canReadAll(principal)) return {};
  const ownsJobs = principal.sub !== null &&
    (principal.scopes.has("read") || principal.scopes.has("write"));
  return {
    visibleTo: {
      owner: ownsJobs ? principal.sub : null,
      ids: [...principal.jobs].slice(0, MAX_CLAIMED_JOBS),
    },
  };
}

/** Default and longest `wait=terminal` timeout, in seconds. */
const DEFAULT_TERMINAL_WAIT_SECONDS = 60;

export function registerJobRoutes(app: App, deps: AppDeps): void {
  const { store, hub, config } = deps;

  app.post("/jobs", async (c) => {
    const principal = requirePrincipal(c);
    if (!canCreate(principal)) {
      throw new ApiError("forbidden", "Creating jobs needs the write scope");
    }
    // No body is an empty object; a body of `null` is no object, and refused.
    const given = await readJson(c.req.raw, config.maxBodyBytes);
    const raw = given === undefined ? {} : given;
    const body = parseOr(createJobBody, raw);
    if (body.owner !== undefined && !isAdmin(principal) && body.owner !== principal.sub) {
      throw new ApiError("forbidden", "Only an admin may create a job for another owner");
    }
    // Kept as sent: the schema's copy would lose a key named `__proto__`.
    const metadata = (raw as { metadata?: Record<string, unknown> }).metadata ?? {};
    const size = sizeOver(JSON.stringify(metadata), config.maxEventBytes);
    if (size !== undefined) {
      throw new ApiError(
        "payload_too_large",
        `metadata has ${size} bytes as JSON; the limit is ${config.maxEventBytes}`,
      );
    }
    const wait = deps.visitors.allowPublish(principalKey(principal, c, config), 1);
    if (wait > 0) {
      throw new ApiError("rate_limited", "Creating jobs too fast: slow down", undefined, {
        "retry-after": String(wait),
      });
    }
    const header = c.req.header("idempotency-key");
    const key = header === undefined
      ? undefined
      : parseOr(idempotencyKey, header, "validation_error", "The Idempotency-Key header");
    // With a key and no id, the job made is remembered under the caller and key: a retried
    // create is answered with it instead of making a second one. (With an id, the id is
    // the key: a retry finds it taken.)
    const callerKey = body.id === undefined && key !== undefined
      ? `${principal.sub ?? ""}\n${key}`
      : undefined;
    const id = body.id ?? crypto.randomUUID();
    const owner = body.owner ?? principal.sub;
    if (owner === null && !canWriteAll(principal)) {
      // A job of nobody's that this token could then neither read, write nor delete.
      throw new ApiError(
        "forbidden",
        "This token has no sub, so a job it created would be no one's and out of its reach: " +
          "give the token a sub, or the write:all scope",
      );
    }
    const created = await writeSoon(
      store,
      () =>
        store.createJob({ id, kind: body.kind ?? null, owner, metadata }, Date.now(), callerKey),
    );
    if (!created.ok && created.code === "exists") {
      throw new ApiError("job_exists", `Job ${id} already exists`);
    }
    if (!created.ok) {
      const made = created.jobId;
      const existing = store.getJob(made);
      if (existing === undefined) {
        throw new ApiError(
          "job_gone",
          `The Idempotency-Key made job ${made}, which was deleted or purged since`,
        );
      }
      if (
        existing.owner !== owner || existing.kind !== (body.kind ?? null) ||
        JSON.stringify(existing.metadata) !== JSON.stringify(metadata)
      ) {
        throw new ApiError(
          "idempotency_key_reused",
          `The Idempotency-Key made job ${made} with another kind, owner or metadata`,
        );
      }
      // The create this retries: its job as it is now.
      return c.json(
        { job: publicJob(existing), urls: jobUrls(c.req.url, made, c.get("https")) },
        201,
        { location: `/jobs/${encodeURIComponent(made)}`, "idempotent-replayed": "true" },
      );
    }
    const location = `/jobs/${encodeURIComponent(id)}`;
    deps.stats.jobsCreated++;
    const job = publicJob(created.job);
    hub.jobCreated(job);
    return c.json({ job, urls: jobUrls(c.req.url, id, c.get("https")) }, 201, { location });
  });

  app.get("/jobs", (c) => {
    const principal = requirePrincipal(c);
    const query = parseOr(listJobsQuery, c.req.query(), "invalid_query", "The query");
    if (query.cursor !== undefined && decodeCursor(query.cursor) === undefined) {
      throw new ApiError("invalid_query", "The cursor is not one this server made", [
        { path: "cursor", message: "Unknown cursor" },
      ]);
    }
    const limit = query.limit ?? 50;
    const page = store.listJobs({
      limit,
      ...(query.status === undefined ? {} : { status: query.status }),
      ...(query.kind === undefined ? {} : { kind: query.kind }),
      ...(query.owner === undefined ? {} : { owner: query.owner }),
      ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
      ...visibility(principal),
    });
    return c.json({
      jobs: page.jobs.filter((job) => canRead(principal, job)).map(listItem),
      next_cursor: page.next_cursor,
    });
  });

  app.get("/jobs/:id", async (c) => {
    const principal = requirePrincipal(c);
    const query = parseOr(getJobQuery, c.req.query(), "invalid_query", "The query");
    const id = c.req.param("id");
    let record = findJob(store, id);
    if (!canRead(principal, record)) throw new ApiError("forbidden", `No access to job ${id}`);
    let outcome = "current";
    if (query.wait === "terminal") {
      outcome = "terminal";
      if (!isTerminal(record.status)) {
        const timeoutMs = (query.timeout ?? DEFAULT_TERMINAL_WAIT_SECONDS) * 1000;
        const ended = await whileAdmitted(
          c,
          deps,
          principal,
          (signal) => waitForEvent(hub, id, timeoutMs, signal, (e) => e.terminal),
        );
        record = jobAfterWait(store, id, ended, "it to end");
        outcome = ended === "event" && isTerminal(record.status) ? "terminal" : ended;
      }
    }
    return c.json(publicJob(record), 200, {
      "x-watchers": String(hub.watchers(id) + deps.peers.remoteWatchers(id)),
      ...(query.wait === undefined ? {} : { "x-wait-result": outcome }),
    });
  });

  app.delete("/jobs/:id", async (c) => {
    const principal = requirePrincipal(c);
    const id = c.req.param("id");
    const record = findJob(store, id);
    if (!canWrite(principal, record)) {
      throw new ApiError("forbidden", `No write access to job ${id}`);
    }
    // What other isolates committed and this one has not delivered yet goes out first.
    hub.settle(id);
    // The job checked above, and no other: the write may wait for the lock meanwhile.
    const deleted = await writeSoon(
      store,
      () => store.deleteJob(id, Date.now(), record.created_at),
    );
    // Deleted meanwhile by another request, which told of it (or made again since).
    if (!deleted) throw new ApiError("job_gone", `Job ${id} was deleted meanwhile`);
    hub.jobDeleted(id, "job deleted", record);
    return c.json({ id, deleted: true });
  });
}
