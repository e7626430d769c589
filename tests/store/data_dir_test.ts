/**
 * The files of a data directory that are not the database: the secret, made whole or not at
 * all, and the lock, which refuses what it cannot hold.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { loadOrCreateSecret } from "../../src/auth/secret.ts";
import { guardDataDir, lockDataDir } from "../../src/store/data_lock.ts";
import { ConfigError } from "../../src/config.ts";
import { openSqliteStore, SqliteStore } from "../../src/store/sqlite_store.ts";
import { StartupRefusal } from "../../src/startup_errors.ts";
import { migrate } from "../../src/store/migrations.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, tokenFor } from "../_helpers/tokens.ts";
import { createJob, http, logEvent, publish, waitFor } from "../_helpers/clients.ts";

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-datadir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the secret is made whole, leaves no draft, and is kept; an empty one left over is replaced", async () => {
  await withDir((dir) => {
    const made = loadOrCreateSecret(dir, undefined);
    assert.equal(made.created, true);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["jwt-secret"]);
    const again = loadOrCreateSecret(dir, undefined);
    assert.deepEqual([again.created, again.secret], [false, made.secret]);
    // A file left empty (a disk that filled while an older version wrote it in place).
    Deno.writeTextFileSync(join(dir, "jwt-secret"), "");
    const fresh = loadOrCreateSecret(dir, undefined);
    assert.equal(fresh.created, true);
    assert.ok(new TextDecoder().decode(fresh.secret).length >= 32);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["jwt-secret"]);
    // A short secret someone wrote is not replaced: the operator is told, in one line.
    Deno.writeTextFileSync(join(dir, "jwt-secret"), "short\n");
    assert.throws(() => loadOrCreateSecret(dir, undefined), StartupRefusal);
  });
});

Deno.test("a lock file that is not a database is refused, naming it", async () => {
  await withDir((dir) => {
    Deno.writeTextFileSync(join(dir, "jobwire.lock"), "garbage ".repeat(200));
    assert.throws(() => lockDataDir(dir), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /jobwire\.lock: .*file is not a database.*delete it/);
      return true;
    });
  });
});

Deno.test("a database opened read-only is refused as one that cannot be written", async () => {
  await withDir((dir) => {
    openSqliteStore(dir, { maxEventsPerJob: 100, checkpoints: "elsewhere" }).close();
    const path = join(dir, "jobwire.db");
    const store = new SqliteStore(new DatabaseSync(path, { readOnly: true }), {
      maxEventsPerJob: 100,
      checkpoints: "elsewhere",
    }, path);
    try {
      assert.throws(() => store.assertWritable(), (error: unknown) => {
        assert.ok(error instanceof StartupRefusal);
        assert.match(error.message, /cannot write the database .*jobwire\.db: .*readonly/);
        return true;
      });
    } finally {
      store.close();
    }
    const writable = openSqliteStore(dir, { maxEventsPerJob: 100, checkpoints: "elsewhere" });
    writable.assertWritable();
    writable.close();
  });
});

Deno.test("a migration that SQLite rolled back itself (a full disk) fails with SQLite's words, not a failed ROLLBACK", () => {
  const dir = Deno.makeTempDirSync({ prefix: "jobwire-migrate-" });
  const db = new DatabaseSync(join(dir, "jobwire.db"));
  try {
    // As SQLITE_FULL does: the transaction is rolled back by SQLite, then the error comes.
    const full = new Proxy(db, {
      get(target, name) {
        if (name === "exec") {
          return (sql: string) => {
            if (sql.startsWith("PRAGMA user_version =")) {
              target.exec("ROLLBACK");
              throw new Error("database or disk is full");
            }
            return target.exec(sql);
          };
        }
        const value = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    assert.throws(() => migrate(full), /^Error: database or disk is full$/);
    assert.equal(db.isTransaction, false);
  } finally {
    db.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a directory where the database belongs is refused and left as it was", () => {
  const dir = Deno.makeTempDirSync({ prefix: "jobwire-dbdir-" });
  try {
    const inTheWay = join(dir, "jobwire.db");
    Deno.mkdirSync(inTheWay, { mode: 0o755 });
    Deno.chmodSync(inTheWay, 0o755);
    const warnings = guardDataDir(dir);
    assert.deepEqual(warnings.filter((w) => w.includes("jobwire.db")), []);
    assert.equal(Deno.statSync(inTheWay).mode! & 0o777, 0o755);
    assert.throws(
      () => openSqliteStore(dir, { maxEventsPerJob: 100, checkpoints: "elsewhere" }),
      Deno.errors.IsADirectory,
    );
    assert.equal(Deno.statSync(inTheWay).mode! & 0o777, 0o755);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a data directory deleted while the server runs: writes are refused and /healthz says so, nothing is acknowledged to be lost", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("kept"));
    await Deno.remove(server.dataDir, { recursive: true });
    await waitFor(
      async () => (await http(server.url, "GET", "/healthz")).status === 503,
      10_000,
      "/healthz to say the database is gone",
    );
    const refused = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("lost"));
    assert.equal(refused.status, 503, refused.text);
    assert.match(refused.json.error.message, /removed or replaced while the server ran/);
    const create = await http(server.url, "POST", "/jobs", {});
    assert.equal(create.status, 503, create.text);
    assert.match(
      await http(server.url, "GET", "/metrics").then((r) => r.text),
      /jobwire_storage_errors_total [1-9]/,
    );
  });
});

Deno.test("guardDataDir takes away only what others may do: a database its owner made read-only stays read-only", () => {
  const dir = Deno.makeTempDirSync({ prefix: "jobwire-guard-" });
  try {
    const db = join(dir, "jobwire.db");
    Deno.writeFileSync(db, new Uint8Array());
    Deno.chmodSync(db, 0o444);
    const warnings = guardDataDir(dir);
    assert.equal(Deno.statSync(db).mode! & 0o777, 0o400);
    assert.ok(
      warnings.some((w) => /jobwire\.db .*\(mode 444\): made it 0400/.test(w)),
      warnings.join(),
    );
    const secret = join(dir, "jwt-secret");
    Deno.writeTextFileSync(secret, "x");
    Deno.chmodSync(secret, 0o644);
    guardDataDir(dir);
    assert.equal(Deno.statSync(secret).mode! & 0o777, 0o600);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the first write after the data directory is deleted is refused, without waiting for the next check", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("kept"));
    await Deno.remove(server.dataDir, { recursive: true });
    // At once, before the once-a-second check could have looked.
    const refused = await http(server.url, "POST", `/jobs/${id}/events`, logEvent("lost"));
    assert.equal(refused.status, 503, refused.text);
    assert.match(refused.json.error.message, /removed or replaced while the server ran/);
    assert.equal((await http(server.url, "POST", "/jobs", {})).status, 503);
    assert.equal((await http(server.url, "GET", "/healthz")).status, 503);
  });
});

Deno.test("sign-in writes are refused too once the data directory is deleted", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("alice", "read write");
    const auth = { authorization: `Bearer ${token}` };
    const id = (await http(server.url, "POST", "/jobs", {}, auth)).json.job.id;
    await Deno.remove(server.dataDir, { recursive: true });
    const ticket = await http(server.url, "POST", "/tickets", { job_id: id }, auth);
    assert.equal(ticket.status, 503, ticket.text);
    assert.match(ticket.json.error.message, /removed or replaced while the server ran/);
  });
});

Deno.test("deleteJob with the created_at the caller checked deletes only that job, not one made again since", () => {
  const dir = Deno.makeTempDirSync({ prefix: "jobwire-delete-" });
  const store = openSqliteStore(dir, { maxEventsPerJob: 100, checkpoints: "elsewhere" });
  try {
    const first = store.createJob({ id: "j", kind: null, owner: "a", metadata: {} }, 1000);
    assert.ok(first.ok);
    assert.equal(store.deleteJob("j", 2000), true);
    const again = store.createJob({ id: "j", kind: null, owner: "b", metadata: {} }, 3000);
    assert.ok(again.ok);
    assert.equal(store.deleteJob("j", 4000, first.job.created_at), false);
    assert.equal(store.getJob("j")?.owner, "b");
    assert.equal(store.deleteJob("j", 5000, again.job.created_at), true);
  } finally {
    store.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a write that does not wait for the lock, run within another, leaves the outer one not waiting either", () => {
  const dir = Deno.makeTempDirSync({ prefix: "jobwire-nowait-" });
  const path = join(dir, "jobwire.db");
  const db = new DatabaseSync(path);
  const store = new SqliteStore(db, { maxEventsPerJob: 100, checkpoints: "elsewhere" }, path);
  const timeout = () => (db.prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout;
  try {
    const inside = store.withoutBlocking(() => {
      store.withoutBlocking(() => timeout());
      return timeout();
    });
    assert.equal(inside, 0, "the outer write would wait in SQLite after the inner one");
    assert.equal(timeout(), 2000, "SQLite's wait is back once the outer write is done");
  } finally {
    store.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
