/**
 * Who is asking, and what they may do with a job (DESIGN §6 scopes).
 *
 * @module
 */
import type { Job } from "../jobs/job.ts";
import type { RevocableToken } from "./authenticator.ts";

/** Scopes a token may carry in its space-separated `scope` claim. */
export const SCOPES = ["read", "read:all", "write", "write:all", "admin"] as const;

/** One scope. */
export type Scope = typeof SCOPES[number];

/** The caller of a request or the owner of a stream. */
export interface Principal {
  /** The token's `sub`: the owner of jobs this principal creates. `null` when open. */
  readonly sub: string | null;
  readonly scopes: ReadonlySet<Scope>;
  /** Job ids granted by the token's `jobs` claim, readable whoever owns them. */
  readonly jobs: ReadonlySet<string>;
  /** When the credential stops being valid (epoch ms), or `null` for never. */
  readonly expiresAt: number | null;
  /**
   * The token behind it, when it can be revoked (it has an id): asked again by streams and
   * tickets, which outlive the request that checked it. A ticket's is its issuer's token.
   */
  readonly token?: RevocableToken | undefined;
  /**
   * For jobs of `jobs` that are granted as one job, not by id (a stream ticket): when that
   * job was created. A job made again under the id is another job, and not granted.
   */
  readonly jobsCreatedAt?: ReadonlyMap<string, string>;
}

/** The principal of a server running with `--no-auth`: allowed everything. */
export const OPEN_PRINCIPAL: Principal = Object.freeze({
  sub: null,
  scopes: new Set<Scope>(SCOPES),
  jobs: new Set<string>(),
  expiresAt: null,
});

/** Whether the principal holds `admin`. */
export function isAdmin(p: Principal): boolean {
  return p.scopes.has("admin");
}

/** Whether the principal may see every job. */
export function canReadAll(p: Principal): boolean {
  return isAdmin(p) || p.scopes.has("read:all") || p.scopes.has("write:all");
}

/** Whether the principal may see a job and follow its events. */
export function canRead(p: Principal, job: Pick<Job, "id" | "owner" | "created_at">): boolean {
  if (canReadAll(p)) return true;
  // Reading is what `read` grants (or `write`, which includes it): on own jobs and on those
  // a `jobs` claim lists. A token with neither scope reads nothing.
  if (!p.scopes.has("read") && !p.scopes.has("write")) return false;
  if (p.jobs.has(job.id)) {
    const created = p.jobsCreatedAt?.get(job.id);
    if (created === undefined || created === job.created_at) return true;
  }
  return p.sub !== null && job.owner === p.sub;
}

/** Whether the principal may publish to, and delete, every job. */
export function canWriteAll(p: Principal): boolean {
  return isAdmin(p) || p.scopes.has("write:all");
}

/** Whether the principal may publish to, or delete, a job. */
export function canWrite(p: Principal, job: Pick<Job, "id" | "owner">): boolean {
  if (canWriteAll(p)) return true;
  return p.sub !== null && job.owner === p.sub && p.scopes.has("write");
}

/** Whether the principal may create jobs. */
export function canCreate(p: Principal): boolean {
  return isAdmin(p) || p.scopes.has("write") || p.scopes.has("write:all");
}
