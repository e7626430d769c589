/**
 * The Hono application: routes, the principal of each request, and the one error
 * handler that writes the JSON error shape.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { Config } from "../config.ts";
import type { Hub } from "../hub/hub.ts";
import type { EventStore } from "../store/event_store.ts";
import type { Committer } from "../store/committer.ts";
import type { Sessions } from "../protocol/sessions.ts";
import type { Stats } from "../stats.ts";
import { OPEN_PRINCIPAL, type Principal } from "../auth/principal.ts";
import type { Authenticator, AuthFailure } from "../auth/authenticator.ts";
import type { Visitors } from "../auth/limits.ts";
import type { Peers } from "../hub/peers.ts";
import {
  corsHeaders,
  crossOrigin,
  hostAllowed,
  originAllowed,
  preflightHeaders,
} from "../auth/origins.ts";
import type { AuthStore } from "../store/auth_store.ts";
import { noteRefusal, refuseWebSocket, requirePrincipal } from "./access.ts";
import { CLOSE } from "../protocol/session.ts";
import { registerAuthRoutes } from "./routes/auth.ts";
import { logError, redactUrl } from "../log.ts";
import { ApiError, errorResponse } from "./errors.ts";
import { IncompleteBodyError } from "./body.ts";
import { isStorageError, noteStorageFault } from "./storage_fault.ts";
import { registerJobRoutes } from "./routes/jobs.ts";
import { registerPublishRoutes } from "./routes/publish.ts";
import { registerEventRoutes } from "./routes/events.ts";
import { registerStreamRoutes } from "./routes/streams.ts";
import { registerOpsRoutes } from "./routes/ops.ts";
import { registerStaticRoutes, type StaticFiles } from "./static_files.ts";
import { addressSet, clientBehind } from "./proxies.ts";

/** Everything the routes use; built by the server and passed in. */
export interface AppDeps {
  config: Config;
  store: EventStore;
  hub: Hub;
  committer: Committer;
  sessions: Sessions;
  stats: Stats;
  staticFiles: StaticFiles;
  /** Verifies tokens; `undefined` when the server runs with `--no-auth`. */
  authenticator: Authenticator | undefined;
  /** Users, tickets and login failures; `undefined` when the server runs with `--no-auth`. */
  authStore: AuthStore | undefined;
  visitors: Visitors;
  /** The other isolates of this server (none when it runs one). */
  peers: Peers;
  /** Name of this server (shared by its isolates), answered by `/healthz`. */
  instance: string;
}

/**
 * Hono environment of the app: the connection info from `Deno.serve`, and the caller
 * (principal, or why there is none, IP, and whether it came over HTTPS through a trusted
 * proxy) set before any route runs.
 */
export type AppEnv = {
  Bindings: { info?: Deno.ServeHandlerInfo };
  Variables: {
    principal: Principal | null;
    authFailure: AuthFailure | undefined;
    ip: string;
    /** Whether `ip` is what a trusted proxy reported rather than the connection's peer. */
    forwarded: boolean;
    https: boolean;
  };
};

/** The application type routes register on. */
export type App = Hono<AppEnv>;

/**
 * The methods each route path answers, for a 405 with `Allow` when a known path is asked
 * with another method: the routes with a path of their own, and the status page's files.
 */
function methodsByRoute(app: App, files: StaticFiles): (path: string) => string[] {
  const routes = app.routes
    .filter((route) => route.method !== "ALL" && !route.path.includes("*"))
    .map((route) => ({
      method: route.method,
      pattern: new RegExp(
        `^${
          route.path.split("/").map((part) =>
            part.startsWith(":") ? "[^/]+" : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")
          ).join("/")
        }$`,
      ),
    }));
  return (path) => {
    const methods = new Set<string>();
    for (const route of routes) if (route.pattern.test(path)) methods.add(route.method);
    if (files.get(path === "/" ? "/index.html" : path) !== undefined) methods.add("GET");
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods];
  };
}

/**
 * Refuses a request before the routes: a WebSocket upgrade is accepted and closed 1008 with
 * `reason` (a browser shows nothing of a refused handshake), anything else gets `error`.
 */
function refuse(
  c: Context<AppEnv>,
  deps: AppDeps,
  reason: string,
  error: ApiError,
): Response {
  if ((c.req.header("upgrade") ?? "").toLowerCase() === "websocket") {
    try {
      return refuseWebSocket(c, deps, error, { code: CLOSE.policy, reason });
    } catch {
      // A handshake the runtime cannot take (no Connection: Upgrade or key): refused as HTTP.
    }
  }
  throw error;
}

/** Lets an allowed cross-origin caller read a response. */
function addCors(headers: Headers, origin: string): void {
  for (const [name, value] of Object.entries(corsHeaders(origin))) {
    // Beside what the response varies by already (Accept, on the events URL), once.
    if (name === "vary") {
      const vary = headers.get("vary") ?? "";
      if (!vary.split(",").some((part) => part.trim().toLowerCase() === "origin")) {
        headers.append(name, value);
      }
    } else headers.set(name, value);
  }
}

/** A `Host` header: a name or IPv4 address, or an IPv6 one in brackets, and a port. */
const VALID_HOST = /^(?:[A-Za-z0-9_~-](?:[A-Za-z0-9._~-]*)|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** The route whose answer `Accept` chooses: `/jobs/:id/events`. */
const EVENTS_PATH = /^\/jobs\/[^/]+\/events$/;

/**
 * The answer to a HEAD request: the GET answer's status and headers, with the length of the
 * body it would have had (routing answers HEAD as GET; without this the runtime would say
 * `Content-Length: 0` for the empty body it sends). Measured here, in the middleware: routing
 * drops the body once the middleware is done. Streams answer HEAD themselves; what reaches
 * the runtime is made right in `headAnswer` (`src/server.ts`).
 */
async function headOf(response: Response): Promise<Response> {
  if (response.body === null || response.headers.has("content-length")) return response;
  const type = response.headers.get("content-type") ?? "";
  if (type.startsWith("text/event-stream") || type.startsWith("application/x-ndjson")) {
    return response;
  }
  const length = (await response.arrayBuffer()).byteLength;
  const headers = new Headers(response.headers);
  headers.set("content-length", String(length));
  return new Response(null, { status: response.status, statusText: response.statusText, headers });
}

/** Builds the application. */
export function createApp(deps: AppDeps): App {
  const app: App = new Hono<AppEnv>();
  const trusted = addressSet(deps.config.trustedProxies);
  // The methods a path takes, once every route is registered (below).
  let allowed: (path: string) => string[] = () => [];
  app.use(async (c, next) => {
    const request = c.req.raw;
    const remote = c.env?.info?.remoteAddr;
    const client = clientBehind(
      remote !== undefined && "hostname" in remote ? remote.hostname : "unknown",
      request.headers,
      trusted,
    );
    c.set("ip", client.ip);
    c.set("forwarded", client.forwarded);
    c.set("https", client.https);
    const origin = request.headers.get("origin");
    const host = request.headers.get("host");
    // The runtime makes the request's URL of the Host header: one that is no host (`a b`,
    // `a/b`, `a?b`) would make it fail to parse, or name another path.
    if (host !== null && (!VALID_HOST.test(host) || !URL.canParse(`http://${host}/`))) {
      return refuse(c, deps, "invalid host", new ApiError("invalid_host"));
    }
    if (
      deps.authenticator === undefined &&
      !hostAllowed(host, deps.config.allowedHosts, deps.config.host)
    ) {
      return refuse(
        c,
        deps,
        "host not allowed",
        new ApiError(
          "host_not_allowed",
          `This server runs without authentication and does not answer to ${host}, ` +
            "as a guard against DNS rebinding: add the name with --allowed-hosts",
        ),
      );
    }
    if (!originAllowed(origin, host, deps.config.allowedOrigins)) {
      return refuse(
        c,
        deps,
        "origin not allowed",
        new ApiError(
          "origin_not_allowed",
          `Origin ${origin} may not use this server (see --allowed-origins)`,
        ),
      );
    }
    const cross = origin !== null && crossOrigin(origin, host);
    if (request.method === "OPTIONS" && cross) {
      return c.body(
        null,
        204,
        preflightHeaders(origin, request.headers.get("access-control-request-headers")),
      );
    }
    if (deps.authenticator === undefined) {
      c.set("principal", OPEN_PRINCIPAL);
      c.set("authFailure", undefined);
    } else {
      // The sign-in cookie is the status page's: a page of another origin, even an allowed
      // one, gets no session of it (a browser sends it to every port of the host name).
      const outcome = await deps.authenticator.authenticate(request, new URL(request.url), {
        cookie: !cross,
      });
      c.set("principal", outcome.principal);
      c.set("authFailure", outcome.failure);
    }
    // Writes need a principal before their body is read: an anonymous caller learns nothing
    // from validation errors and cannot make the server read a large body.
    // A method no route takes on the path answers 405 or 404 instead, to anyone.
    if (request.method === "POST" || request.method === "DELETE") {
      const path = c.req.path;
      if (
        path !== "/auth/login" && path !== "/auth/logout" &&
        allowed(path).includes(request.method)
      ) {
        requirePrincipal(c);
      }
    }
    await next();
    if (c.res.status !== 101) {
      const headers = c.res.headers;
      // What the API answers is one caller's view at one moment (and may have come with
      // ?token=): no cache keeps it. The status page's files say their own.
      if (
        !headers.has("cache-control") &&
        (headers.get("content-type") ?? "").startsWith("application/json")
      ) {
        headers.set("cache-control", "no-store");
      }
      // An events URL answers a page, SSE or NDJSON by its Accept header.
      if (EVENTS_PATH.test(c.req.path)) headers.append("vary", "Accept");
      if (cross) addCors(headers, origin);
      if (request.method === "HEAD") c.res = await headOf(c.res);
    }
    return undefined;
  });
  registerAuthRoutes(app, deps);
  registerJobRoutes(app, deps);
  registerPublishRoutes(app, deps);
  registerEventRoutes(app, deps);
  registerStreamRoutes(app, deps);
  registerOpsRoutes(app, deps);
  registerStaticRoutes(app, deps.staticFiles);
  allowed = methodsByRoute(app, deps.staticFiles);
  /** The answer to a request no route takes, counted and logged as a refusal. */
  const refused = (c: Context<AppEnv>, error: ApiError) => {
    noteRefusal(c, deps, error.code, { status: error.status });
    return errorResponse(error);
  };
  app.notFound((c) => {
    // The path as routing saw it: a request's URL keeps dot segments (`/x/../jobs`) that a
    // parsed URL would remove, and a route the router did not match is not offered.
    const path = c.req.path;
    const methods = allowed(path);
    if (methods.length > 0) {
      return refused(
        c,
        new ApiError(
          "method_not_allowed",
          `${c.req.method} is not allowed on ${path}: use ${methods.join(", ")}`,
          undefined,
          { allow: methods.join(", ") },
        ),
      );
    }
    return refused(c, new ApiError("not_found", `No route ${c.req.method} ${path}`));
  });
  app.onError((error, c) => {
    let answer: ApiError;
    if (error instanceof IncompleteBodyError && deps.sessions.stopping) {
      // Cut off by the shutdown, not by the client: nothing was stored, and a retry (to this
      // server once it is back, or another) is what the client should do.
      answer = new ApiError(
        "unavailable",
        "The server is shutting down before the request body arrived: retry",
        undefined,
        { "retry-after": "1" },
      );
    } else if (error instanceof ApiError) {
      answer = error;
    } else if (isStorageError(error)) {
      // The database refused (full disk, locked past the wait, damaged): the request may work
      // later, and it is no fault of the caller's.
      noteStorageFault(deps, error);
      logError("the database refused a request", error, { method: c.req.method });
      answer = new ApiError(
        "unavailable",
        `The database cannot take this request now: ${(error as Error).message}`,
        undefined,
        { "retry-after": "1" },
      );
    } else {
      deps.stats.serverErrors++;
      logError("request failed", error, { method: c.req.method, url: redactUrl(c.req.url) });
      answer = new ApiError("internal_error");
    }
    const response = refused(c, answer);
    // An error thrown before the routes (a missing token on a write) gets the CORS headers
    // too: an allowed page must be able to read why it was refused.
    const origin = c.req.header("origin") ?? null;
    const host = c.req.header("host") ?? null;
    if (
      origin !== null && crossOrigin(origin, host) &&
      originAllowed(origin, host, deps.config.allowedOrigins)
    ) {
      addCors(response.headers, origin);
    }
    return response;
  });
  return app;
}
