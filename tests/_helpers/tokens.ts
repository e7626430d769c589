/**
 * Tokens for tests, minted with `jose` independently of the server's own signing code:
 * HS256 with a given secret, asymmetric tokens with a generated key pair, and hand-built
 * unsigned (`alg: none`) tokens.
 *
 * @module
 */
import { type CryptoKey, type JWTPayload, SignJWT } from "jose";

/** The HS256 secret test servers are started with (`"jwt-secret": SECRET`). */
export const SECRET = "jobwire-test-secret-0123456789abcdef";

/** A secret the server does not know: tokens signed with it are forged. */
export const OTHER_SECRET = "someone-elses-secret-0123456789abcdef";

/** Overrides `"no-auth": false` with {@link SECRET}, for `withServer`/`startTestServer`. */
export const AUTH = { "no-auth": false, "jwt-secret": SECRET } as const;

const utf8 = new TextEncoder();

/** Seconds since the epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** How a test token is signed and which registered claims it carries. */
export interface MintOptions {
  /** HS256 secret text (default {@link SECRET}), raw bytes, or a private key. */
  key?: string | Uint8Array | CryptoKey;
  /** Algorithm of the protected header (default HS256). */
  alg?: string;
  /** Absolute `exp` (epoch seconds); default now + 1 h; `null` leaves it out. */
  exp?: number | null;
  /** Absolute `nbf` (epoch seconds). */
  nbf?: number;
  iss?: string;
  aud?: string | string[];
  kid?: string;
}

/** Signs a token with `claims` (such as `{sub, scope, jobs}`). */
export async function mint(claims: JWTPayload, options: MintOptions = {}): Promise<string> {
  const key = options.key ?? SECRET;
  const alg = options.alg ?? "HS256";
  let jwt = new SignJWT(claims)
    .setProtectedHeader({
      alg,
      typ: "JWT",
      ...(options.kid === undefined ? {} : { kid: options.kid }),
    })
    .setIssuedAt();
  const exp = options.exp === undefined ? nowSeconds() + 3600 : options.exp;
  if (exp !== null) jwt = jwt.setExpirationTime(exp);
  if (options.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf);
  if (options.iss !== undefined) jwt = jwt.setIssuer(options.iss);
  if (options.aud !== undefined) jwt = jwt.setAudience(options.aud);
  return await jwt.sign(typeof key === "string" ? utf8.encode(key) : key);
}

/** A token for `sub` with space-separated `scope` (and optional `jobs` claim), HS256 with SECRET. */
export function tokenFor(
  sub: string,
  scope: string,
  extra: JWTPayload = {},
  options: MintOptions = {},
): Promise<string> {
  return mint({ sub, scope, ...extra }, options);
}

/** base64url of a UTF-8 string. */
export function base64url(text: string): string {
  return btoa(String.fromCharCode(...utf8.encode(text))).replaceAll("+", "-").replaceAll(
    "/",
    "_",
  ).replace(/=+$/, "");
}

/** An unsigned token (`{"alg":"none"}`), built by hand as an attacker would. */
export function unsignedToken(claims: JWTPayload, alg = "none"): string {
  const header = base64url(JSON.stringify({ alg, typ: "JWT" }));
  const payload = base64url(JSON.stringify({ exp: nowSeconds() + 3600, ...claims }));
  return `${header}.${payload}.`;
}

/** The claims of a token, decoded without verifying it. */
export function claimsOf(token: string): JWTPayload {
  const part = token.split(".")[1] ?? "";
  const b64 = part.replaceAll("-", "+").replaceAll("_", "/");
  const bytes = Uint8Array.from(
    atob(b64 + "=".repeat((4 - b64.length % 4) % 4)),
    (c) => c.charCodeAt(0),
  );
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** `Authorization: Bearer` headers for `token`. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
