import assert from "node:assert/strict";
import {
  canTransition,
  isTerminal,
  JOB_STATUSES,
  type JobStatus,
  normalizeStatus,
} from "../../src/jobs/status.ts";

/** DESIGN §2: the allowed moves, written out independently of the code under test. */
const ALLOWED: Record<JobStatus, readonly JobStatus[]> = {
  pending: ["pending", "queued", "running", "failed", "cancelled"],
  queued: ["queued", "running", "failed", "cancelled"],
  running: ["running", "completed", "failed", "cancelled"],
  completed: [],
  failed: [],
  cancelled: [],
};

Deno.test("JOB_STATUSES lists the six canonical statuses in lifecycle order", () => {
  assert.deepEqual([...JOB_STATUSES], [
    "pending",
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
  ]);
});

Deno.test("normalizeStatus returns canonical statuses unchanged", () => {
  for (const status of JOB_STATUSES) assert.equal(normalizeStatus(status), status);
});

Deno.test("normalizeStatus maps the input aliases to canonical statuses", () => {
  assert.equal(normalizeStatus("in_progress"), "running");
  assert.equal(normalizeStatus("processing"), "running");
  assert.equal(normalizeStatus("processed"), "completed");
  assert.equal(normalizeStatus("canceled"), "cancelled");
});

Deno.test("normalizeStatus ignores letter case for statuses and aliases", () => {
  assert.equal(normalizeStatus("RUNNING"), "running");
  assert.equal(normalizeStatus("Completed"), "completed");
  assert.equal(normalizeStatus("IN_PROGRESS"), "running");
  assert.equal(normalizeStatus("Processing"), "running");
  assert.equal(normalizeStatus("PROCESSED"), "completed");
  assert.equal(normalizeStatus("CANCELED"), "cancelled");
  assert.equal(normalizeStatus("cAnCeLlEd"), "cancelled");
});

Deno.test("normalizeStatus trims surrounding whitespace", () => {
  assert.equal(normalizeStatus("  queued\n"), "queued");
});

Deno.test("normalizeStatus returns undefined when the input names no status", () => {
  for (const input of ["", "done", "finished", "run", "in progress", "complete", "__proto__"]) {
    assert.equal(normalizeStatus(input), undefined, input);
  }
});

Deno.test("canTransition matches the DESIGN table for every pair of statuses", () => {
  for (const from of JOB_STATUSES) {
    for (const to of JOB_STATUSES) {
      assert.equal(
        canTransition(from, to),
        ALLOWED[from].includes(to),
        `${from} -> ${to}`,
      );
    }
  }
});

Deno.test("canTransition lets a non-terminal status repeat itself", () => {
  assert.equal(canTransition("pending", "pending"), true);
  assert.equal(canTransition("queued", "queued"), true);
  assert.equal(canTransition("running", "running"), true);
});

Deno.test("canTransition refuses every move out of a terminal status", () => {
  for (const from of ["completed", "failed", "cancelled"] as const) {
    for (const to of JOB_STATUSES) assert.equal(canTransition(from, to), false, `${from} -> ${to}`);
  }
});

Deno.test("canTransition refuses going backwards or skipping running to completed", () => {
  assert.equal(canTransition("running", "queued"), false);
  assert.equal(canTransition("running", "pending"), false);
  assert.equal(canTransition("queued", "pending"), false);
  assert.equal(canTransition("pending", "completed"), false);
  assert.equal(canTransition("queued", "completed"), false);
});

Deno.test("isTerminal is true for completed, failed and cancelled only", () => {
  assert.deepEqual(JOB_STATUSES.filter(isTerminal), ["completed", "failed", "cancelled"]);
  assert.equal(isTerminal("pending"), false);
  assert.equal(isTerminal("queued"), false);
  assert.equal(isTerminal("running"), false);
});
