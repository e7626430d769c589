/**
 * Random identifiers for idempotency keys and client-chosen job ids. Uses
 * `crypto.getRandomValues`, which (unlike `crypto.randomUUID`) browsers also offer on
 * plain-HTTP pages.
 *
 * @module
 */

/** A random version 4 UUID, such as `"3b241101-e2bb-4255-8caf-4136c566a962"`. */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
