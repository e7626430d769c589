/**
 * The Hono application: routes, the principal of each request, and the one error
 * handler that writes the JSON error shape.
 *
 * @module
 */
import { Hono } from "hono";
import type { Config } from "../config.ts";
import type { Hub } from "../hub/hub.ts";
import type { EventStore } from "../store/event_store.ts";
import type { Committer } from "../store/committer.ts";
import type { Sessions } from "../protocol/sessions.ts";
import type { Stats } from "../stats.ts";
import { OPEN_PRINCIPAL, type Principal } from "../auth/principal.ts";
import { logError, redactUrl } from "../log.ts";
import { ApiError, errorResponse } from "./errors.ts";
import { registerJobRoutes } from "./routes/jobs.ts";
import { registerPublishRoutes } from "./routes/publish.ts";
import { registerEventRoutes } from "./routes/events.ts";
import { registerStreamRoutes } from "./routes/streams.ts";
import { registerOpsRoutes } from "./routes/ops.ts";
import { registerStaticRoutes, type StaticFiles } from "./static_files.ts";

/** Everything the routes use; built by the server and passed in. */
export interface AppDeps {
  config: Config;
  store: EventStore;
  hub: Hub;
  committer: Committer;
  sessions: Sessions;
  stats: Stats;
  staticFiles: StaticFiles;
  /** Resolves the caller of a request (auth); the open principal when auth is off. */
  authenticate(request: Request): Promise<Principal>;
}

/** Hono environment of the app: the principal is set before any route runs. */
export type AppEnv = { Variables: { principal: Principal } };

/** The application type routes register on. */
export type App = Hono<AppEnv>;

/** Builds the application. */
export function createApp(deps: AppDeps): App {
  const app: App = new Hono<AppEnv>();
  app.use(async (c, next) => {
    c.set("principal", await deps.authenticate(c.req.raw));
    await next();
  });
  registerJobRoutes(app, deps);
  registerPublishRoutes(app, deps);
  registerEventRoutes(app, deps);
  registerStreamRoutes(app, deps);
  registerOpsRoutes(app, deps);
  registerStaticRoutes(app, deps.staticFiles);
  app.notFound((c) =>
    errorResponse(
      new ApiError("not_found", `No route ${c.req.method} ${new URL(c.req.url).pathname}`),
    )
  );
  app.onError((error, c) => {
    if (error instanceof ApiError) return errorResponse(error);
    deps.stats.serverErrors++;
    logError("request failed", error, { method: c.req.method, url: redactUrl(c.req.url) });
    return errorResponse(new ApiError("internal_error"));
  });
  return app;
}

/** Opens the server on all isolates' behalf: the open principal for every request. */
export function openAuthenticate(_request: Request): Promise<Principal> {
  return Promise.resolve(OPEN_PRINCIPAL);
}
