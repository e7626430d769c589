/**
 * Validation and normalization of published events (DESIGN §2, built-in event types).
 *
 * Input is untrusted JSON; the output is an event whose `data` is ready to persist
 * (canonical status and level names, `percentage` added to progress).
 *
 * @module
 */
import { z } from "zod";
import { normalizeStatus, STATUS_WORDS } from "./status.ts";
import { fieldsExcept, storedText } from "./input.ts";

/** Event types with a schema and an effect on the job snapshot. */
export const BUILT_IN_TYPES = ["status", "progress", "log", "result", "error"] as const;

/**
 * Types used by session messages that are never persisted; a custom event may not take
 * one of these names, so a client can always tell the two apart.
 */
export const SESSION_TYPES: ReadonlySet<string> = new Set([
  "connection",
  "heartbeat",
  "ping",
  "pong",
  "subscribed",
  "unsubscribed",
  "created",
  "deleted",
  "snapshot",
]);

/** Log levels, in increasing severity. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;

/** Pattern of a custom event type. */
export const CUSTOM_TYPE_PATTERN = /^[a-z][a-z0-9_.:-]{0,63}$/;

/** An event accepted for publishing, before the store assigns its sequence. */
export interface NewEvent {
  type: string;
  data: Record<string, unknown>;
  /** `data` as JSON text, when it was serialized already (to check its size): stored as is. */
  json?: string;
}

/** One validation problem, with the path of the offending field. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** Outcome of validating one event. */
export type EventCheck = { ok: true; event: NewEvent } | { ok: false; issues: FieldIssue[] };

const jsonObject = z.record(z.string(), z.unknown());

const statusData = z.looseObject({
  status: z.string(),
  message: storedText().nullish(),
});

export const progressData = z.looseObject({
  progress: z.number().min(0).max(100).optional(),
  stage: storedText().nullish(),
  message: storedText().nullish(),
  current: z.number().min(0).optional(),
  total: z.number().positive().optional(),
  eta_seconds: z.number().min(0).nullish(),
  /** The name snapshots give the ETA, taken for `eta_seconds` when that is not sent. */
  estimated_time_remaining: z.number().min(0).nullish(),
}).refine((d) => d.progress !== undefined || (d.current !== undefined && d.total !== undefined), {
  message: "Either progress (0-100) or both current and total are required",
  path: ["progress"],
});

const LEVEL_ALIASES: Readonly<Record<string, typeof LOG_LEVELS[number]>> = {
  warn: "warning",
  err: "error",
  fatal: "error",
  critical: "error",
  trace: "debug",
};

const logData = z.looseObject({
  line: z.string(),
  level: z.string().optional(),
  source: z.string().nullish(),
});

const resultData = z.looseObject({ results: z.unknown() });

const errorData = z.looseObject({
  error: z.string().min(1),
  // Any letter case (`MEMORY_ERROR`), digits after the first character (`HTTP_503`,
  // `S3_ERROR`); kept in lower case.
  error_type: z.string().regex(
    /^[A-Za-z_][A-Za-z0-9_]*$/,
    "Expected letters, digits and underscores, not starting with a digit",
  ).optional(),
  details: z.unknown().optional(),
});

const envelopeInput = z.object({
  type: z.string(),
  data: jsonObject.optional(),
});

/**
 * The type and data of a well-formed `{type, data?}` (what {@link envelopeInput} accepts),
 * checked without copying the data: the schema's copy of every field was most of what
 * validating a custom event allocated. An event sent flat, `{type, ...fields}` with no
 * `data`, has its other fields as data.
 */
function plainEvent(input: unknown): NewEvent | undefined {
  if (!isObject(input)) return undefined;
  const { type, data } = input;
  if (typeof type !== "string") return undefined;
  if (data === undefined) return { type, data: fieldsExcept(input, ["type"]) };
  return isObject(data) ? { type, data } : undefined;
}

/** Fields of an event beside `type` and `data`, which would be lost. */
function strayFields(input: unknown): string[] {
  if (!isObject(input) || input.data === undefined) return [];
  return Object.keys(input).filter((key) => key !== "type" && key !== "data");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Formats a progress figure the way seeds show it: `45.5` becomes `"45.5%"`. */
export function formatPercentage(progress: number): string {
  return `${Number(progress.toFixed(2))}%`;
}

function issuesOf(error: z.ZodError, prefix: string): FieldIssue[] {
  return error.issues.map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter((p) => p !== "").join("."),
    message: issue.message,
  }));
}

/**
 * Why a progress event's `status` is refused, or `undefined` when it may stay: a progress
 * event never moves the status machine, so a `status` there that says anything but
 * `running` would be kept in its data while the job stayed as it was (a producer that
 * reports `processed` with its last progress would leave the job running for ever).
 */
function progressStatus(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const status = typeof value === "string" ? normalizeStatus(value) : undefined;
  if (status === "running") return undefined;
  const shown = JSON.stringify(value)?.slice(0, 80) ?? String(value);
  if (status === undefined) {
    return `A progress event does not set the job's status, and ${shown} is not one: ` +
      'a step of the work (such as "transcribing") goes in stage';
  }
  return `A progress event does not change the job's status: send ${JSON.stringify(status)} ` +
    "as a status event (POST /jobs/:id/complete, /jobs/:id/fail or /jobs/:id/cancel, or " +
    '{"type": "status", "data": {"status": …}} to /jobs/:id/events after this progress event)';
}

function fail(path: string, message: string): EventCheck {
  return { ok: false, issues: [{ path, message }] };
}

/**
 * Validates one `{type, data}` event and normalizes its data. The schemas only check:
 * what is kept is built from the data as sent, since a schema's copy of an object loses a
 * key named `__proto__` (assigning it sets the copy's prototype instead).
 *
 * @param input untrusted JSON value
 * @param path prefix for issue paths, such as `events.3`
 */
export function checkEvent(input: unknown, path = ""): EventCheck {
  const stray = strayFields(input);
  if (stray.length > 0) {
    return fail(
      [path, stray[0]!].filter((p) => p !== "").join("."),
      `Fields beside type and data would be lost (${
        stray.slice(0, 5).join(", ")
      }): put them in data, or send the event flat, with no data`,
    );
  }
  let outer = plainEvent(input);
  if (outer === undefined) {
    // Only a malformed event gets here: the schema says what is wrong with it.
    const parsed = envelopeInput.safeParse(input);
    if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error, path) };
    outer = { type: parsed.data.type, data: parsed.data.data ?? {} };
  }
  const { type, data } = outer;
  const at = (field: string) => [path, field].filter((p) => p !== "").join(".");
  switch (type) {
    case "status": {
      const parsed = statusData.safeParse(data);
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error, at("data")) };
      const status = normalizeStatus(parsed.data.status);
      if (status === undefined) {
        return fail(
          at("data.status"),
          `Unknown status: ${JSON.stringify(parsed.data.status).slice(0, 80)}; a job's status is ` +
            `one of ${STATUS_WORDS}, and a step of the work (such as "transcribing") goes in ` +
            "a progress event's stage",
        );
      }
      return { ok: true, event: { type, data: { ...data, status } } };
    }
    case "progress": {
      const parsed = progressData.safeParse(data);
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error, at("data")) };
      const stray = progressStatus(data.status);
      if (stray !== undefined) return fail(at("data.status"), stray);
      if (data.eta_seconds != null && data.estimated_time_remaining != null) {
        return fail(
          at("data.estimated_time_remaining"),
          "Given beside eta_seconds: send eta_seconds or estimated_time_remaining, not both",
        );
      }
      const d = parsed.data;
      const progress = d.progress ??
        Math.min(100, ((d.current ?? 0) / (d.total ?? 1)) * 100);
      const normalized: Record<string, unknown> = {
        ...data,
        progress,
        percentage: formatPercentage(progress),
      };
      // As in a status event, an alias (`in_progress`, `PROCESSING`) is kept as what it means.
      if (data.status != null) normalized.status = "running";
      if (d.eta_seconds == null && typeof d.estimated_time_remaining === "number") {
        normalized.eta_seconds = d.estimated_time_remaining;
      }
      return { ok: true, event: { type, data: normalized } };
    }
    case "log": {
      const parsed = logData.safeParse(data);
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error, at("data")) };
      const level = normalizeLevel(parsed.data.level ?? "info");
      if (level === undefined) {
        return fail(at("data.level"), `Unknown level; expected one of ${LOG_LEVELS.join(", ")}`);
      }
      return { ok: true, event: { type, data: { ...data, level } } };
    }
    case "result": {
      // One thing under both its names: one of them would be lost (as on /complete).
      if ("results" in data && "result" in data) {
        return fail(at("data.result"), "Given beside results: send result or results, not both");
      }
      const withAlias = "results" in data || !("result" in data)
        ? data
        : { ...data, results: data.result };
      const parsed = resultData.safeParse(withAlias);
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error, at("data")) };
      if (!("results" in withAlias)) return fail(at("data.results"), "Required");
      return { ok: true, event: { type, data: withAlias } };
    }
    case "error": {
      const parsed = errorData.safeParse(data);
      if (!parsed.success) return { ok: false, issues: issuesOf(parsed.error, at("data")) };
      return {
        ok: true,
        event: {
          type,
          data: { ...data, error_type: parsed.data.error_type?.toLowerCase() ?? "general" },
        },
      };
    }
    default: {
      if (!CUSTOM_TYPE_PATTERN.test(type)) {
        return fail(
          at("type"),
          "Expected a built-in type or a custom type matching ^[a-z][a-z0-9_.:-]{0,63}$",
        );
      }
      if (SESSION_TYPES.has(type)) {
        return fail(at("type"), `The type ${type} is reserved for session messages`);
      }
      return { ok: true, event: { type, data } };
    }
  }
}

/** Maps a log level (canonical, alias, any letter case) to its canonical form. */
export function normalizeLevel(input: string): typeof LOG_LEVELS[number] | undefined {
  const lower = input.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(lower)) {
    return lower as typeof LOG_LEVELS[number];
  }
  return LEVEL_ALIASES[lower];
}
