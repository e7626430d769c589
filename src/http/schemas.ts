/**
 * Zod schemas of every HTTP input (bodies and query strings), and the helper that turns
 * a failed parse into a 422 with the offending fields.
 *
 * @module
 */
import { z } from "zod";
import { JOB_STATUSES, normalizeStatus } from "../jobs/status.ts";
import { ApiError, type ErrorCode } from "./errors.ts";
import { storedText } from "../jobs/input.ts";

/** Pattern of a client-chosen job id (DESIGN §2). */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A job id in a path or body. */
export const jobId = z.string().regex(
  JOB_ID_PATTERN,
  "Expected 1-128 characters: letters, digits and . _ : - (not first)",
);

const jsonObject = z.record(z.string(), z.unknown());

/** `POST /jobs` body. */
export const createJobBody = z.strictObject({
  id: jobId.optional(),
  kind: storedText().min(1).max(128).optional(),
  metadata: jsonObject.optional(),
  owner: storedText().min(1).max(256).optional(),
});

const status = z.string().transform((value, ctx) => {
  const canonical = normalizeStatus(value);
  if (canonical === undefined) {
    ctx.addIssue({ code: "custom", message: `Expected one of ${JOB_STATUSES.join(", ")}` });
    return z.NEVER;
  }
  return canonical;
});

const intParam = (min: number, max: number) =>
  z.string().regex(/^\d+$/, "Expected a non-negative integer").transform(Number).pipe(
    z.number().min(min).max(max).int(),
  );

/** `GET /jobs` query. */
export const listJobsQuery = z.object({
  status: status.optional(),
  kind: z.string().min(1).optional(),
  owner: z.string().min(1).optional(),
  cursor: z.string().min(1).optional(),
  limit: intParam(1, 500).optional(),
});

/** Longest long-poll wait, in seconds: bounds how long a request holds a connection. */
export const MAX_WAIT_SECONDS = 60;

/** `GET /jobs/:id/events` query for a JSON page (long-poll). */
export const eventsPageQuery = z.object({
  // A page holds envelopes; `format` names the page itself, or a stream (chosen before this).
  format: z.enum(["json", "envelope"], {
    error: (issue) =>
      issue.input === "snapshot"
        ? "A page of events is JSON envelopes: format=json or envelope here; " +
          "format=snapshot needs a stream: ask for one with Accept: text/event-stream or " +
          "application/x-ndjson, or open a WebSocket"
        : "Expected json or envelope (a page of events), sse or ndjson (a stream), " +
          "or snapshot (with a stream)",
  }).optional(),
  since: intParam(0, Number.MAX_SAFE_INTEGER).optional(),
  limit: intParam(1, 1000).optional(),
  wait: intParam(0, MAX_WAIT_SECONDS).optional(),
});

/** `GET /jobs/:id` query. */
export const getJobQuery = z.object({
  wait: z.literal("terminal").optional(),
  timeout: intParam(0, 3600).optional(),
});

const flag = z.enum(["1", "0", "true", "false", "yes", "no", ""]).transform((v) =>
  v === "1" || v === "true" || v === "yes" || v === ""
);

/** Query of every stream (WebSocket, SSE, NDJSON). */
export const streamQuery = z.object({
  since: z.string().optional(),
  format: z.enum(["envelope", "snapshot", "ndjson", "sse", "json"]).optional(),
  close_on_finish: flag.optional(),
  /** WebSocket only: a message may carry several envelopes, one per line. */
  batch: flag.optional(),
  jobs: z.string().optional(),
  all: flag.optional(),
  kind: z.string().min(1).optional(),
  status: status.optional(),
});

/** The sequence a publish's first event should get (a retry is told by it). */
const expectedSequence = z.number().int().min(1).optional();

/** `POST /jobs/:id/events` body with a batch: `{events: [...]}`. */
export const publishBatchBody = z.object({
  events: z.array(z.unknown()).min(1, "Send at least one event"),
  expected_sequence: expectedSequence,
});

/** A shortcut's `expected_sequence`, beside the fields of the event it writes. */
export const expectedSequenceField = z.looseObject({
  expected_sequence: expectedSequence,
});

/** `POST /jobs/:id/events` body with one event: `{type, data}`. Data is checked per type elsewhere. */
export const publishOneBody = z.object({
  type: z.string(),
  data: z.unknown().optional(),
  expected_sequence: expectedSequence,
});

/** Either publish body, for the API description. */
export const publishBody = z.union([publishOneBody, publishBatchBody]);

/** `POST /jobs/:id/complete` body. */
export const completeBody = z.looseObject({
  result: z.unknown().optional(),
  /** The name the result event gives it. */
  results: z.unknown().optional(),
  message: z.string().optional(),
});

/** `POST /jobs/:id/fail` body. */
export const failBody = z.looseObject({
  error: z.string().min(1),
  error_type: z.string().optional(),
  details: z.unknown().optional(),
  message: z.string().optional(),
});

/** `POST /jobs/:id/{queue,start,cancel}` body. */
export const statusShortcutBody = z.looseObject({
  message: z.string().optional(),
  reason: z.string().optional(),
});

/** `POST /jobs/:id/log` body with several lines (one line is a plain log event's data). */
export const logLinesBody = z.looseObject({
  lines: z.array(z.union([z.string(), jsonObject])).min(1, "Send at least one line"),
  level: z.string().optional(),
  source: z.string().optional(),
});

/** Either log shortcut body, for the API description. */
export const logShortcutBody = z.union([logLinesBody, jsonObject]);

/** Idempotency-Key header value. */
export const idempotencyKey = z.string().min(1).max(255).regex(
  /^[\x21-\x7e]+$/,
  "Expected printable ASCII without spaces",
);

/** Issues of a failed parse, as `[{path, message}]`. */
export function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
}

/**
 * Parses `value`, or throws the catalogue error `code` (422) with each failing field.
 */
export function parseOr<T extends z.ZodType>(
  schema: T,
  value: unknown,
  code: ErrorCode = "validation_error",
  what = "The request",
): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = issuesOf(parsed.error);
  const first = issues[0];
  const summary = first === undefined
    ? ""
    : `: ${first.path === "" ? "" : `${first.path}: `}${first.message}`;
  throw new ApiError(code, `${what} is invalid${summary}`, issues);
}

/** `POST /auth/login`. */
export const loginBody = z.strictObject({
  username: z.string().min(1).max(128),
  password: z.string().min(1).max(1024),
  /** Also set the token as an HttpOnly cookie (the status page signs in this way). */
  cookie: z.boolean().optional(),
});

/** `POST /tickets`. */
export const ticketBody = z.strictObject({ job_id: z.string().min(1).max(128) });
