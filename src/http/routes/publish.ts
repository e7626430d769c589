/**
 * Publishing: one event or a batch, and the lifecycle shortcuts. Every event is
 * validated before anything is written; the reply comes after the commit.
 *
 * @module
 */
import type { Context } from "hono";
import type { App, AppDeps, AppEnv } from "../app.ts";
import { ApiError } from "../errors.ts";
import { readJson } from "../body.ts";
import {
  completeBody,
  expectedSequenceField,
  failBody,
  idempotencyKey,
  logLinesBody,
  parseOr,
  publishBatchBody,
  publishOneBody,
  statusShortcutBody,
} from "../schemas.ts";
import { checkEvent, type FieldIssue, type NewEvent } from "../../jobs/events.ts";
import { fieldsExcept, sizeOver } from "../../jobs/input.ts";
import { isTerminal, type JobStatus } from "../../jobs/status.ts";
import type { AppendOutcome } from "../../store/event_store.ts";
import { canWrite } from "../../auth/principal.ts";
import { logError } from "../../log.ts";
import { JOB_ID_PATTERN } from "../schemas.ts";
import { principalKey, requirePrincipal } from "../access.ts";
import { isStorageError, noteStorageFault, storageReason } from "../storage_fault.ts";

/**
 * How a shortcut's events were made from its body, so that a refusal names the field the
 * caller sent: `body` (the body's fields are the events' data), or `lines` (`/log`'s lines).
 */
type Shortcut = "body" | "lines";

/** An event's field path as the body of `shortcut` has it (`events.1.data.x` → `x`). */
function bodyPath(path: string, shortcut: Shortcut | undefined): string {
  if (shortcut === "body") return path.replace(/^(events\.\d+\.)?data(\.|$)/, "");
  if (shortcut === "lines") {
    return path.replace(/^events\.(\d+)\.data/, "lines.$1").replace(/^data/, "lines.0");
  }
  return path;
}

/** The 422 of an event refused for `issues`, the first of them named in its message. */
function invalidEvent(issues: readonly FieldIssue[]): ApiError {
  const first = issues[0]!;
  return new ApiError(
    "validation_error",
    `The event is invalid: ${first.path === "" ? "" : `${first.path}: `}${first.message}`,
    [...issues],
  );
}

/** Validates raw events; throws 422 with every failing field, or 413 for a large one. */
function validateEvents(
  raw: readonly unknown[],
  maxEventBytes: number,
  shortcut?: Shortcut,
): NewEvent[] {
  const events: NewEvent[] = [];
  const issues: FieldIssue[] = [];
  raw.forEach((input, i) => {
    const checked = checkEvent(input, raw.length === 1 ? "" : `events.${i}`);
    if (checked.ok) events.push(checked.event);
    else {
      for (const issue of checked.issues) {
        issues.push({ ...issue, path: bodyPath(issue.path, shortcut) });
      }
    }
  });
  if (issues.length > 0) throw invalidEvent(issues);
  // Refused as a whole either way; said as what it is, not as a job that has already ended.
  const end = events.findIndex((e) =>
    e.type === "status" && isTerminal(e.data.status as JobStatus)
  );
  if (end !== -1 && end < events.length - 1) {
    throw new ApiError(
      "validation_error",
      `The event is invalid: events.${end + 1}: Comes after events.${end}, which ends the job (${
        String(events[end]!.data.status)
      }); a status that ends a job must be the last event of its batch`,
      [{
        path: `events.${end + 1}`,
        message: `Comes after events.${end}, which ends the job`,
      }],
    );
  }
  events.forEach((event, i) => {
    event.json = JSON.stringify(event.data);
    const size = sizeOver(event.json, maxEventBytes);
    if (size !== undefined) {
      throw new ApiError(
        "event_too_large",
        `Event ${i} has at least ${size} bytes of data; the limit is ${maxEventBytes}`,
      );
    }
  });
  return events;
}

/** The fields of a JSON object body other than `known` (none when it is not an object). */
function otherFields(body: unknown, known: readonly string[]): Record<string, unknown> {
  if (typeof body !== "object" || body === null) return {};
  return fieldsExcept(body as Record<string, unknown>, known);
}

/**
 * A publish request's own field, `expected_sequence`, taken out of a body whose other
 * fields are the event's (a shortcut's body): a retry of any publish route is then told
 * as it is on `POST /jobs/:id/events`.
 */
function withoutExpected(raw: unknown): { fields: unknown; expected?: number } {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { fields: raw };
  if (!("expected_sequence" in raw)) return { fields: raw };
  const { expected_sequence } = parseOr(expectedSequenceField, raw);
  return {
    fields: fieldsExcept(raw as Record<string, unknown>, ["expected_sequence"]),
    ...(expected_sequence === undefined ? {} : { expected: expected_sequence }),
  };
}

/** Refuses a body that gives one thing twice under two names (`line` and `lines`). */
function refuseBoth(raw: unknown, a: string, b: string): void {
  if (typeof raw === "object" && raw !== null && a in raw && b in raw) {
    throw new ApiError("validation_error", `Send ${a} or ${b}, not both`, [
      { path: b, message: `Given beside ${a}: one of them would be lost` },
    ]);
  }
}

/** Maps a refused append to its API error. */
function refusal(outcome: Extract<AppendOutcome, { ok: false }>): ApiError {
  return new ApiError(outcome.code, outcome.message, outcome.details);
}

export function registerPublishRoutes(app: App, deps: AppDeps): void {
  const { config, hub } = deps;

  /** Checks access, commits `events` atomically, and answers 201 with their sequences. */
  async function publish(
    c: Context<AppEnv>,
    rawEvents: readonly unknown[],
    expectedSequence?: number,
    shortcut?: Shortcut,
  ): Promise<Response> {
    const id = c.req.param("id")!;
    const principal = requirePrincipal(c);
    if (!JOB_ID_PATTERN.test(id)) throw new ApiError("job_not_found", `No job ${id}`);
    if (rawEvents.length > config.maxBatch) {
      throw new ApiError(
        "payload_too_large",
        `A request may carry at most ${config.maxBatch} events; this one has ${rawEvents.length}`,
      );
    }
    const events = validateEvents(rawEvents, config.maxEventBytes, shortcut);
    const header = c.req.header("idempotency-key");
    const key = header === undefined
      ? undefined
      : parseOr(idempotencyKey, header, "validation_error", "The Idempotency-Key header");
    // A retry of a stored request stores nothing: it is answered whatever the rate, and what
    // it was charged is given back once it turns out a replay.
    const rateKey = principalKey(principal, c, config);
    const wait = deps.visitors.allowPublish(rateKey, events.length);
    const charged = wait === 0;
    if (!charged && (key === undefined || !deps.store.knowsIdempotencyKey(id, key))) {
      throw new ApiError(
        "rate_limited",
        `Publishing faster than ${config.maxPublishRate} events per second: retry in ${wait} s`,
        undefined,
        { "retry-after": String(wait) },
      );
    }
    // Counted as the commit begins: watchers the events end (a long-poll answered, a stream
    // closed on the job's end) were reached too, and are gone by the time it is over.
    const watchers = hub.watchers(id) + deps.peers.remoteWatchers(id);
    let outcome: AppendOutcome;
    try {
      // Committed on this isolate, whichever it is: isolates take turns at SQLite's write lock.
      hub.prepare(id);
      outcome = await deps.committer.append({
        jobId: id,
        events,
        // Checked inside the transaction against the job as it stands: no separate read.
        authorize: (job) => canWrite(principal, job),
        ...(key === undefined ? {} : { idempotencyKey: key }),
        ...(expectedSequence === undefined ? {} : { expectedSequence }),
      });
    } catch (error) {
      if (charged) deps.visitors.refundPublish(rateKey, events.length);
      if (deps.sessions.stopping) {
        // The store closed under it: the server is stopping, which is no fault to log.
        throw new ApiError(
          "unavailable",
          "The server is shutting down: nothing was written; retry",
          undefined,
          { "retry-after": "1" },
        );
      }
      // Not the database's refusal (a fault of the code): the 500 it is, with its log line.
      if (!isStorageError(error)) throw error;
      logError("commit failed", error, { job: id });
      noteStorageFault(deps, error);
      throw new ApiError(
        "unavailable",
        `The event store could not commit (${storageReason(error)}): nothing was written; ` +
          "retry later",
        undefined,
        {
          "retry-after": "1",
        },
      );
    }
    // Nothing stored (a refusal) or nothing new (a replay): nothing is charged.
    if (charged && (!outcome.ok || outcome.replayed)) {
      deps.visitors.refundPublish(rateKey, events.length);
    }
    if (!outcome.ok) throw refusal(outcome);
    return c.json(
      {
        job_id: id,
        sequences: outcome.sequences,
        last_sequence: outcome.job.last_sequence,
        status: outcome.job.status,
        watchers,
        replayed: outcome.replayed,
      },
      201,
      {
        "x-watchers": String(watchers),
        ...(outcome.replayed ? { "idempotent-replayed": "true" } : {}),
      },
    );
  }

  const body = async (c: Context<AppEnv>) => (await readJson(c.req.raw, config.maxBodyBytes)) ?? {};

  app.post("/jobs/:id/events", async (c) => {
    const raw = await body(c);
    const object = typeof raw === "object" && raw !== null && !Array.isArray(raw);
    if (!object || Object.keys(raw).length === 0) {
      // An empty body, null or {} is told the same as an array or a string.
      throw new ApiError(
        "validation_error",
        "Send a JSON object: {type, data} or {events: [...]}",
        [
          { path: "", message: object ? "Expected an event or events" : "Expected an object" },
        ],
      );
    }
    if ("events" in raw) {
      const stray = Object.keys(raw).filter((k) => k !== "events" && k !== "expected_sequence");
      if (stray.length > 0) {
        throw new ApiError(
          "validation_error",
          `A batch is {events, expected_sequence?}: ${stray.join(", ")} would be lost`,
          stray.map((path) => ({ path, message: "Not a field of a batch: put it in an event" })),
        );
      }
      const batch = parseOr(publishBatchBody, raw);
      return publish(c, batch.events, batch.expected_sequence);
    }
    const one = parseOr(publishOneBody, raw);
    // The event as sent (a flat one keeps its fields), without the request's own field.
    const { expected_sequence: _, ...event } = raw as Record<string, unknown>;
    return publish(c, [event], one.expected_sequence);
  });

  const statusShortcut = (status: string) => async (c: Context<AppEnv>) => {
    const { fields: raw, expected } = withoutExpected(await body(c));
    const input = parseOr(statusShortcutBody, raw);
    const message = input.message ?? input.reason;
    const data = otherFields(raw, ["message", "reason", "status"]);
    data.status = status;
    if (message !== undefined) data.message = message;
    return publish(c, [{ type: "status", data }], expected, "body");
  };
  app.post("/jobs/:id/queue", statusShortcut("queued"));
  app.post("/jobs/:id/start", statusShortcut("running"));
  app.post("/jobs/:id/cancel", statusShortcut("cancelled"));

  app.post("/jobs/:id/progress", async (c) => {
    const { fields, expected } = withoutExpected(await body(c));
    return publish(c, [{ type: "progress", data: fields }], expected, "body");
  });

  app.post("/jobs/:id/log", async (c) => {
    const { fields: raw, expected } = withoutExpected(await body(c));
    if (typeof raw !== "object" || raw === null || !("lines" in raw)) {
      return publish(c, [{ type: "log", data: raw }], expected, "body");
    }
    refuseBoth(raw, "line", "lines");
    const input = parseOr(logLinesBody, raw);
    const defaults: Record<string, unknown> = {};
    if (input.level !== undefined) defaults.level = input.level;
    if (input.source !== undefined) defaults.source = input.source;
    // A level or source given once for every line is refused once, under its own name.
    const probe = checkEvent({ type: "log", data: { line: "x", ...defaults } });
    if (!probe.ok) {
      throw invalidEvent(
        probe.issues.map((issue) => ({ ...issue, path: bodyPath(issue.path, "body") })),
      );
    }
    // The lines as sent: the schema's copy of an object would lose a key named `__proto__`.
    const lines = (raw as { lines: (string | Record<string, unknown>)[] }).lines;
    return publish(
      c,
      lines.map((line) => ({
        type: "log",
        data: typeof line === "string" ? { ...defaults, line } : { ...defaults, ...line },
      })),
      expected,
      "lines",
    );
  });

  // Fields a shortcut does not know go with the event it writes (the status event of
  // `complete`, the error event of `fail`), as they would in that event's data.
  app.post("/jobs/:id/complete", async (c) => {
    const { fields: raw, expected } = withoutExpected(await body(c));
    refuseBoth(raw, "result", "results");
    const input = parseOr(completeBody, raw);
    const events: unknown[] = [];
    // `results`, as the result event names it, or `result`.
    const result = "results" in input ? input.results : input.result;
    if ("result" in input || "results" in input) {
      events.push({ type: "result", data: { results: result ?? null } });
    }
    const status = otherFields(raw, ["result", "results", "message", "status"]);
    status.status = "completed";
    if (input.message !== undefined) status.message = input.message;
    events.push({ type: "status", data: status });
    return publish(c, events, expected, "body");
  });

  app.post("/jobs/:id/fail", async (c) => {
    const { fields: raw, expected } = withoutExpected(await body(c));
    const input = parseOr(failBody, raw);
    const error = otherFields(raw, ["message"]);
    return publish(
      c,
      [
        { type: "error", data: error },
        { type: "status", data: { status: "failed", message: input.message ?? input.error } },
      ],
      expected,
      "body",
    );
  });
}
