/**
 * Storage of users, stream tickets and failed logins, in the same SQLite database as the
 * events (tickets must work across isolates, so they cannot live in memory).
 *
 * @module
 */
import type { RevocableToken } from "../auth/authenticator.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";

const SQL = {
  insertUser: `INSERT INTO users (username, salt, hash, scopes, created_at, changed_at)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (username) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,
    scopes = excluded.scopes, changed_at = excluded.changed_at`,
  selectUser:
    `SELECT username, salt, hash, scopes, created_at, changed_at FROM users WHERE username = ?`,
  selectUsers:
    `SELECT username, salt, hash, scopes, created_at, changed_at FROM users ORDER BY username`,
  deleteUser: `DELETE FROM users WHERE username = ?`,
  insertTicket:
    `INSERT INTO tickets (id, job_id, principal, origin, expires_at) VALUES (?, ?, ?, ?, ?)`,
  takeTicket: `DELETE FROM tickets WHERE id = ? RETURNING job_id, principal, origin, expires_at`,
  peekTicket: `SELECT job_id, principal, origin, expires_at FROM tickets WHERE id = ?`,
  expireTickets: `DELETE FROM tickets WHERE expires_at < ?`,
  insertFailure: `INSERT INTO login_failures (key, at) VALUES (?, ?)`,
  countFailures:
    `SELECT COUNT(*) AS n, MIN(at) AS first FROM login_failures WHERE key = ? AND at >= ?`,
  clearFailures: `DELETE FROM login_failures WHERE key = ?`,
  forgetFailure: `DELETE FROM login_failures
    WHERE rowid = (SELECT rowid FROM login_failures WHERE key = ? AND at = ? LIMIT 1)`,
  expireFailures: `DELETE FROM login_failures WHERE at < ?`,
  insertRevoked: `INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) VALUES (?, ?)`,
  selectRevoked: `SELECT 1 AS revoked FROM revoked_tokens WHERE jti = ?`,
  expireRevoked: `DELETE FROM revoked_tokens WHERE expires_at < ?`,
} as const;

/** A stored user: scrypt hash and salt (base64), scopes. */
export interface UserRecord {
  username: string;
  salt: string;
  hash: string;
  scopes: string[];
  created_at: string;
  /** When the password or scopes were last set (the creation time for users stored before). */
  changed_at?: string;
}

/** What a ticket grants, frozen at issue. */
export interface TicketGrant {
  sub: string | null;
  /** Expiry of the token the ticket was issued with (epoch ms), or null. */
  expiresAt: number | null;
  /** That token, when it can be revoked: a ticket dies with it. */
  token?: RevocableToken;
  /** When the job was created: a job made again under its id is not the ticket's. */
  jobCreatedAt?: string;
}

/** A ticket taken (and thereby used up). */
export interface TakenTicket {
  jobId: string;
  grant: TicketGrant;
  origin: string | null;
  expiresAt: number;
}

/** Users, tickets and login failures. */
export class AuthStore {
  #db: DatabaseSync;
  #statements = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  #stmt(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Adds a user, or replaces the password and scopes of an existing one. */
  putUser(user: UserRecord): void {
    this.#stmt(SQL.insertUser).run(
      user.username,
      user.salt,
      user.hash,
      user.scopes.join(" "),
      user.created_at,
      user.changed_at ?? user.created_at,
    );
  }

  getUser(username: string): UserRecord | undefined {
    const row = this.#stmt(SQL.selectUser).get(username) as Record<string, unknown> | undefined;
    return row === undefined ? undefined : toUser(row);
  }

  listUsers(): UserRecord[] {
    return (this.#stmt(SQL.selectUsers).all() as Record<string, unknown>[]).map(toUser);
  }

  /** Removes a user; false when there was none. */
  removeUser(username: string): boolean {
    return this.#stmt(SQL.deleteUser).run(username).changes > 0;
  }

  saveTicket(
    id: string,
    jobId: string,
    grant: TicketGrant,
    origin: string | null,
    expiresAt: number,
  ): void {
    this.#stmt(SQL.insertTicket).run(id, jobId, JSON.stringify(grant), origin, expiresAt);
  }

  /** Takes a ticket out (single use): later calls with the same id find nothing. */
  takeTicket(id: string): TakenTicket | undefined {
    return ticketOf(this.#stmt(SQL.takeTicket).get(id) as Record<string, unknown> | undefined);
  }

  /** Reads a ticket and leaves it (for a HEAD request, which opens no stream). */
  peekTicket(id: string): TakenTicket | undefined {
    return ticketOf(this.#stmt(SQL.peekTicket).get(id) as Record<string, unknown> | undefined);
  }

  /**
   * Counts a sign-in attempt as a failure under each key, unless a key has `limit` failures
   * since `since` already: then nothing is recorded and that key's oldest failure is
   * returned (when it leaves the window). The count and the record are one write
   * transaction, so attempts on every isolate and process are counted against the limit one
   * after the other, never two against the same count.
   */
  recordLoginAttempt(
    limits: readonly (readonly [key: string, limit: number])[],
    since: number,
    now: number,
  ): { key: string; first: number } | undefined {
    const attempt = () => {
      const refused = this.loginRefusal(limits, since, now);
      if (refused !== undefined) return refused;
      for (const [key] of limits) this.#stmt(SQL.insertFailure).run(key, now);
      return undefined;
    };
    if (this.#db.isTransaction) return attempt();
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const refused = attempt();
      this.#db.exec("COMMIT");
      return refused;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /**
   * The first key with `limit` failures since `since`, and its oldest failure (when it
   * leaves the window); `undefined` when every key is under its limit.
   */
  loginRefusal(
    limits: readonly (readonly [key: string, limit: number])[],
    since: number,
    now: number,
  ): { key: string; first: number } | undefined {
    for (const [key, limit] of limits) {
      const failures = this.loginFailures(key, since);
      if (failures.count >= limit) return { key, first: failures.first ?? now };
    }
    return undefined;
  }

  loginFailures(key: string, since: number): { count: number; first: number | null } {
    const row = this.#stmt(SQL.countFailures).get(key, since) as Record<string, unknown>;
    return { count: Number(row.n), first: row.first === null ? null : Number(row.first) };
  }

  clearLoginFailures(key: string): void {
    this.#stmt(SQL.clearFailures).run(key);
  }

  /** Forgets one failure of `key` recorded at `at` (an attempt that turned out right). */
  forgetLoginFailure(key: string, at: number): void {
    this.#stmt(SQL.forgetFailure).run(key, at);
  }

  /** Refuses the token with this `jti` from now on, until it would expire anyway (epoch ms). */
  revokeToken(jti: string, expiresAt: number): void {
    this.#stmt(SQL.insertRevoked).run(jti, expiresAt);
  }

  /** Whether the token with this `jti` was revoked. */
  isRevoked(jti: string): boolean {
    return this.#stmt(SQL.selectRevoked).get(jti) !== undefined;
  }

  /** Forgets expired tickets, old login failures and revocations of expired tokens. */
  sweep(now: number, failuresBefore: number): void {
    this.#stmt(SQL.expireTickets).run(now);
    this.#stmt(SQL.expireFailures).run(failuresBefore);
    this.#stmt(SQL.expireRevoked).run(now);
  }
}

function toUser(row: Record<string, unknown>): UserRecord {
  return {
    username: String(row.username),
    salt: String(row.salt),
    hash: String(row.hash),
    scopes: String(row.scopes).split(" ").filter((s) => s !== ""),
    created_at: String(row.created_at),
    changed_at: row.changed_at === null || row.changed_at === undefined
      ? String(row.created_at)
      : String(row.changed_at),
  };
}

/** A ticket's row as its fields. */
function ticketOf(row: Record<string, unknown> | undefined): TakenTicket | undefined {
  if (row === undefined) return undefined;
  return {
    jobId: String(row.job_id),
    grant: JSON.parse(String(row.principal)) as TicketGrant,
    origin: row.origin === null ? null : String(row.origin),
    expiresAt: Number(row.expires_at),
  };
}
