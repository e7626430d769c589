/**
 * Password hashing with scrypt (`node:crypto`) and a random salt per user.
 *
 * @module
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/** scrypt cost parameters (N = 2^14, r = 8, p = 1: about 16 MiB and a few tens of ms). */
const COST = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_BYTES = 64;
const SALT_BYTES = 16;

function derive(password: string, salt: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, KEY_BYTES, COST, (error, key) => {
      if (error) reject(error);
      else resolve(new Uint8Array(key));
    });
  });
}

/** Hashes a password with a fresh salt; both are returned base64-encoded. */
export async function hashPassword(password: string): Promise<{ salt: string; hash: string }> {
  const salt = new Uint8Array(randomBytes(SALT_BYTES));
  const hash = await derive(password, salt);
  return { salt: toBase64(salt), hash: toBase64(hash) };
}

/** Whether `password` matches; compares in constant time. */
export async function verifyPassword(
  password: string,
  salt: string,
  hash: string,
): Promise<boolean> {
  const expected = fromBase64(hash);
  const actual = await derive(password, fromBase64(salt));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** A salt and hash that match no password: verifying against it costs the same as a real user. */
export const DUMMY_CREDENTIAL = { salt: "AAAAAAAAAAAAAAAAAAAAAA==", hash: "A".repeat(86) + "==" };

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
