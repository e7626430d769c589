import assert from "node:assert/strict";
import { applyEvent, type JobEvent, type JobSnapshot } from "../../src/client/mod.ts";
import { createJob, http, publish } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";

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

Deno.test("applyEvent folds a job's events into what the server holds: a progress that says running starts it, an end without words clears the message", async () => {
  await withServer({}, async (server) => {
    for (const end of ["completed", "cancelled"]) {
      const id = await createJob(server.url);
      const start = (await http(server.url, "GET", `/jobs/${id}`)).json as JobSnapshot;
      await publish(server.url, id, {
        type: "progress",
        data: { progress: 30, status: "in_progress", message: "Transcribing…", stage: "t" },
      });
      let job = (await http(server.url, "GET", `/jobs/${id}`)).json as JobSnapshot;
      assert.equal(job.status, "running");
      await publish(server.url, id, { type: "progress", data: { progress: 40, eta_seconds: 600 } });
      await new Promise((resolve) => setTimeout(resolve, 30));
      // A log line later: the ETA it leaves is as of the line, not back at 600.
      await publish(server.url, id, { type: "log", data: { line: "x" } });
      job = (await http(server.url, "GET", `/jobs/${id}`)).json as JobSnapshot;
      const eta = job.eta_seconds!;
      assert.ok(eta < 600 && eta > 590, `eta ${eta}`);
      const sofar = (await http(server.url, "GET", `/jobs/${id}/events?since=0`)).json;
      const foldedSofar = (sofar.events as JobEvent[]).reduce(applyEvent, start);
      assert.equal(foldedSofar.eta_seconds, eta);
      assert.equal(foldedSofar.updated_at, job.updated_at);
      await publish(server.url, id, { type: "status", data: { status: end } });
      job = (await http(server.url, "GET", `/jobs/${id}`)).json as JobSnapshot;
      const page = (await http(server.url, "GET", `/jobs/${id}/events?since=0`)).json;
      const folded = (page.events as JobEvent[]).reduce(applyEvent, start);
      for (const key of ["status", "message", "stage", "progress", "started_at", "completed_at"]) {
        const field = key as keyof JobSnapshot;
        assert.deepEqual(folded[field], job[field], `${end}: ${key}`);
      }
      assert.equal(job.message, null);
    }
  });
});

Deno.test("applyEvent clears the words of the wait when a job starts without words of its own, as the server does", async () => {
  await withServer({}, async (server) => {
    for (const start of ["status", "progress"] as const) {
      const id = await createJob(server.url);
      const created = (await http(server.url, "GET", `/jobs/${id}`)).json as JobSnapshot;
      await publish(server.url, id, {
        type: "status",
        data: { status: "queued", message: "Position 2 in queue" },
      });
      await publish(
        server.url,
        id,
        start === "status"
          ? { type: "status", data: { status: "running" } }
          : { type: "progress", data: { progress: 5, status: "running" } },
      );
      const job = (await http(server.url, "GET", `/jobs/${id}`)).json as JobSnapshot;
      assert.equal(job.status, "running");
      assert.equal(job.message, null, start);
      const page = (await http(server.url, "GET", `/jobs/${id}/events?since=0`)).json;
      const folded = (page.events as JobEvent[]).reduce(applyEvent, created);
      assert.equal(folded.status, "running");
      assert.equal(folded.message, null, start);
    }
  });
});
