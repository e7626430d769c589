/**
 * Opaque cursors of job lists: the insertion position (SQLite rowid) of the last job on
 * a page. Newest first is descending insertion order, which, unlike `created_at`, never
 * ties.
 *
 * @module
 */

/** Encodes the position after a job. */
export function encodeCursor(position: number): string {
  return btoa(`j${position}`).replaceAll("=", "");
}

/** Decodes a list cursor; `undefined` for anything this server did not make. */
export function decodeCursor(cursor: string): number | undefined {
  try {
    const match = /^j(\d{1,18})$/.exec(atob(cursor));
    if (match !== null) return Number(match[1]);
  } catch {
    // Malformed base64: not a cursor this server made.
  }
  return undefined;
}
