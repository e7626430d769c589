/**
 * Resolves the principal of a request from its credentials: `Authorization: Bearer`,
 * `?token=`, or the status page's `jobwire_token` cookie. Verified tokens are cached
 * until they expire, so a client that reconnects or publishes often is not re-verified
 * each time.
 *
 * @module
 */
import type { JWTPayload } from "jose";
import { type Principal, type Scope, SCOPES } from "./principal.ts";
import { type TokenKeys, verifyToken } from "./keys.ts";
import { textProblem } from "../jobs/input.ts";
import { log, redactUrl } from "../log.ts";

/** Name of the cookie the status page's session token travels in. */
export const TOKEN_COOKIE = "jobwire_token";

/** Why a request has no principal. */
export type AuthFailure =
  | "authentication_required"
  | "invalid_token"
  | "token_expired"
  | "token_revoked";

/** The outcome of authenticating a request. */
export type AuthOutcome =
  | { principal: Principal; failure?: undefined }
  | { principal: null; failure: AuthFailure };

/** A token that can be revoked: one with an id (`jti`). */
export interface RevocableToken {
  tokenId: string;
  /** Its subject (the user, for a sign-in token). */
  sub: string | null;
  /**
   * Set on tokens of this server's sign-in: when the user's password and scopes they were
   * given for were set (their `jobwire_login` claim).
   */
  credentialsAt?: string;
}

/** The latest time a `Date` can hold, in milliseconds since the epoch. */
const MAX_DATE_MS = 8.64e15;

/** Most verified tokens remembered; the cache is emptied when full. */
const CACHE_LIMIT = 10_000;

/** Builds a principal from verified claims; unknown scopes are ignored. */
export function principalFromClaims(payload: JWTPayload): Principal {
  const rawScope = payload.scope ?? payload.scp;
  const words = Array.isArray(rawScope)
    ? rawScope.map(String)
    : typeof rawScope === "string"
    ? rawScope.split(/\s+/)
    : [];
  const scopes = new Set<Scope>(
    words.filter((w): w is Scope => (SCOPES as readonly string[]).includes(w)),
  );
  const rawJobs = payload.jobs;
  const jobs = Array.isArray(rawJobs)
    ? rawJobs.map(String)
    : typeof rawJobs === "string"
    ? rawJobs.split(",").map((s) => s.trim()).filter((s) => s !== "")
    : [];
  const sub = typeof payload.sub === "string" && payload.sub !== "" ? payload.sub : null;
  return {
    sub,
    scopes,
    jobs: new Set(jobs),
    expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : null,
    token: typeof payload.jti === "string" && payload.jti !== ""
      ? {
        tokenId: payload.jti,
        sub,
        ...(typeof payload.jobwire_login === "string"
          ? { credentialsAt: payload.jobwire_login }
          : {}),
      }
      : undefined,
  };
}

/** The token of a request's `Authorization: Bearer` header, if it has one. */
export function bearerOf(request: Request): string | undefined {
  const header = request.headers.get("authorization");
  return header === null ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

/** Reads the bearer token of a request, wherever it was put. */
export function credentialOf(
  request: Request,
  url: URL,
  options: { cookie?: boolean } = {},
): string | undefined {
  const bearer = bearerOf(request);
  if (bearer !== undefined) return bearer;
  const query = url.searchParams.get("token");
  if (query !== null && query !== "") return query;
  const cookies = options.cookie === false ? null : request.headers.get("cookie");
  if (cookies !== null) {
    for (const part of cookies.split(";")) {
      const eq = part.indexOf("=");
      if (eq !== -1 && part.slice(0, eq).trim() === TOKEN_COOKIE) {
        const value = part.slice(eq + 1).trim();
        if (value === "") continue;
        try {
          return decodeURIComponent(value);
        } catch {
          // Not percent-encoding: handed on as it is, it fails verification (401).
          return value;
        }
      }
    }
  }
  return undefined;
}

/** Verifies credentials with the server's keys. */
export class Authenticator {
  #keys: TokenKeys;
  #cache = new Map<string, Principal>();
  /** When the key set at `--jwks-url` was last said to be out of reach (epoch ms). */
  #keySetWarnedAt = 0;
  #revoked: (token: RevocableToken) => boolean;

  /**
   * @param revoked whether a sign-in token (one with an id) was revoked: signed out, or its
   *   user removed since it was issued; asked on every use of such a token, cached or not,
   *   since any isolate (or `main.ts user remove`) may have revoked it
   */
  constructor(keys: TokenKeys, revoked: (token: RevocableToken) => boolean = () => false) {
    this.#keys = keys;
    this.#revoked = revoked;
  }

  get keys(): TokenKeys {
    return this.#keys;
  }

  /** The principal of `request`, or why there is none. */
  async authenticate(
    request: Request,
    url: URL,
    options: { cookie?: boolean } = {},
  ): Promise<AuthOutcome> {
    const token = credentialOf(request, url, options);
    if (token === undefined) return { principal: null, failure: "authentication_required" };
    return await this.verify(token);
  }

  /** Verifies one token. */
  async verify(token: string): Promise<AuthOutcome> {
    const outcome = await this.#verify(token);
    const principal = outcome.principal;
    if (principal !== null && this.isRevoked(principal.token)) {
      return { principal: null, failure: "token_revoked" };
    }
    return outcome;
  }

  /**
   * Whether a token was revoked since it was checked: signed out, or (a sign-in token) its
   * user removed. Only tokens with an id can be; streams and tickets ask again later.
   */
  isRevoked(token: RevocableToken | undefined): boolean {
    return token !== undefined && this.#revoked(token);
  }

  /**
   * Says in the log (at most every 30 s) that the key set at `--jwks-url` could not be
   * fetched: every token signed with those keys is refused meanwhile, which from the outside
   * looks like bad tokens.
   */
  #warnIfKeySetUnreachable(error: unknown, code: string | undefined): void {
    const source = this.#keys.external?.source;
    if (source === undefined || !/^https?:/.test(source)) return;
    const unreachable = error instanceof TypeError ||
      code === "ERR_JWKS_TIMEOUT" || code === "ERR_JOSE_GENERIC" || code === "ERR_JWKS_INVALID";
    if (!unreachable || Date.now() - this.#keySetWarnedAt < 30_000) return;
    this.#keySetWarnedAt = Date.now();
    log("warn", "cannot fetch the key set: tokens signed with its keys are refused", {
      url: redactUrl(source),
      error: error instanceof Error ? error.message : String(error),
    });
  }

  async #verify(token: string): Promise<AuthOutcome> {
    const cached = this.#cache.get(token);
    if (cached !== undefined) {
      if (cached.expiresAt === null || cached.expiresAt > Date.now()) return { principal: cached };
      this.#cache.delete(token);
      return { principal: null, failure: "token_expired" };
    }
    let payload: JWTPayload;
    try {
      payload = await verifyToken(this.#keys, token);
    } catch (error) {
      const code = (error as { code?: string }).code;
      this.#warnIfKeySetUnreachable(error, code);
      return {
        principal: null,
        failure: code === "ERR_JWT_EXPIRED" ? "token_expired" : "invalid_token",
      };
    }
    // An expiry beyond any date (`exp: 1e300`) cannot be told or kept: such a token is refused.
    if (typeof payload.exp === "number" && !(payload.exp * 1000 <= MAX_DATE_MS)) {
      return { principal: null, failure: "invalid_token" };
    }
    // The subject becomes the owner of the jobs the token creates: a `sub` that is not text,
    // or that SQLite would store as another string (cut at a NUL, a lone surrogate made
    // U+FFFD), would make those jobs someone else's.
    const sub = payload.sub as unknown;
    if (sub !== undefined && (typeof sub !== "string" || textProblem(sub) !== undefined)) {
      return { principal: null, failure: "invalid_token" };
    }
    const principal = principalFromClaims(payload);
    // A token that is not yet valid (nbf) is refused by verifyToken, never cached early.
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(token, principal);
    return { principal };
  }
}
