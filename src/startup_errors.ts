/**
 * The machine's refusals at start-up, said in one line: a port in use, a data directory
 * that cannot be made, a file that is not a database, a host name that does not resolve.
 * Anything else is a fault of jobwire's own, and keeps its stack trace.
 *
 * @module
 */

/**
 * A refusal to start whose message says it all (a database from a newer jobwire, a secret
 * file that cannot be used): told in one line, not as a fault with a stack trace.
 */
export class StartupRefusal extends RangeError {
  override name = "StartupRefusal";
}

/** What went wrong, in words for the operator, or `undefined` for a fault of jobwire's. */
export function startupFailure(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error instanceof StartupRefusal) return error.message;
  if (error instanceof Deno.errors.AddrInUse) {
    return `cannot listen: the address is in use (another server, or a jobwire still ` +
      `shutting down): ${error.message}`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `cannot listen: the address is not one of this machine's: ${error.message}`;
  }
  if (/failed to lookup address|Name or service not known/i.test(error.message)) {
    return `cannot resolve the host to listen on: ${error.message}`;
  }
  const code = (error as { code?: unknown }).code;
  if (code === "ERR_SQLITE_ERROR") {
    // SQLite says "disk I/O error" when it cannot make the WAL's files on a full disk.
    const hint = /disk I\/O error/i.test(error.message) ? " (is the disk full or failing?)" : "";
    return `cannot use the database: ${error.message}${hint}`;
  }
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
    // Node-style file system errors: EEXIST, ENOTDIR, EACCES, EROFS, ENOSPC…
    return `cannot use the data directory: ${error.message}`;
  }
  for (
    const kind of [
      Deno.errors.PermissionDenied,
      Deno.errors.NotFound,
      Deno.errors.AlreadyExists,
      Deno.errors.NotADirectory,
      Deno.errors.IsADirectory,
      Deno.errors.ConnectionRefused,
    ]
  ) {
    if (error instanceof kind) return error.message;
  }
  return undefined;
}
