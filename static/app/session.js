/**
 * Who is using the page: a token from the `#token=` link the server prints or pasted
 * into the form (kept in `sessionStorage`, so it lives as long as the tab), a cookie
 * session after a password sign-in, or nobody needed on a `--no-auth` server.
 *
 * @module
 */
import { ApiError, request, setToken } from "./api.js";

const TOKEN_KEY = "jobwire.token";

/**
 * @typedef {object} Session
 * @property {boolean} auth whether the server asks for credentials at all
 * @property {boolean} signed_in
 * @property {string | null} sub
 * @property {string[]} scopes
 * @property {string | null} expires_at
 * @property {string | null} failure why there is no principal
 * @property {"token" | "cookie" | "open" | null} via how this page authenticates
 */

/** The stored token, if any. */
export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** @param {string | undefined} value */
function storeToken(value) {
  try {
    if (value === undefined) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    // Storage disabled: the token lasts until the page is left.
  }
  setToken(value);
}

/**
 * Takes a `token=` out of the URL fragment (`#token=…`, or `#/jobs/x&token=…`) and
 * removes it from the address bar and the history entry, so it is not bookmarked, shared
 * or left in the history.
 *
 * @returns {string | undefined} the token, if there was one
 */
export function takeTokenFromFragment() {
  const hash = location.hash;
  const match = /(^#|[#&?])token=([^&]*)/.exec(hash);
  if (match === null) return undefined;
  let value = match[2] ?? "";
  try {
    value = decodeURIComponent(value);
  } catch {
    // Left as it is: the server refuses it and the sign-in form says so.
  }
  const rest = (hash.slice(0, match.index) + hash.slice(match.index + match[0].length))
    .replace(/^#?[&?]/, "#");
  const route = rest === "#" || rest === "" ? "" : rest.startsWith("#") ? rest : `#${rest}`;
  history.replaceState(history.state, "", `${location.pathname}${location.search}${route}`);
  return value === "" ? undefined : value;
}

/**
 * Who a token signs in as (`GET /auth/session` with it), without using it yet.
 *
 * @param {string} token
 * @returns {Promise<Session>}
 */
export async function sessionOf(token) {
  const info = await request("GET", "/auth/session", undefined, { token });
  return { ...info, via: info.signed_in ? "cookie" : null };
}

/**
 * Asks the server who this page is (`GET /auth/session`, which always answers 200), with
 * the stored token when there is one, else with the cookie.
 *
 * @returns {Promise<Session>}
 */
export async function currentSession() {
  const token = storedToken();
  setToken(token);
  const info = await request("GET", "/auth/session");
  /** @type {Session["via"]} */
  let via = null;
  if (!info.auth) via = "open";
  else if (info.signed_in) via = token === undefined ? "cookie" : "token";
  return { ...info, via };
}

/**
 * Signs in with a username and password; the server sets the HttpOnly session cookie.
 *
 * @param {string} username
 * @param {string} password
 * @returns {Promise<Session>}
 */
export async function signInWithPassword(username, password) {
  storeToken(undefined);
  await request("POST", "/auth/login", { username, password, cookie: true }, { token: null });
  return await currentSession();
}

/**
 * Signs in with a pasted token, after checking the server accepts it.
 *
 * @param {string} token
 * @returns {Promise<Session>}
 * @throws {ApiError} `invalid_token` or `token_expired` when it does not
 */
export async function signInWithToken(token) {
  const value = token.trim().replace(/^Bearer\s+/i, "");
  const info = await sessionOf(value);
  if (!info.signed_in) {
    throw new ApiError(info.failure ?? "invalid_token", refusal(info.failure), 401);
  }
  return await useToken(value);
}

/**
 * Signs in with a token the server accepts: it is kept as the HttpOnly cookie, not by the
 * page, so streams carry no token in their URL.
 *
 * @param {string} token
 * @returns {Promise<Session>}
 */
export async function useToken(token) {
  await request("POST", "/auth/cookie", {}, { token });
  storeToken(undefined);
  return await currentSession();
}

/** Forgets the token and clears the cookie. */
export async function signOut() {
  storeToken(undefined);
  try {
    await request("POST", "/auth/logout", {}, { token: null });
  } catch {
    // The cookie expires by itself; the token is already forgotten.
  }
}

/**
 * Keeps a token in the tab until it can be made the cookie (a link's, followed while the
 * server could not be reached).
 *
 * @param {string} token
 */
export function storeLinkedToken(token) {
  storeToken(token);
}

/**
 * Forgets a stored token the server refused.
 */
export function forgetToken() {
  storeToken(undefined);
}

/**
 * Words for why the server refused the credentials.
 *
 * @param {string | null | undefined} failure
 */
export function refusal(failure) {
  switch (failure) {
    case "token_expired":
      return "Your session has expired: sign in again.";
    case "token_revoked":
      return "Your session has ended (signed out elsewhere, or its user changed): sign in again.";
    case "invalid_token":
      return "The server did not accept that token.";
    default:
      return "Sign in to see jobs.";
  }
}
