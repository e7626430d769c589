/**
 * Opaque cursors of job lists: the sort key of the last job on a page.
 *
 * @module
 */

/** Encodes the position after a job (newest-first order: created_at, then id). */
export function encodeCursor(job: { created_at: string; id: string }): string {
  return btoa(JSON.stringify([job.created_at, job.id])).replaceAll("=", "");
}

/** Decodes a list cursor; `undefined` for anything this server did not make. */
export function decodeCursor(cursor: string): { created_at: string; id: string } | undefined {
  try {
    const value = JSON.parse(atob(cursor)) as unknown;
    if (
      Array.isArray(value) && value.length === 2 && typeof value[0] === "string" &&
      typeof value[1] === "string"
    ) {
      return { created_at: value[0], id: value[1] };
    }
  } catch {
    // Malformed base64 or JSON: not a cursor this server made.
  }
  return undefined;
}
