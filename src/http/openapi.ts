/**
 * The OpenAPI 3.1 description served at `/openapi.json`. Request schemas come from the
 * same zod schemas the routes validate with, so the document cannot drift from them.
 *
 * @module
 */
import { z } from "zod";
import {
  completeBody,
  createJobBody,
  failBody,
  loginBody,
  logShortcutBody,
  publishBody,
  statusShortcutBody,
  ticketBody,
} from "./schemas.ts";
import { ERRORS } from "./errors.ts";
import { JOB_STATUSES } from "../jobs/status.ts";
import { progressData } from "../jobs/events.ts";
import { TOKEN_COOKIE } from "../auth/authenticator.ts";

function schemaOf(schema: z.ZodType): unknown {
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
}

const json = (schema: unknown) => ({ "application/json": { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errors = (...codes: (keyof typeof ERRORS)[]) =>
  Object.fromEntries(
    [...new Set(codes.map((c) => ERRORS[c].status))].map((status) => [
      String(status),
      {
        description: codes.filter((c) => ERRORS[c].status === status).join(", "),
        content: json(ref("Error")),
      },
    ]),
  );

const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };
const q = (name: string, description: string, schema: unknown = { type: "string" }) => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});
/** A flag as the server reads it: `1`, `true`, `yes` or empty for yes. */
const FLAG = { type: "string", enum: ["1", "0", "true", "false", "yes", "no", ""] };
/** A status filter: a status or an alias, in any letter case. */
const STATUS_FILTER = {
  type: "string",
  description: `One of ${
    JOB_STATUSES.join(", ")
  }, or an alias (in_progress, processed, canceled…), any case`,
};
/** A whole number in a query string, from `min` to `max`. */
const integer = (min: number, max: number) => ({ type: "integer", minimum: min, maximum: max });
const streamParams = [
  q("since", "Last sequence seen (or job:seq pairs for several jobs)"),
  q(
    "format",
    "envelope (default) or snapshot: the message format; ndjson or sse choose the transport of an HTTP stream (as Accept does); json a page",
    { type: "string", enum: ["envelope", "snapshot", "ndjson", "sse", "json"] },
  ),
  q("close_on_finish", "Close (1000) after a terminal status", FLAG),
  q("token", "Access token, for clients that cannot set headers"),
];
const batchParam = q(
  "batch",
  "1: a message may carry several envelopes, one JSON text per line (split on \\n); a replay then takes a few messages instead of one per event",
  FLAG,
);
/** What a stream of several jobs takes besides. */
const manyParams = [
  q("jobs", "Comma-separated job ids (at most 100)"),
  q("all", "Every visible job (from now on; not with jobs)", FLAG),
  q("kind", "With all: only jobs of this kind"),
  q("status", "With all: only events after which the job has this status", STATUS_FILTER),
];

/** For routes anyone may call, whatever the server's auth. */
const open = { security: [] };

/** A shortcut's body: the event's fields, and the `expected_sequence` every publish takes. */
function shortcutBody(body: z.ZodType): Record<string, unknown> {
  const schema = schemaOf(body) as { properties?: Record<string, unknown> };
  return {
    ...schema,
    properties: {
      ...schema.properties,
      expected_sequence: {
        type: "integer",
        minimum: 1,
        description: "The sequence the first event must get (409 sequence_conflict otherwise)",
      },
    },
  };
}

const IDEMPOTENCY_KEY = {
  name: "Idempotency-Key",
  in: "header",
  description: "1-255 printable ASCII characters; a retry with the same key writes nothing again",
  schema: { type: "string", minLength: 1, maxLength: 255, pattern: "^[\\x21-\\x7e]+$" },
};

function shortcut(summary: string, body: z.ZodType, required = false) {
  return {
    post: {
      summary,
      parameters: [idParam, IDEMPOTENCY_KEY],
      requestBody: { required, content: json(shortcutBody(body)) },
      responses: {
        "201": { description: "Committed", content: json(ref("PublishResult")) },
        ...errors(
          "malformed_json",
          "validation_error",
          "idempotency_key_reused",
          "job_not_found",
          "job_finished",
          "invalid_transition",
          "sequence_conflict",
          "job_gone",
          "payload_too_large",
          "event_too_large",
          "unsupported_media_type",
        ),
      },
    },
  };
}

/** An OpenAPI operation, as far as {@link completed} reads and writes it. */
interface Operation extends Record<string, unknown> {
  operationId?: string;
  security?: Record<string, string[]>[];
  requestBody?: unknown;
  responses: Record<string, Record<string, unknown>>;
}

/** The document, as far as {@link completed} reads and writes it. */
interface Document extends Record<string, unknown> {
  paths: Record<string, Record<string, Operation>>;
  components: Record<string, Record<string, unknown>>;
}

const RETRY_AFTER = {
  "Retry-After": {
    description: "Seconds to wait before trying again",
    schema: { type: "integer" },
  },
};
const WATCHERS = {
  "X-Watchers": {
    description: "Streams and long-polls following the job by name, on every isolate",
    schema: { type: "integer" },
  },
};
const responseRef = (name: string) => ({ $ref: `#/components/responses/${name}` });

/** Responses many routes share, referenced from each. */
const SHARED_RESPONSES = {
  Unauthorized: {
    description: "unauthorized (no credential), invalid_token (bad, or revoked) or token_expired",
    headers: { "WWW-Authenticate": { schema: { type: "string" } } },
    content: json(ref("Error")),
  },
  Forbidden: {
    description: "forbidden (the token may not do this, to this job), or origin_not_allowed",
    content: json(ref("Error")),
  },
  UnsupportedMediaType: {
    description: "unsupported_media_type: a body that is not JSON, in UTF-8, uncompressed",
    content: json(ref("Error")),
  },
  TooMany: {
    description:
      "rate_limited (publishing faster than --max-publish-rate), or too_many_connections (streams per principal or address)",
    headers: RETRY_AFTER,
    content: json(ref("Error")),
  },
  Unavailable: {
    description:
      "unavailable: the database refused (full, locked past the wait, damaged, its file removed), the server is stopping, or it holds all the connections it may (overloaded)",
    headers: RETRY_AFTER,
    content: json(ref("Error")),
  },
  Other: {
    description:
      "Any route: 400 invalid_host, 403 origin_not_allowed or host_not_allowed (no auth, an unknown name), 405 method_not_allowed (with Allow), 500 internal_error",
    content: json(ref("Error")),
  },
};

/** The credentials every route but the open ones takes, any one of them. */
const SECURITY = [{ bearer: [] }, { query_token: [] }, { cookie: [] }];

/** Routes that open a stream or wait (long-poll), and count against connection limits. */
const WAITING = new Set(["/jobs/{id}/events", "/events", "/jobs/{id}"]);

/** `post /jobs/{id}/events` → `postJobsIdEvents`. */
function operationId(method: string, path: string): string {
  return method +
    path.split(/[/{}._-]+/).filter((part) => part !== "").map((part) =>
      part[0]!.toUpperCase() + part.slice(1)
    ).join("");
}

/**
 * Adds what the routes share: their operation ids, the refusals any of them may answer
 * (credentials, limits, the database, media types), and the headers of their answers.
 */
function completed(doc: Document): Document {
  doc.components.responses = SHARED_RESPONSES;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      operation.operationId ??= operationId(method, path);
      // A one-job stream also takes a single-use ticket instead of a token.
      if (method === "get" && (path === "/jobs/{id}/events" || path === "/ws/jobs/{id}")) {
        operation.security ??= [...SECURITY, { ticket: [] }];
      }
      const responses = operation.responses;
      // Refused over HTTP: not a route whose credential is optional (it answers 200 either
      // way), nor a WebSocket, which is refused by its close (1008) after the upgrade.
      const optional = operation.security?.some((need) => Object.keys(need).length === 0) ??
        false;
      // No credential at all (`security: []`): never a 401, though a foreign Origin is still
      // refused with 403.
      const open = operation.security?.length === 0;
      const websocket = path.startsWith("/ws");
      if (!optional && !websocket) {
        if (!open) responses["401"] ??= responseRef("Unauthorized");
        responses["403"] ??= responseRef("Forbidden");
      }
      if (operation.requestBody !== undefined) {
        responses["415"] ??= responseRef("UnsupportedMediaType");
      }
      const publishes = method === "post" &&
        (path === "/jobs" || /^\/jobs\/\{id\}\/\w+$/.test(path));
      if (publishes || (method === "get" && WAITING.has(path))) {
        responses["429"] ??= responseRef("TooMany");
        responses["503"] ??= responseRef("Unavailable");
      }
      if (method === "delete") responses["503"] ??= responseRef("Unavailable");
      const upgrade = responses["426"];
      if (upgrade !== undefined) {
        upgrade.headers = {
          Upgrade: { schema: { type: "string", enum: ["websocket"] } },
          "Sec-WebSocket-Version": { schema: { type: "string", enum: ["13"] } },
        };
      }
      if (publishes && path !== "/jobs") {
        responses["201"]!.headers = {
          ...WATCHERS,
          "Idempotent-Replayed": {
            description: "true: a retry of a stored request, answered as it was",
            schema: { type: "string", enum: ["true"] },
          },
        };
      }
      responses.default ??= responseRef("Other");
    }
  }
  return doc;
}

/** Builds the document. */
export function openApiDocument(): Record<string, unknown> {
  return completed(described());
}

/** The routes as written out here; {@link completed} adds what every route shares. */
function described(): Document {
  return {
    openapi: "3.1.0",
    servers: [{ url: "/", description: "This server" }],
    info: {
      title: "jobwire",
      version: "1",
      description:
        "Live, replayable progress streams for long-running jobs. Every message on every transport is an envelope {type, job_id, sequence, timestamp, data}.",
    },
    paths: {
      "/jobs": {
        post: {
          summary: "Create a job",
          parameters: [{
            ...IDEMPOTENCY_KEY,
            description: "Without an id: a retry with the key (and the same token sub) answers " +
              "the job it made (Idempotent-Replayed: true), or 410 if that job is gone",
          }],
          requestBody: { required: false, content: json(schemaOf(createJobBody)) },
          responses: {
            "201": {
              description: "Created (or, for a retry with its Idempotency-Key, made before)",
              headers: {
                Location: { description: "/jobs/{id}", schema: { type: "string" } },
                "Idempotent-Replayed": {
                  description: "true when a retry was answered with the job it made",
                  schema: { type: "string" },
                },
              },
              content: json(ref("Created")),
            },
            ...errors(
              "malformed_json",
              "validation_error",
              "job_exists",
              "job_gone",
              "idempotency_key_reused",
              "payload_too_large",
              "forbidden",
            ),
          },
        },
        get: {
          summary: "List visible jobs, newest first",
          parameters: [
            q("status", "Filter by status", STATUS_FILTER),
            q("kind", "Filter by kind"),
            q("owner", "Filter by owner"),
            q("cursor", "next_cursor of the previous page"),
            q("limit", "Page size (default 50)", integer(1, 500)),
          ],
          responses: {
            "200": { description: "A page of jobs", content: json(ref("JobPage")) },
            ...errors("invalid_query"),
          },
        },
      },
      "/jobs/{id}": {
        get: {
          summary: "A job's snapshot; wait=terminal holds the request until it ends",
          parameters: [
            idParam,
            q("wait", "terminal", { type: "string", enum: ["terminal"] }),
            q("timeout", "Seconds to wait (default 60)", integer(0, 3600)),
          ],
          responses: {
            "200": {
              description: "Snapshot",
              headers: {
                ...WATCHERS,
                "X-Wait-Result": {
                  description: "With wait=terminal: whether the job ended, or the wait timed out",
                  schema: { type: "string", enum: ["terminal", "timeout"] },
                },
              },
              content: json(ref("Job")),
            },
            ...errors("job_not_found", "job_gone", "invalid_query"),
          },
        },
        delete: {
          summary: "Delete a job and its events",
          parameters: [idParam],
          responses: {
            "200": {
              description: "Deleted",
              content: json({
                type: "object",
                properties: { id: { type: "string" }, deleted: { type: "boolean", enum: [true] } },
                required: ["id", "deleted"],
              }),
            },
            ...errors("job_not_found", "job_gone"),
          },
        },
      },
      "/jobs/{id}/events": {
        post: {
          summary: "Publish one event ({type, data}) or a batch ({events: [...]}) atomically",
          parameters: [idParam, IDEMPOTENCY_KEY],
          requestBody: { required: true, content: json(schemaOf(publishBody)) },
          responses: {
            "201": { description: "Committed", content: json(ref("PublishResult")) },
            ...errors(
              "malformed_json",
              "validation_error",
              "job_not_found",
              "job_finished",
              "invalid_transition",
              "sequence_conflict",
              "idempotency_key_reused",
              "job_gone",
              "payload_too_large",
              "event_too_large",
              "unsupported_media_type",
            ),
          },
        },
        get: {
          summary:
            "Events: SSE (Accept: text/event-stream), NDJSON (Accept: application/x-ndjson or format=ndjson), else a JSON page with optional long-poll",
          parameters: [
            idParam,
            ...streamParams,
            q("limit", "Page size (default 100)", integer(1, 1000)),
            q("wait", "Long-poll: seconds to wait for a new event", integer(0, 60)),
            {
              name: "Last-Event-ID",
              in: "header",
              description: "The last SSE id seen (wins over since)",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": {
              description: "A stream or a page",
              headers: {
                ...WATCHERS,
                Vary: { description: "Accept: it chooses the answer", schema: { type: "string" } },
              },
              content: {
                "text/event-stream": {},
                "application/x-ndjson": {},
                "application/json": { schema: ref("EventPage") },
              },
            },
            "204": { description: "An EventSource reconnecting after the end (close_on_finish)" },
            ...errors("job_not_found", "job_gone", "invalid_query", "not_acceptable"),
          },
        },
      },
      "/jobs/{id}/queue": shortcut("Mark queued", statusShortcutBody),
      "/jobs/{id}/start": shortcut("Mark running", statusShortcutBody),
      "/jobs/{id}/progress": shortcut(
        "Report progress: progress 0-100, or current and total",
        progressData,
        true,
      ),
      "/jobs/{id}/log": shortcut(
        "Append a log line ({line, level}) or lines ({lines: [...]})",
        logShortcutBody,
      ),
      "/jobs/{id}/complete": shortcut("Write the result and complete, atomically", completeBody),
      "/jobs/{id}/fail": shortcut("Record the error and fail, atomically", failBody, true),
      "/jobs/{id}/cancel": shortcut("Cancel", statusShortcutBody),
      "/ws/jobs/{id}": {
        get: {
          summary:
            "WebSocket for one job: connection, replay, live events, heartbeats. Client messages: ping, pong, subscribe, unsubscribe. Close 4004 for an unknown job.",
          parameters: [
            idParam,
            ...streamParams,
            batchParam,
          ],
          responses: {
            "101": { description: "Switching protocols" },
            ...errors("upgrade_required", "invalid_upgrade"),
          },
        },
      },
      "/ws": {
        get: {
          summary: "WebSocket for many jobs: jobs=a,b or all=1 (filters kind, status)",
          parameters: [...manyParams, ...streamParams, batchParam],
          responses: {
            "101": { description: "Switching protocols" },
            ...errors("upgrade_required", "invalid_upgrade"),
          },
        },
      },
      "/events": {
        get: {
          summary: "SSE (or NDJSON) for many jobs: jobs=a,b or all=1",
          parameters: [
            ...manyParams,
            ...streamParams,
            {
              name: "Last-Event-ID",
              in: "header",
              description: "The last SSE id seen: one sequence per named job, in order (3,1)",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": {
              description: "A stream",
              content: { "text/event-stream": {}, "application/x-ndjson": {} },
            },
            "204": { description: "An EventSource reconnecting after every job's end" },
            ...errors("job_not_found", "job_gone", "invalid_query", "forbidden"),
          },
        },
      },
      "/auth/login": {
        post: {
          summary: "Sign in with a user's password (users from main.ts user add)",
          ...open,
          requestBody: { required: true, content: json(schemaOf(loginBody)) },
          responses: {
            "200": {
              description: "A token; with cookie: true also set as the HttpOnly cookie",
              content: json(ref("Token")),
            },
            ...errors(
              "auth_disabled",
              "malformed_json",
              "validation_error",
              "invalid_credentials",
              "rate_limited",
            ),
          },
        },
      },
      "/auth/session": {
        get: {
          summary: "Whether auth is on and who the caller is (always 200)",
          // Open, and uses the caller's credential when there is one.
          security: [{}, { bearer: [] }, { query_token: [] }, { cookie: [] }],
          responses: {
            "200": { description: "The caller's session", content: json(ref("Session")) },
          },
        },
      },
      "/auth/cookie": {
        post: {
          summary: "Keep the bearer token of this request as the status page's HttpOnly cookie",
          security: [{ bearer: [] }],
          responses: {
            "200": {
              description: "The cookie is set",
              headers: { "Set-Cookie": { schema: { type: "string" } } },
              content: json({
                type: "object",
                properties: {
                  signed_in: { type: "boolean" },
                  sub: { type: ["string", "null"] },
                  expires_at: { type: ["string", "null"], format: "date-time" },
                },
              }),
            },
            ...errors("auth_disabled", "validation_error", "unauthorized"),
          },
        },
      },
      "/auth/logout": {
        post: {
          summary: "Clear the cookie and revoke the caller's sign-in token",
          security: [{}, { bearer: [] }, { query_token: [] }, { cookie: [] }],
          responses: {
            "200": {
              description: "Signed out",
              headers: { "Set-Cookie": { schema: { type: "string" } } },
              content: json({
                type: "object",
                properties: { signed_out: { type: "boolean" }, revoked: { type: "boolean" } },
              }),
            },
          },
        },
      },
      "/tickets": {
        post: {
          summary: "A single-use ticket (about 30 s) for one job's stream, bound to the Origin",
          requestBody: { required: true, content: json(schemaOf(ticketBody)) },
          responses: {
            "201": { description: "The ticket", content: json(ref("Ticket")) },
            ...errors(
              "auth_disabled",
              "malformed_json",
              "validation_error",
              "unauthorized",
              "forbidden",
              "job_not_found",
              "job_gone",
            ),
          },
        },
      },
      "/stats": {
        get: {
          summary: "Connections, jobs, rates, buffered events (the admin scope)",
          responses: {
            "200": { description: "Stats", content: json({ type: "object" }) },
            ...errors("forbidden"),
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus text",
          ...open,
          responses: {
            "200": {
              description: "Metrics",
              content: { "text/plain; version=0.0.4": { schema: { type: "string" } } },
            },
          },
        },
      },
      "/healthz": {
        get: {
          summary: "Liveness: the database answers and failed no request in the last minute",
          ...open,
          responses: {
            "200": { description: "OK", content: json(ref("Health")) },
            ...errors("unavailable"),
          },
        },
      },
      "/health": {
        get: {
          summary: "Liveness, answering `healthy` (as hand-written servers' health checks do)",
          ...open,
          responses: {
            "200": { description: "Healthy", content: json(ref("Health")) },
            ...errors("unavailable"),
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          ...open,
          responses: { "200": { description: "OpenAPI 3.1", content: json({ type: "object" }) } },
        },
      },
      "/": {
        get: {
          summary: "The status page",
          ...open,
          responses: {
            "200": {
              description: "The page",
              content: { "text/html": { schema: { type: "string" } } },
            },
          },
        },
      },
    },
    security: SECURITY,
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        query_token: {
          type: "apiKey",
          in: "query",
          name: "token",
          description: "For clients that cannot set headers (EventSource, WebSocket)",
        },
        cookie: {
          type: "apiKey",
          in: "cookie",
          name: TOKEN_COOKIE,
          description:
            "Set by POST /auth/login with cookie: true, or POST /auth/cookie; taken only on requests of the server's own origin",
        },
        ticket: {
          type: "apiKey",
          in: "query",
          name: "ticket",
          description: "A single-use ticket from POST /tickets, for one job's stream",
        },
      },
      schemas: {
        Error: {
          type: "object",
          properties: {
            error: {
              type: "object",
              properties: {
                code: { type: "string", enum: Object.keys(ERRORS) },
                message: { type: "string" },
                details: {},
              },
              required: ["code", "message"],
            },
          },
          required: ["error"],
        },
        Envelope: {
          type: "object",
          properties: {
            type: { type: "string" },
            job_id: { type: ["string", "null"] },
            sequence: { type: ["integer", "null"] },
            timestamp: { type: "string", format: "date-time" },
            data: { type: "object" },
          },
          required: ["type", "job_id", "sequence", "timestamp", "data"],
        },
        Job: {
          type: "object",
          properties: {
            id: { type: "string" },
            kind: { type: ["string", "null"] },
            owner: { type: ["string", "null"] },
            status: { type: "string", enum: [...JOB_STATUSES] },
            progress: { type: "number" },
            stage: { type: ["string", "null"] },
            message: { type: ["string", "null"] },
            eta_seconds: { type: ["number", "null"] },
            created_at: { type: "string" },
            queued_at: { type: ["string", "null"] },
            started_at: { type: ["string", "null"] },
            updated_at: { type: "string" },
            completed_at: { type: ["string", "null"] },
            result: {},
            error: { type: ["object", "null"] },
            metadata: { type: "object" },
            last_sequence: { type: "integer" },
            first_sequence: { type: "integer" },
            stalled: { type: "boolean" },
            has_result: { type: "boolean" },
          },
        },
        Created: {
          type: "object",
          properties: {
            job: ref("Job"),
            urls: { type: "object", additionalProperties: { type: "string" } },
          },
        },
        JobPage: {
          type: "object",
          properties: {
            jobs: { type: "array", items: ref("Job") },
            next_cursor: { type: ["string", "null"] },
          },
        },
        EventPage: {
          type: "object",
          properties: {
            job_id: { type: "string" },
            events: { type: "array", items: ref("Envelope") },
            last_sequence: { type: "integer" },
            next_since: { type: "integer" },
            first_available: { type: "integer" },
            truncated: { type: "boolean" },
            has_more: { type: "boolean" },
            status: { type: "string" },
          },
        },
        Token: {
          type: "object",
          properties: {
            access_token: { type: "string" },
            token_type: { type: "string", enum: ["bearer"] },
            expires_in: { type: "integer" },
            scope: { type: "string" },
          },
          required: ["access_token", "token_type", "expires_in"],
        },
        Session: {
          type: "object",
          properties: {
            auth: { type: "boolean" },
            signed_in: { type: "boolean" },
            sub: { type: ["string", "null"] },
            scopes: { type: "array", items: { type: "string" } },
            expires_at: { type: ["string", "null"] },
            failure: {},
          },
        },
        Health: {
          type: "object",
          properties: {
            status: { type: "string", enum: ["ok", "healthy"] },
            uptime_seconds: { type: "integer" },
            isolates: { type: "integer" },
            instance: { type: "string" },
          },
          required: ["status"],
        },
        Ticket: {
          type: "object",
          properties: {
            ticket: { type: "string" },
            job_id: { type: "string" },
            expires_in: { type: "integer" },
          },
          required: ["ticket", "job_id", "expires_in"],
        },
        PublishResult: {
          type: "object",
          properties: {
            job_id: { type: "string" },
            sequences: { type: "array", items: { type: "integer" } },
            last_sequence: { type: "integer" },
            status: { type: "string" },
            watchers: { type: "integer" },
            replayed: { type: "boolean" },
          },
        },
      },
    },
  };
}
