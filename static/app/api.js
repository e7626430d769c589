/**
 * Requests to the jobwire API from the page. A pasted or linked token travels as
 * `Authorization`; after a password sign-in the HttpOnly cookie does (same-origin
 * requests carry it by themselves), so the page never holds that token.
 *
 * @module
 */

/** @type {string | undefined} */
let token;

/**
 * Sets the bearer token of later requests (`undefined`: rely on the cookie, or none).
 *
 * @param {string | undefined} value
 */
export function setToken(value) {
  token = value;
}

/** The bearer token in use, if any. */
export function currentToken() {
  return token;
}

/** A refused request: the server's error code, message and HTTP status. */
export class ApiError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number | null} status
   */
  constructor(code, message, status) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

/**
 * One request that answers JSON.
 *
 * @param {string} method
 * @param {string} path such as `/jobs?limit=50`
 * @param {unknown} [body] sent as JSON
 * @param {{token?: string | null}} [options] `token: null` sends no bearer token
 * @returns {Promise<any>}
 * @throws {ApiError} on a refusal (`status` set) or no answer (`status` null)
 */
export async function request(method, path, body, options = {}) {
  const headers = { accept: "application/json" };
  const bearer = options.token === undefined ? token : options.token;
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError("network_error", `Cannot reach the server: ${error}`, null);
  }
  const text = await response.text();
  let json;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const error = json?.error;
    throw new ApiError(
      typeof error?.code === "string" ? error.code : `http_${response.status}`,
      typeof error?.message === "string" ? error.message : `The server answered ${response.status}`,
      response.status,
    );
  }
  return json;
}

/**
 * `GET path`.
 *
 * @param {string} path
 */
export function getJson(path) {
  return request("GET", path);
}

/**
 * A path with query parameters; empty values are left out.
 *
 * @param {string} path
 * @param {Record<string, string | number | undefined | null>} query
 */
export function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text === "" ? path : `${path}?${text}`;
}

/**
 * The API path of a job.
 *
 * @param {string} id
 */
export function jobPath(id) {
  return `/jobs/${encodeURIComponent(id)}`;
}
