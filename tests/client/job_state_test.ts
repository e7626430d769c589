import assert from "node:assert/strict";
import { applyEvent, type JobEvent, type JobSnapshot } from "../../src/client/mod.ts";

const base: JobSnapshot = {
  id: "j",
  kind: null,
  owner: null,
  status: "pending",
  progress: 0,
  stage: null,
  message: null,
  eta_seconds: null,
  created_at: "2026-01-01T00:00:00.000Z",
  queued_at: null,
  started_at: null,
  updated_at: "2026-01-01T00:00:00.000Z",
  completed_at: null,
  result: null,
  has_result: false,
  error: null,
  metadata: {},
  last_sequence: 0,
};

const event = (sequence: number, type: string, data: Record<string, unknown>): JobEvent => ({
  type,
  job_id: "j",
  sequence,
  timestamp: `2026-01-01T00:00:0${sequence}.000Z`,
  data,
});

Deno.test("applyEvent folds status, progress, result and error like the server", () => {
  let job = applyEvent(base, event(1, "status", { status: "running", message: "go" }));
  assert.equal(job.status, "running");
  assert.equal(job.started_at, "2026-01-01T00:00:01.000Z");
  assert.equal(job.message, "go");
  job = applyEvent(job, event(2, "progress", { progress: 40, stage: "fit", eta_seconds: 12 }));
  assert.deepEqual([job.progress, job.stage, job.eta_seconds], [40, "fit", 12]);
  job = applyEvent(job, event(3, "error", { error: "disk", error_type: "system_error" }));
  assert.deepEqual(job.error, { error: "disk", error_type: "system_error" });
  job = applyEvent(job, event(4, "result", { results: { ok: 1 } }));
  assert.deepEqual([job.result, job.has_result], [{ ok: 1 }, true]);
  job = applyEvent(job, event(5, "status", { status: "completed" }));
  assert.deepEqual([job.status, job.progress, job.eta_seconds], ["completed", 100, 0]);
  assert.equal(job.completed_at, "2026-01-01T00:00:05.000Z");
  assert.equal(job.last_sequence, 5);
});

Deno.test("applyEvent ignores events the snapshot already reflects", () => {
  const job = { ...base, status: "completed" as const, progress: 100, last_sequence: 5 };
  assert.equal(applyEvent(job, event(3, "progress", { progress: 10 })), job);
});
