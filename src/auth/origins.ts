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
  return sameHost(origin, host);
}

/**
 * Whether `origin` names the host and port of a `Host` header. Only those are compared, so
 * a TLS-terminating proxy in front (https outside, http inside) still counts as the server's
 * own origin; the Host header is read with the origin's scheme, so that a default port
 * written out (`example.com:443`, as some proxies send) and capitals change nothing.
 */
function sameHost(origin: string, host: string | null): boolean {
  if (host === null) return false;
  try {
    const { protocol, host: originHost } = new URL(origin);
    if (protocol !== "http:" && protocol !== "https:") return false;
    return new URL(`${protocol}//${host}`).host === originHost;
  } catch {
    return false;
  }
}

/**
 * Whether a server without authentication answers a request for `host` (the `Host`
 * header). A web page that makes its own name resolve to 127.0.0.1 (DNS rebinding) is
 * same-origin with the server under that name, so neither the Origin check nor CORS stops
 * it reading and writing jobs: only names the server is known by are answered. Those are
 * IP addresses, `localhost` and its subdomains, the interface it listens on, and
 * `allowed`.
 */
export function hostAllowed(
  host: string | null,
  allowed: readonly string[],
  listenHost: string,
): boolean {
  if (host === null || allowed.includes("*")) return true;
  const name = hostName(host);
  if (name === undefined) return false;
  if (name.startsWith("[") || /^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return true;
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  if (name === listenHost.toLowerCase()) return true;
  return allowed.some((entry) =>
    entry.startsWith(".") ? name === entry.slice(1) || name.endsWith(entry) : name === entry
  );
}

/** The lower-case name of a `Host` header without its port or final dot. */
function hostName(host: string): string | undefined {
  try {
    return new URL(`http://${host}`).hostname.replace(/\.$/, "");
  } catch {
    return undefined;
  }
}

/** Whether the request is cross-origin (so it needs CORS headers). */
export function crossOrigin(origin: string | null, host: string | null): boolean {
  return origin !== null && !sameHost(origin, host);
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

/** A header name (an HTTP token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * CORS headers answering a preflight of an allowed origin. Besides the headers the API
 * reads, those the page asks to send (`Access-Control-Request-Headers`: a tracing header,
 * a request id) are allowed: the API ignores them, and refusing them would fail the page's
 * request with nothing but a console message.
 */
export function preflightHeaders(origin: string, requested: string | null): Record<string, string> {
  const names = new Set(ALLOWED_HEADERS.split(", "));
  for (const name of (requested ?? "").split(",")) {
    const trimmed = name.trim().toLowerCase();
    if (HEADER_NAME.test(trimmed)) names.add(trimmed);
  }
  return {
    ...corsHeaders(origin),
    vary: "Origin, Access-Control-Request-Headers",
    "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
    "access-control-allow-headers": [...names].join(", "),
    "access-control-max-age": "600",
  };
}
