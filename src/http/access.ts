/**
 * Access control at the HTTP edge: the caller's principal (or the 401 explaining its
 * absence), stream tickets, and the mapping of refusals to WebSocket close codes.
 *
 * @module
 */
import type { Context } from "hono";
import type { AppDeps, AppEnv } from "./app.ts";
import { ApiError } from "./errors.ts";
import { isAdmin, type Principal } from "../auth/principal.ts";
import { exemptAddress } from "../auth/limits.ts";
import { crossOrigin } from "../auth/origins.ts";
import type { Config } from "../config.ts";
import { CLOSE } from "../protocol/session.ts";
import { writeSoon } from "../store/write_soon.ts";
import { log } from "../log.ts";

export const CHALLENGE = 'Bearer realm="jobwire"';

/**
 * The authenticated principal of the request.
 *
 * @throws {ApiError} 401 (with `WWW-Authenticate`) when there is none
 */
export function requirePrincipal(c: Context<AppEnv>): Principal {
  const principal = c.get("principal");
  if (principal !== null) return principal;
  const failure = c.get("authFailure");
  if (failure === "token_expired" || failure === "token_revoked") throw lapsed(failure);
  if (failure === "invalid_token") {
    throw new ApiError("invalid_token", undefined, undefined, {
      "www-authenticate": `${CHALLENGE}, error="invalid_token"`,
    });
  }
  throw new ApiError(
    "unauthorized",
    c.req.header("authorization")?.trim()
      ? "Authentication required: the Authorization header must be Bearer <token>"
      : "Authentication required: send a bearer token",
    undefined,
    {
      "www-authenticate": CHALLENGE,
    },
  );
}

/** The 401 for a token that expired or was revoked. */
function lapsed(why: "token_expired" | "token_revoked"): ApiError {
  return why === "token_expired"
    ? new ApiError("token_expired", undefined, undefined, {
      "www-authenticate":
        `${CHALLENGE}, error="invalid_token", error_description="The token has expired"`,
    })
    : new ApiError(
      "invalid_token",
      "The token was revoked (signed out, or its user removed)",
      undefined,
      {
        "www-authenticate":
          `${CHALLENGE}, error="invalid_token", error_description="The token was revoked"`,
      },
    );
}

/**
 * The principal of a stream request: from a single-use `?ticket=` when present (valid only
 * for the job it was issued for, and the Origin it was issued to), else the request's own.
 *
 * @param jobIds the jobs the stream asks for
 */
export async function streamPrincipal(
  c: Context<AppEnv>,
  deps: AppDeps,
  jobIds: readonly string[],
): Promise<Principal> {
  const ticket = c.req.query("ticket");
  if (ticket === undefined || ticket === "") return requirePrincipal(c);
  const store = deps.authStore;
  if (store === undefined) return requirePrincipal(c);
  // Taken (deleted) in a write that waits for another process's lock without blocking; a
  // HEAD request, which opens no stream, only looks.
  const taken = c.req.method === "HEAD"
    ? store.peekTicket(ticket)
    : await writeSoon(deps.store, () => store.takeTicket(ticket));
  if (taken === undefined || taken.expiresAt < Date.now()) {
    throw new ApiError("invalid_token", "The ticket is unknown, used or expired", undefined, {
      "www-authenticate": `${CHALLENGE}, error="invalid_token"`,
    });
  }
  if (jobIds.length !== 1 || jobIds[0] !== taken.jobId) {
    throw new ApiError("forbidden", `The ticket is for job ${taken.jobId} only`);
  }
  const origin = c.req.header("origin") ?? null;
  // A browser sends no Origin on a same-origin GET (an EventSource of the server's own
  // page): that matches a ticket issued to the server's own origin.
  const sameOriginGet = origin === null && !crossOrigin(taken.origin, c.req.header("host") ?? null);
  if (taken.origin !== null && taken.origin !== origin && !sameOriginGet) {
    throw new ApiError("forbidden", "The ticket was issued to another origin");
  }
  if (taken.grant.expiresAt !== null && taken.grant.expiresAt <= Date.now()) {
    throw new ApiError("token_expired", "The token the ticket was issued with has expired");
  }
  const { token, jobCreatedAt } = taken.grant;
  if (deps.authenticator?.isRevoked(token) === true) {
    throw new ApiError(
      "invalid_token",
      "The token the ticket was issued with was revoked (signed out, or its user removed)",
      undefined,
      { "www-authenticate": `${CHALLENGE}, error="invalid_token"` },
    );
  }
  // No subject: an owner's rights would reach every job of that owner, and a ticket is
  // for one job only (its connections count against the client's IP): the job as it was
  // when the ticket was issued, not another made later under its id.
  return {
    sub: null,
    scopes: new Set(["read"]),
    jobs: new Set([taken.jobId]),
    expiresAt: taken.grant.expiresAt,
    token,
    ...(jobCreatedAt === undefined
      ? {}
      : { jobsCreatedAt: new Map([[taken.jobId, jobCreatedAt]]) }),
  };
}

/**
 * Key that per-principal limits count a principal under: its subject, else its address.
 * `null` when they skip it: an admin token (the operator's own credential, which may
 * already delete every job), or a principal without a subject from an exempt address.
 */
export function principalKey(
  principal: Principal,
  c: Context<AppEnv>,
  config: Pick<Config, "limitsExemptIps">,
): string | null {
  if (principal.sub !== null) return isAdmin(principal) ? null : principal.sub;
  const address = addressKey(c, config);
  return address === null ? null : `ip:${address}`;
}

/**
 * Key that per-address limits count the client under, or `null` for an exempt address.
 * An address a proxy reported is never exempt: a client inside a trusted range can write
 * any address in `X-Forwarded-For` (see `proxies.ts`), loopback included.
 */
export function addressKey(
  c: Context<AppEnv>,
  config: Pick<Config, "limitsExemptIps">,
): string | null {
  const ip = c.get("ip");
  return !c.get("forwarded") && exemptAddress(ip, config.limitsExemptIps) ? null : ip;
}

/** `Retry-After` of a stream or long-poll refused by a connection limit. */
export const STREAM_RETRY_SECONDS = 5;

/**
 * Counts a new stream against the connection limits.
 *
 * @returns the release function to call when the stream ends
 * @throws {ApiError} 503 overloaded or 429 too_many_connections
 */
export function admitStream(c: Context<AppEnv>, deps: AppDeps, principal: Principal): () => void {
  const admitted = deps.visitors.openStream(
    principalKey(principal, c, deps.config),
    addressKey(c, deps.config),
  );
  if (typeof admitted === "function") return admitted;
  // A stream's slot comes back when another ends, which may be soon or never: a client is
  // told to wait a few seconds rather than to retry at once.
  const retry = { "retry-after": String(STREAM_RETRY_SECONDS) };
  if (admitted === "server") {
    throw new ApiError(
      "overloaded",
      "The server has too many open streams: retry later",
      undefined,
      retry,
    );
  }
  throw new ApiError(
    "too_many_connections",
    admitted === "ip"
      ? "Too many open streams from this address"
      : "Too many open streams for this principal",
    undefined,
    retry,
  );
}

/**
 * Runs `wait` (a request held open: a long-poll) counted as an open stream for the
 * connection limits, and in `/stats` as a `long_poll` connection. Like a stream, it ends
 * when its token expires or is revoked, and then answers 401 instead of what it waited for.
 *
 * @param wait waits until done or until the signal aborts (the client went away, or the
 *   token lapsed)
 * @throws {ApiError} as {@link admitStream} does, before waiting; 401 when the token
 *   expired or was revoked before the answer
 */
export async function whileAdmitted<T>(
  c: Context<AppEnv>,
  deps: AppDeps,
  principal: Principal,
  wait: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const release = admitStream(c, deps, principal);
  deps.stats.longPolls++;
  deps.stats.longPollsWaiting++;
  const lapse = new AbortController();
  const revoked = () => deps.authenticator?.isRevoked(principal.token) === true;
  const unwatch = deps.sessions.watch({
    expiresAt: principal.expiresAt,
    tokenId: principal.token?.tokenId,
    revoked,
    lapse: (why) => lapse.abort(why),
  });
  try {
    const result = await wait(AbortSignal.any([c.req.raw.signal, lapse.signal]));
    if (lapse.signal.aborted) throw lapsed(lapse.signal.reason);
    if (principal.expiresAt !== null && principal.expiresAt <= Date.now()) {
      throw lapsed("token_expired");
    }
    if (revoked()) throw lapsed("token_revoked");
    return result;
  } finally {
    unwatch();
    deps.stats.longPollsWaiting--;
    release();
  }
}

/** The WebSocket close code and reason for a refusal (1008 auth, 1013 overload). */
export function closeFor(error: ApiError): { code: number; reason: string } {
  switch (error.code) {
    case "unauthorized":
      return { code: CLOSE.policy, reason: "authentication required" };
    case "invalid_token":
      return {
        code: CLOSE.policy,
        reason: error.message.includes("ticket") ? "invalid ticket" : "invalid token",
      };
    case "token_expired":
      return { code: CLOSE.policy, reason: "token expired" };
    case "forbidden":
      return { code: CLOSE.policy, reason: "forbidden" };
    case "origin_not_allowed":
      return { code: CLOSE.policy, reason: "origin not allowed" };
    case "overloaded":
    case "too_many_connections":
      return { code: CLOSE.overloaded, reason: error.message.toLowerCase() };
    case "job_not_found":
    case "job_gone":
      return {
        code: CLOSE.jobNotFound,
        reason: error.code === "job_gone" ? "job deleted or purged" : "job not found",
      };
    default:
      return { code: CLOSE.policy, reason: error.message.slice(0, 100) };
  }
}

/**
 * Counts a request refused with error `code` (`/stats` and `/metrics`), and logs it at the
 * debug level with `fields` (the path, never the query: it may hold a token).
 */
export function noteRefusal(
  c: Context<AppEnv>,
  deps: Pick<AppDeps, "stats">,
  code: string,
  fields: Record<string, unknown> = {},
): void {
  deps.stats.refused(code);
  log("debug", "refused", {
    method: c.req.method,
    path: c.req.path,
    error: code,
    ...fields,
    ip: c.get("ip"),
  });
}

/**
 * Accepts the WebSocket only to close it at once with the code that says why `error`
 * refused it (browsers see only close codes), or with `close` when given.
 */
export function refuseWebSocket(
  c: Context<AppEnv>,
  deps: Pick<AppDeps, "stats">,
  error: ApiError,
  close: { code: number; reason: string } = closeFor(error),
): Response {
  const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
  socket.onopen = () => socket.close(close.code, close.reason);
  noteRefusal(c, deps, error.code, { close: close.code, reason: close.reason });
  return response;
}
