/**
 * Sign-in and stream tickets: `POST /auth/login` (username and password → token),
 * `GET /auth/session` (who the caller is), `POST /auth/logout` (clears the status page's
 * cookie and revokes a sign-in's token), `POST /auth/cookie` (a token the page holds becomes
 * its cookie), `POST /tickets` (a single-use ticket for one job's stream).
 *
 * @module
 */
import type { Context } from "hono";
import type { App, AppDeps, AppEnv } from "../app.ts";
import { ApiError } from "../errors.ts";
import { readJson } from "../body.ts";
import { loginBody, parseOr, ticketBody } from "../schemas.ts";
import { addressKey, CHALLENGE, requirePrincipal } from "../access.ts";
import { findJob } from "../lookup.ts";
import { canRead } from "../../auth/principal.ts";
import { DUMMY_CREDENTIAL, verifyPassword } from "../../auth/passwords.ts";
import { signToken } from "../../auth/keys.ts";
import { bearerOf, TOKEN_COOKIE } from "../../auth/authenticator.ts";
import { log } from "../../log.ts";
import { writeSoon } from "../../store/write_soon.ts";

/** How long a cookie made from a token outlives the token, in milliseconds. */
const COOKIE_GRACE_MS = 3_600_000;

/**
 * Sets the status page's token cookie (`""` with 0 seconds clears it): HttpOnly, same-site
 * only, and kept off plain HTTP for a page the browser loaded over HTTPS (through a trusted
 * proxy: see `--trusted-proxies`).
 */
function setTokenCookie(c: Context<AppEnv>, token: string, maxAgeSeconds: number): void {
  c.header(
    "set-cookie",
    `${TOKEN_COOKIE}=${token}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${
      c.get("https") ? "; Secure" : ""
    }`,
  );
}

/** Failed logins are counted over this window, in milliseconds. */
export const LOGIN_WINDOW_MS = 15 * 60_000;
/** Failures per user within the window before further attempts are refused. */
export const LOGIN_FAILURES_PER_USER = 5;
/** Failures per client IP within the window before further attempts are refused. */
export const LOGIN_FAILURES_PER_IP = 20;

/** Answers that hold a credential, or say whose session this is, are kept by no cache. */
const NO_STORE = { "cache-control": "no-store" };

export function registerAuthRoutes(app: App, deps: AppDeps): void {
  const { config } = deps;

  app.post("/auth/login", async (c) => {
    const store = deps.authStore;
    const keys = deps.authenticator?.keys;
    if (store === undefined || keys === undefined) {
      throw new ApiError(
        "auth_disabled",
        "Authentication is off on this server (--no-auth): no sign-in needed",
      );
    }
    const body = parseOr(loginBody, await readJson(c.req.raw, config.maxBodyBytes));
    const now = Date.now();
    const since = now - LOGIN_WINDOW_MS;
    const userKey = `user:${body.username}`;
    // An exempt address (a reverse proxy on the same host) is not counted: its failures would
    // lock every client behind it out.
    const address = addressKey(c, config);
    const counted: [string, number][] = [[userKey, LOGIN_FAILURES_PER_USER]];
    if (address !== null) counted.push([`ip:${address}`, LOGIN_FAILURES_PER_IP]);
    // Counted as a failure before the password is checked, and forgotten if it was right:
    // attempts that come while earlier ones are being checked (scrypt takes a while) see
    // them, so guesses sent in parallel, to any isolate, cannot get past the limit. Waited
    // for without blocking the isolate, like every write of a request (another process may
    // hold the write lock for a while). One over the limit already is refused on a read,
    // without the write lock: a flood of them holds up no publisher.
    const refused = store.loginRefusal(counted, since, now) ??
      await writeSoon(deps.store, () => store.recordLoginAttempt(counted, since, now));
    if (refused !== undefined) {
      const retry = Math.max(1, Math.ceil((refused.first + LOGIN_WINDOW_MS - now) / 1000));
      throw new ApiError("rate_limited", "Too many failed sign-ins: try again later", undefined, {
        "retry-after": String(retry),
      });
    }
    const user = store.getUser(body.username);
    // An unknown user costs the same scrypt as a known one, so timing tells nothing.
    const credential = user ?? DUMMY_CREDENTIAL;
    const ok = await verifyPassword(body.password, credential.salt, credential.hash) &&
      user !== undefined;
    if (!ok || user === undefined) {
      log("warn", "failed sign-in", { user: body.username, ip: c.get("ip") });
      // A 401 names how to authenticate (RFC 9110): a token, which this route hands out.
      throw new ApiError("invalid_credentials", undefined, undefined, {
        "www-authenticate": CHALLENGE,
      });
    }
    await writeSoon(deps.store, () => {
      store.clearLoginFailures(userKey);
      if (address !== null) store.forgetLoginFailure(`ip:${address}`, now);
    });
    const token = await signToken(
      keys,
      // `jobwire_login` marks a token of this server's own sign-in with the credentials it
      // was checked against (read before the password was): it ends when they change.
      {
        sub: user.username,
        scope: user.scopes.join(" "),
        jti: crypto.randomUUID(),
        jobwire_login: user.changed_at ?? user.created_at,
      },
      config.tokenTtlMs,
    );
    const expiresIn = Math.round(config.tokenTtlMs / 1000);
    if (body.cookie === true) {
      // Kept past the token's expiry, as /auth/cookie does, so that the page can tell its
      // user the session expired.
      setTokenCookie(c, token, expiresIn + COOKIE_GRACE_MS / 1000);
    }
    return c.json(
      {
        access_token: token,
        token_type: "bearer",
        expires_in: expiresIn,
        scope: user.scopes.join(" "),
      },
      200,
      NO_STORE,
    );
  });

  // The status page asks this first: it always answers 200 (a refused request would be an
  // error in the browser's console), saying whether sign-in is needed and who the caller is.
  app.get("/auth/session", (c) => {
    const principal = c.get("principal");
    return c.json(
      {
        auth: deps.authenticator !== undefined,
        signed_in: principal !== null,
        sub: principal?.sub ?? null,
        scopes: principal === null ? [] : [...principal.scopes],
        expires_at: principal === null || principal.expiresAt === null
          ? null
          : new Date(principal.expiresAt).toISOString(),
        failure: principal === null ? (c.get("authFailure") ?? null) : null,
      },
      200,
      NO_STORE,
    );
  });

  // A token the status page got from a link or a paste becomes its HttpOnly cookie, for as
  // long as the token is valid: it then never travels in a stream's URL, where proxies and
  // access logs would keep it. Only from `Authorization`: a page must have the token.
  app.post("/auth/cookie", (c) => {
    if (deps.authenticator === undefined) {
      throw new ApiError("auth_disabled", "Authentication is off on this server (--no-auth)");
    }
    const principal = requirePrincipal(c);
    const token = bearerOf(c.req.raw);
    if (token === undefined) {
      throw new ApiError("validation_error", "Send the token as Authorization: Bearer <token>");
    }
    // Kept an hour past the token's expiry, so the server can still tell the page its
    // session expired rather than that it has none.
    const left = principal.expiresAt === null
      ? config.tokenTtlMs
      : Math.max(1000, principal.expiresAt - Date.now()) + COOKIE_GRACE_MS;
    setTokenCookie(c, token, Math.floor(left / 1000));
    return c.json(
      {
        signed_in: true,
        sub: principal.sub,
        expires_at: principal.expiresAt === null
          ? null
          : new Date(principal.expiresAt).toISOString(),
      },
      200,
      NO_STORE,
    );
  });

  // Clears the cookie, and revokes the caller's token when it came from a sign-in (it has
  // a `jti`): the token is refused from then on, by every isolate, even if it was copied,
  // and the streams it opened are closed.
  app.post("/auth/logout", async (c) => {
    const principal = c.get("principal");
    const tokenId = principal?.token?.tokenId;
    let revoked = false;
    if (deps.authStore !== undefined && tokenId !== undefined) {
      const store = deps.authStore;
      const until = principal?.expiresAt ?? Date.now() + config.tokenTtlMs;
      await writeSoon(deps.store, () => store.revokeToken(tokenId, until));
      revoked = true;
      // Streams it opened close too, on every isolate.
      deps.sessions.revoke(tokenId);
      deps.peers.revoked(tokenId);
    }
    setTokenCookie(c, "", 0);
    return c.json({ signed_out: true, revoked });
  });

  app.post("/tickets", async (c) => {
    const principal = requirePrincipal(c);
    const body = parseOr(ticketBody, await readJson(c.req.raw, config.maxBodyBytes));
    const job = findJob(deps.store, body.job_id);
    if (!canRead(principal, job)) throw new ApiError("forbidden", `No access to job ${job.id}`);
    const store = deps.authStore;
    if (store === undefined) {
      throw new ApiError(
        "auth_disabled",
        "Authentication is off on this server (--no-auth): streams need no ticket",
      );
    }
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    const ticket = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
    const now = Date.now();
    const expiresAt = now + config.ticketTtlMs;
    await writeSoon(deps.store, () =>
      store.saveTicket(
        ticket,
        job.id,
        {
          sub: principal.sub,
          expiresAt: principal.expiresAt,
          ...(principal.token === undefined ? {} : { token: principal.token }),
          jobCreatedAt: job.created_at,
        },
        c.req.header("origin") ?? null,
        expiresAt,
      ));
    return c.json(
      {
        ticket,
        job_id: job.id,
        // The ticket ends with the token it was issued with, when that comes first.
        expires_in: Math.max(
          0,
          Math.floor((Math.min(expiresAt, principal.expiresAt ?? Infinity) - now) / 1000),
        ),
      },
      201,
      NO_STORE,
    );
  });
}
