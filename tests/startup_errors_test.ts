import assert from "node:assert/strict";
import { startupFailure, StartupRefusal } from "../src/startup_errors.ts";

function sqliteError(message: string): Error {
  return Object.assign(new Error(message), { code: "ERR_SQLITE_ERROR" });
}

Deno.test("start-up refusals of the machine are told in words; faults of jobwire's are not", () => {
  assert.equal(
    startupFailure(sqliteError("/data/jobwire.db: file is not a database")),
    "cannot use the database: /data/jobwire.db: file is not a database",
  );
  assert.equal(
    startupFailure(sqliteError("/data/jobwire.db: disk I/O error")),
    "cannot use the database: /data/jobwire.db: disk I/O error (is the disk full or failing?)",
  );
  assert.equal(startupFailure(new StartupRefusal("schema too new")), "schema too new");
  assert.match(startupFailure(new Deno.errors.AddrInUse("taken")) ?? "", /address is in use/);
  assert.equal(startupFailure(new TypeError("a bug")), undefined);
  assert.equal(startupFailure(new RangeError("a bug")), undefined);
  assert.equal(startupFailure("not an error"), undefined);
});
