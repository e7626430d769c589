/**
 * The catalogue of API errors: each stable code has one HTTP status and a default
 * message. Anything thrown that is not an {@link ApiError} becomes a generic 500 that is
 * logged with its context and never echoed to the client.
 *
 * @module
 */

/** Every error code the API answers with, its status and default message. */
export const ERRORS = {
  malformed_json: { status: 400, message: "The request body is not valid JSON" },
  invalid_query: { status: 422, message: "A query parameter is invalid" },
  validation_error: { status: 422, message: "The request does not match the schema" },
  auth_disabled: { status: 400, message: "Authentication is off on this server (--no-auth)" },
  unauthorized: { status: 401, message: "Authentication required" },
  invalid_token: { status: 401, message: "The token is invalid" },
  token_expired: { status: 401, message: "The token has expired" },
  invalid_credentials: { status: 401, message: "Unknown user or wrong password" },
  forbidden: { status: 403, message: "Not allowed" },
  origin_not_allowed: {
    status: 403,
    message: "This Origin may not use the API (see --allowed-origins)",
  },
  invalid_host: {
    status: 400,
    message: "The Host header is not a host name or address with an optional port",
  },
  host_not_allowed: {
    status: 403,
    message: "This server without authentication does not answer to this host name " +
      "(see --allowed-hosts)",
  },
  not_found: { status: 404, message: "No such route" },
  job_not_found: { status: 404, message: "No such job" },
  method_not_allowed: { status: 405, message: "Method not allowed on this route" },
  not_acceptable: { status: 406, message: "No representation matches the Accept header" },
  job_exists: { status: 409, message: "A job with this id already exists" },
  job_finished: { status: 409, message: "The job has finished: it accepts no more events" },
  invalid_transition: { status: 409, message: "The job cannot move to that status" },
  sequence_conflict: { status: 409, message: "expected_sequence does not match the job" },
  idempotency_key_reused: {
    status: 422,
    message: "The Idempotency-Key was used for a request with other events",
  },
  job_gone: { status: 410, message: "The job was deleted or purged" },
  upgrade_required: { status: 426, message: "Connect with a WebSocket upgrade" },
  invalid_upgrade: { status: 400, message: "The WebSocket handshake is incomplete" },
  payload_too_large: { status: 413, message: "The request body is too large" },
  event_too_large: { status: 413, message: "An event is too large" },
  unsupported_media_type: { status: 415, message: "Send JSON (Content-Type: application/json)" },
  rate_limited: { status: 429, message: "Too many requests" },
  too_many_connections: { status: 429, message: "Too many open streams" },
  internal_error: { status: 500, message: "Internal server error" },
  unsupported_transfer_encoding: {
    status: 501,
    message: "The body's Transfer-Encoding is not one this server reads (send it chunked or plain)",
  },
  unavailable: { status: 503, message: "The server cannot take this request now" },
  overloaded: { status: 503, message: "The server has too many open streams" },
} as const;

/** A stable error code. */
export type ErrorCode = keyof typeof ERRORS;

/** An error the API answers with its catalogue status and the JSON error shape. */
export class ApiError extends Error {
  override name = "ApiError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    details?: unknown,
    headers: Record<string, string> = {},
  ) {
    super(message ?? ERRORS[code].message);
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
    this.headers = headers;
  }
}

/** The JSON error body: `{"error": {"code", "message", "details"?}}`. */
export function errorBody(code: string, message: string, details?: unknown): string {
  return JSON.stringify({
    error: details === undefined ? { code, message } : { code, message, details },
  });
}

/** A complete JSON error response. */
export function errorResponse(error: ApiError): Response {
  const body = ENCODER.encode(errorBody(error.code, error.message, error.details));
  return new Response(body, {
    status: error.status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      // Said here, so that the answer to HEAD says it too (it has no body to measure).
      "content-length": String(body.byteLength),
      // One caller's refusal at one moment, possibly of a request with ?token=.
      "cache-control": "no-store",
      ...error.headers,
    },
  });
}

const ENCODER = new TextEncoder();
