/**
 * The browser Origin allow-list (against cross-site WebSocket hijacking and cross-site
 * reads) and the CORS headers for allowed cross-origin callers. A request without an
 * Origin header comes from a non-browser client and is allowed; the server's own origin
 * is always allowed.
 *
 * @module
 */

/** Whether a request's Origin may use the API. */
export function originAllowed(
  origin: string | null,
  host: string | null,
  allowed: readonly string[],
): boolean {
  if (origin === null) return true;
  if (allowed.includes("*") || allowed.includes(origin)) return true;
  // Same origin: compare host and port only, so a TLS-terminating proxy in front (https
  // outside, http inside) still counts as the server's own origin.
  try {
    return host !== null && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** Whether the request is cross-origin (so it needs CORS headers). */
export function crossOrigin(origin: string | null, host: string | null): boolean {
  if (origin === null) return false;
  try {
    return new URL(origin).host !== host;
  } catch {
    return true;
  }
}

/** Headers a cross-origin caller may send. */
const ALLOWED_HEADERS = "authorization, content-type, idempotency-key, last-event-id, accept";
/** Response headers a cross-origin caller may read. */
const EXPOSED_HEADERS =
  "x-watchers, idempotent-replayed, x-wait-result, location, retry-after, www-authenticate, allow";

/** CORS headers for an allowed cross-origin request. */
export function corsHeaders(origin: string): Record<string, string> {
  return {
    "access-control-allow-origin": origin,
    "access-control-expose-headers": EXPOSED_HEADERS,
    vary: "Origin",
  };
}

/** CORS headers answering a preflight. */
export function preflightHeaders(origin: string): Record<string, string> {
  return {
    ...corsHeaders(origin),
    "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
    "access-control-allow-headers": ALLOWED_HEADERS,
    "access-control-max-age": "600",
  };
}
