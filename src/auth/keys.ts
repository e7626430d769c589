/**
 * Token keys: the server's HS256 secret (signs and verifies its own tokens) and, when
 * configured, an external public key, key file or JWKS (verifies tokens from an identity
 * provider). The algorithm of each key follows from its type and is pinned, so a token
 * can never choose how it is checked (no `none`, no HS256 signed with public key text).
 *
 * @module
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  importJWK,
  importSPKI,
  importX509,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";

/** Asymmetric algorithms accepted from external keys. */
export const PUBLIC_KEY_ALGORITHMS = ["RS256", "ES256", "EdDSA"] as const;

type Verifiable = Parameters<typeof jwtVerify>[1];

/** The keys of a server with authentication on. */
export interface TokenKeys {
  /** HS256 secret of the server: signs login and minted tokens, verifies HS256 tokens. */
  readonly secret: Uint8Array;
  /** External verification key (or JWKS) and the algorithms its type allows. */
  readonly external: { key: Verifiable; algorithms: string[]; source: string } | undefined;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
}

/** A key that cannot be used, with the reason. */
export class KeyError extends Error {
  override name = "KeyError";
}

function algorithmOfJwk(jwk: JWK): string {
  if (typeof jwk.alg === "string") {
    if (!(PUBLIC_KEY_ALGORITHMS as readonly string[]).includes(jwk.alg)) {
      throw new KeyError(
        `Unsupported key algorithm ${jwk.alg}: use ${PUBLIC_KEY_ALGORITHMS.join(", ")}`,
      );
    }
    return jwk.alg;
  }
  if (jwk.kty === "RSA") return "RS256";
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "oct") {
    throw new KeyError("A symmetric JWK is a secret: pass it with --jwt-secret");
  }
  throw new KeyError(`Unsupported key type ${jwk.kty}${jwk.crv ? ` (${jwk.crv})` : ""}`);
}

/**
 * Reads a public key file: PEM SPKI or certificate, a JWK, or a JWKS.
 *
 * @param source where the path came from, for the error (`--jwt-public-key`, its variable, a file key)
 * @throws {KeyError} when the file holds no usable public key
 */
export async function loadPublicKeyFile(
  path: string,
  source = "--jwt-public-key",
): Promise<TokenKeys["external"]> {
  let text: string;
  try {
    text = (await Deno.readTextFile(path)).trim();
  } catch (error) {
    throw new KeyError(`Cannot read ${source} ${path}: ${(error as Error).message}`);
  }
  if (text.startsWith("-----BEGIN")) {
    const isCertificate = text.includes("CERTIFICATE");
    if (text.includes("PRIVATE KEY")) {
      throw new KeyError(`${path} holds a private key: give the public key`);
    }
    for (const alg of PUBLIC_KEY_ALGORITHMS) {
      try {
        const key = isCertificate ? await importX509(text, alg) : await importSPKI(text, alg);
        return { key, algorithms: [alg], source: path };
      } catch {
        // Not this key type: try the next algorithm.
      }
    }
    throw new KeyError(`${path} is not an RSA, P-256 or Ed25519 public key in PEM form`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeyError(`${path} is neither PEM nor JSON (JWK or JWKS)`);
  }
  if (
    typeof json === "object" && json !== null && Array.isArray((json as { keys?: unknown }).keys)
  ) {
    const jwks = json as { keys: JWK[] };
    // Each key is imported once here, so that one that could never verify anything (an RSA
    // key labelled ES256) is told at start rather than refusing its tokens as invalid.
    for (const [index, jwk] of jwks.keys.entries()) {
      const name = `${path} key ${typeof jwk.kid === "string" ? `"${jwk.kid}"` : index + 1}`;
      await importPublicJwk(jwk, name);
    }
    return { key: createLocalJWKSet(jwks), algorithms: [...PUBLIC_KEY_ALGORITHMS], source: path };
  }
  const { key, alg } = await importPublicJwk(json as JWK, path);
  return { key, algorithms: [alg], source: path };
}

/**
 * Imports a public JWK with the algorithm its type (or `alg`) gives.
 *
 * @throws {KeyError} naming `name` when it is private, of no supported type, or not a key of
 *   the algorithm it says
 */
async function importPublicJwk(
  jwk: JWK,
  name: string,
): Promise<{ key: Verifiable; alg: string }> {
  if (typeof jwk !== "object" || jwk === null) throw new KeyError(`${name} is not a JWK`);
  if ("d" in jwk) throw new KeyError(`${name} holds a private JWK: give the public key`);
  let alg: string;
  try {
    alg = algorithmOfJwk(jwk);
  } catch (error) {
    throw new KeyError(`${name}: ${(error as Error).message}`);
  }
  try {
    return { key: await importJWK(jwk, alg), alg };
  } catch (error) {
    throw new KeyError(`${name} is not a usable ${alg} public key: ${(error as Error).message}`);
  }
}

/** Builds the key set from configuration. */
export async function loadKeys(options: {
  secret: Uint8Array;
  publicKeyFile: string | undefined;
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}): Promise<TokenKeys> {
  let external: TokenKeys["external"];
  if (options.publicKeyFile !== undefined) {
    external = await loadPublicKeyFile(options.publicKeyFile);
  } else if (options.jwksUrl !== undefined) {
    external = {
      // A key the set did not have (a new `kid`) is looked for again after 5 s, not 30.
      key: createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: 5_000 }),
      algorithms: [...PUBLIC_KEY_ALGORITHMS],
      source: options.jwksUrl,
    };
  }
  return { secret: options.secret, external, issuer: options.issuer, audience: options.audience };
}

/**
 * Seconds a token's `nbf` may lie ahead of this server's clock: an identity
 * provider whose clock runs a little ahead issues tokens that would otherwise be refused for
 * their first moments. Expiry has no such leeway (see {@link verifyToken}).
 */
export const CLOCK_LEEWAY_SECONDS = 60;

/** A token past its `exp`, with the code jose gives one (the authenticator tells it by that). */
class TokenExpired extends Error {
  override name = "TokenExpired";
  readonly code = "ERR_JWT_EXPIRED";
}

/**
 * Verifies a token: HS256 against the server's secret, any other algorithm against the
 * external key, each with its pinned algorithms; `exp` is required and checked, `nbf`
 * checked when present (with {@link CLOCK_LEEWAY_SECONDS}), `iss` and `aud` when configured.
 * A token without `kid` checked against a key set with several keys of its type is tried
 * with each of them (the first {@link MAX_KEYS_TRIED}).
 *
 * @throws the jose error (its `code` tells expired from invalid)
 */
export async function verifyToken(keys: TokenKeys, token: string): Promise<JWTPayload> {
  const options = {
    // A token without an expiry would never expire: refused.
    requiredClaims: ["exp"],
    clockTolerance: CLOCK_LEEWAY_SECONDS,
    ...(keys.issuer === undefined ? {} : { issuer: keys.issuer }),
    ...(keys.audience === undefined ? {} : { audience: keys.audience }),
  };
  const header = decodeProtectedHeader(token);
  let payload: JWTPayload;
  if (header.alg === "HS256" || keys.external === undefined) {
    payload = (await jwtVerify(token, keys.secret, { ...options, algorithms: ["HS256"] })).payload;
  } else {
    const { key, algorithms } = keys.external;
    try {
      payload = typeof key === "function"
        ? (await jwtVerify(token, key, { ...options, algorithms })).payload
        : (await jwtVerify(token, key, { ...options, algorithms })).payload;
    } catch (error) {
      if ((error as { code?: string }).code !== "ERR_JWKS_MULTIPLE_MATCHING_KEYS") throw error;
      payload = await verifyWithEach(token, error as AsyncIterable<CryptoKey>, {
        ...options,
        algorithms,
      });
    }
  }
  // The leeway is for a clock ahead at the start of a token's life, not past its end: a
  // stream closes at `exp` exactly, and so is a token refused from then on.
  if (typeof payload.exp === "number" && payload.exp * 1000 <= Date.now()) {
    throw new TokenExpired("The token has expired");
  }
  return payload;
}

/** Most keys of one type a token without `kid` is tried with. */
const MAX_KEYS_TRIED = 8;

/**
 * Tries each of the keys a key set matched for a token that names none (`kid`): the first
 * whose signature holds verifies it (of the first {@link MAX_KEYS_TRIED}).
 */
async function verifyWithEach(
  token: string,
  keys: AsyncIterable<CryptoKey>,
  options: Parameters<typeof jwtVerify>[2],
): Promise<JWTPayload> {
  let last: unknown;
  let tried = 0;
  for await (const key of keys) {
    // A bound on what one token without kid costs (an invalid one is checked anew each time).
    if (++tried > MAX_KEYS_TRIED) break;
    try {
      return (await jwtVerify(token, key, options)).payload;
    } catch (error) {
      if ((error as { code?: string }).code !== "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") {
        throw error;
      }
      last = error;
    }
  }
  throw last;
}

/** Claims of a token the server issues. */
export interface IssuedClaims {
  sub: string;
  scope: string;
  jobs?: string[];
  /** Token id, by which signing out revokes the token (sign-in tokens have one). */
  jti?: string;
  /**
   * Set on tokens of this server's sign-in, to when the user's password and scopes were
   * last set: they end when their user is removed or those change.
   */
  jobwire_login?: string;
}

/** Signs an HS256 token with the server's secret, valid for `ttlMs`. */
export function signToken(
  keys: Pick<TokenKeys, "secret" | "issuer" | "audience">,
  claims: IssuedClaims,
  ttlMs: number,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({
    scope: claims.scope,
    ...(claims.jobs === undefined ? {} : { jobs: claims.jobs }),
    ...(claims.jobwire_login === undefined ? {} : { jobwire_login: claims.jobwire_login }),
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.max(1, Math.round(ttlMs / 1000)));
  if (claims.jti !== undefined) jwt = jwt.setJti(claims.jti);
  if (keys.issuer !== undefined) jwt = jwt.setIssuer(keys.issuer);
  if (keys.audience !== undefined) jwt = jwt.setAudience(keys.audience);
  return jwt.sign(keys.secret);
}
