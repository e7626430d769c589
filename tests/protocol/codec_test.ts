import assert from "node:assert/strict";
import { codecFor, type MessageFormat, type Transport } from "../../src/protocol/codec.ts";
import { type Encoder, WireEvent } from "../../src/hub/wire_event.ts";
import { encodeEnvelope, type StoredEvent } from "../../src/jobs/envelope.ts";
import type { Job } from "../../src/jobs/job.ts";

const TS = "2026-01-01T00:00:10.000Z";
const decoder = new TextDecoder();

function job(overrides: Partial<Job> = {}): Job {
  return {
    id: "job-1",
    kind: "train",
    owner: "alice",
    status: "running",
    progress: 45.5,
    stage: "MCMC",
    message: "sampling",
    eta_seconds: 30,
    created_at: "2026-01-01T00:00:00.000Z",
    queued_at: null,
    started_at: "2026-01-01T00:00:01.000Z",
    updated_at: TS,
    completed_at: null,
    result: null,
    error: null,
    metadata: { team: "ml" },
    last_sequence: 7,
    first_sequence: 1,
    stalled: false,
    ...overrides,
  };
}

function stored(type: string, sequence: number, data: Record<string, unknown>): StoredEvent {
  return {
    job_id: "job-1",
    sequence,
    type,
    envelope: encodeEnvelope(type, "job-1", sequence, TS, data),
  };
}

function wire(
  type: string,
  sequence: number,
  data: Record<string, unknown>,
  /** The job after the event; `null` for an event without one (read back from the store). */
  snapshot: Job | null = job({ last_sequence: sequence }),
): WireEvent {
  return new WireEvent(stored(type, sequence, data), snapshot ?? undefined);
}

function text(frame: string | Uint8Array | undefined): string {
  if (frame === undefined) assert.fail("expected a frame");
  assert.ok(frame instanceof Uint8Array, "expected bytes");
  return decoder.decode(frame);
}

const progressEvent = () => wire("progress", 7, { progress: 45.5, percentage: "45.5%" });

Deno.test("codecFor returns one shared codec per transport and format", () => {
  const transports: Transport[] = ["websocket", "sse", "ndjson"];
  const formats: MessageFormat[] = ["envelope", "snapshot"];
  const ids = new Set<number>();
  for (const t of transports) {
    for (const f of formats) {
      const codec = codecFor(t, f);
      assert.equal(codec, codecFor(t, f));
      assert.equal(codec.transport, t);
      assert.equal(codec.format, f);
      ids.add(codec.events.id);
    }
  }
  assert.equal(ids.size, 6, "every codec needs its own cache slot");
});

Deno.test("websocket envelope codec frames an event as the stored envelope text", () => {
  const event = progressEvent();
  const frame = codecFor("websocket", "envelope").events.encode(event);
  assert.equal(typeof frame, "string");
  assert.equal(frame, event.envelope);
  assert.deepEqual(JSON.parse(frame as string), {
    type: "progress",
    job_id: "job-1",
    sequence: 7,
    timestamp: TS,
    data: { progress: 45.5, percentage: "45.5%" },
  });
});

Deno.test("websocket envelope codec frames log and custom events too", () => {
  const codec = codecFor("websocket", "envelope");
  const log = wire("log", 3, { line: "x", level: "info" });
  const custom = wire("model_deployed", 4, { v: 2 }, null);
  assert.equal(codec.events.encode(log), log.envelope);
  assert.equal(codec.events.encode(custom), custom.envelope);
});

Deno.test("ndjson envelope codec frames an event as the envelope and a newline in bytes", () => {
  const event = progressEvent();
  const frame = codecFor("ndjson", "envelope").events.encode(event);
  assert.equal(text(frame), event.envelope + "\n");
});

Deno.test("sse envelope codec frames id, event name and the envelope as data", () => {
  const event = progressEvent();
  const frame = codecFor("sse", "envelope").events.encode(event);
  assert.equal(text(frame), `id: 7\nevent: progress\ndata: ${event.envelope}\n\n`);
});

Deno.test("sse envelope codec keeps an envelope whose data holds newlines on one data line", () => {
  const event = wire("log", 2, { line: "a\nb\r\nc" });
  const frame = text(codecFor("sse", "envelope").events.encode(event));
  assert.equal(frame, `id: 2\nevent: log\ndata: ${event.envelope}\n\n`);
  assert.equal(frame.split("\n").filter((l) => l.startsWith("data: ")).length, 1);
});

const flat = (j: Job) => ({
  job_id: j.id,
  status: j.status,
  progress: j.progress,
  stage: j.stage,
  message: j.message,
  created_at: j.created_at,
  updated_at: j.updated_at,
  timestamp: j.updated_at,
  estimated_time_remaining: j.eta_seconds === null ? null : Math.round(j.eta_seconds),
  error: j.error === null || j.status === "completed" ? null : j.error.error,
  metadata: j.metadata,
  sequence: j.last_sequence,
});

Deno.test("snapshot codec gives the ETA in whole seconds, as flat progress messages do", () => {
  // An ETA aged between events is fractional in the job's snapshot.
  const event = wire("progress", 8, { progress: 50 }, job({ eta_seconds: 98.747 }));
  const parsed = JSON.parse(codecFor("websocket", "snapshot").events.encode(event) as string);
  assert.equal(parsed.estimated_time_remaining, 99);
  const none = wire("progress", 9, { progress: 51 }, job({ eta_seconds: null }));
  const empty = JSON.parse(codecFor("websocket", "snapshot").events.encode(none) as string);
  assert.equal(empty.estimated_time_remaining, null);
});

Deno.test("snapshot codec gives no error for a completed job that recorded one while running", () => {
  const error = { error: "retrying a shard", error_type: "general" };
  const running = wire("error", 3, error, job({ error }));
  const codec = codecFor("websocket", "snapshot").events;
  assert.equal(JSON.parse(codec.encode(running) as string).error, "retrying a shard");
  const done = wire("status", 4, { status: "completed" }, job({ status: "completed", error }));
  assert.equal(JSON.parse(codec.encode(done) as string).error, null);
  const failed = wire("status", 4, { status: "failed" }, job({ status: "failed", error }));
  assert.equal(JSON.parse(codec.encode(failed) as string).error, "retrying a shard");
});

Deno.test("websocket snapshot codec frames a state change as the flat snapshot", () => {
  const snapshot = job();
  const event = wire("progress", 7, { progress: 45.5 }, snapshot);
  const frame = codecFor("websocket", "snapshot").events.encode(event);
  assert.equal(typeof frame, "string");
  const parsed = JSON.parse(frame as string);
  assert.deepEqual(parsed, flat(snapshot));
  assert.deepEqual(Object.keys(parsed), [
    "job_id",
    "status",
    "progress",
    "stage",
    "message",
    "created_at",
    "updated_at",
    "timestamp",
    "estimated_time_remaining",
    "error",
    "metadata",
    "sequence",
  ]);
});

Deno.test("snapshot codecs frame status, progress, result and error events", () => {
  const snapshot = job({ last_sequence: 9 });
  for (const type of ["status", "progress", "result", "error"]) {
    const event = wire(type, 9, { status: "running" }, snapshot);
    const frame = codecFor("websocket", "snapshot").events.encode(event);
    assert.notEqual(frame, undefined, type);
    assert.equal(JSON.parse(frame as string).sequence, 9);
  }
});

Deno.test("snapshot codecs skip log and custom events", () => {
  for (const transport of ["websocket", "sse", "ndjson"] as const) {
    const codec = codecFor(transport, "snapshot");
    assert.equal(codec.events.encode(wire("log", 3, { line: "x" })), undefined, transport);
    assert.equal(codec.events.encode(wire("model_deployed", 4, {})), undefined, transport);
  }
});

Deno.test("snapshot codecs skip a state change that carries no job", () => {
  for (const transport of ["websocket", "sse", "ndjson"] as const) {
    const event = wire("progress", 3, { progress: 5 }, null);
    assert.equal(codecFor(transport, "snapshot").events.encode(event), undefined, transport);
  }
});

Deno.test("snapshot codec gives the error message as a string, or null without error", () => {
  const failed = job({
    status: "failed",
    error: { error: "disk full", error_type: "system_error", details: { x: 1 } },
  });
  const withError = codecFor("websocket", "snapshot").events.encode(
    wire("error", 7, { error: "disk full" }, failed),
  );
  assert.equal(JSON.parse(withError as string).error, "disk full");
  const withoutError = codecFor("websocket", "snapshot").events.encode(progressEvent());
  assert.equal(JSON.parse(withoutError as string).error, null);
});

Deno.test("ndjson snapshot codec frames the flat snapshot and a newline in bytes", () => {
  const snapshot = job();
  const frame = text(
    codecFor("ndjson", "snapshot").events.encode(wire("status", 7, {}, snapshot)),
  );
  assert.ok(frame.endsWith("\n"));
  assert.equal(frame.indexOf("\n"), frame.length - 1);
  assert.deepEqual(JSON.parse(frame), flat(snapshot));
});

Deno.test("sse snapshot codec frames an id and the flat snapshot without an event name", () => {
  const snapshot = job();
  const frame = text(
    codecFor("sse", "snapshot").events.encode(wire("progress", 7, {}, snapshot)),
  );
  assert.equal(frame, `id: 7\ndata: ${JSON.stringify(flat(snapshot))}\n\n`);
});

Deno.test("session frames: websocket text, ndjson line bytes, sse named or unnamed", () => {
  const json = JSON.stringify({ type: "heartbeat", sequence: null });
  assert.equal(codecFor("websocket", "envelope").session("heartbeat", json), json);
  assert.equal(codecFor("websocket", "snapshot").session("heartbeat", json), json);
  assert.equal(text(codecFor("ndjson", "envelope").session("heartbeat", json)), json + "\n");
  assert.equal(
    text(codecFor("sse", "envelope").session("heartbeat", json)),
    `event: heartbeat\ndata: ${json}\n\n`,
  );
  assert.equal(text(codecFor("sse", "snapshot").session("ping", json)), `data: ${json}\n\n`);
});

Deno.test("withId frames an sse event with the given id and other transports as usual", () => {
  const event = progressEvent();
  assert.equal(
    text(codecFor("sse", "envelope").withId(event, "job-1:7")),
    `id: job-1:7\nevent: progress\ndata: ${event.envelope}\n\n`,
  );
  assert.equal(codecFor("websocket", "envelope").withId(event, "x"), event.envelope);
  assert.equal(text(codecFor("ndjson", "envelope").withId(event, "x")), event.envelope + "\n");
  assert.equal(
    codecFor("sse", "snapshot").withId(wire("log", 1, { line: "x" }), "a"),
    undefined,
  );
});

Deno.test("only the sse codecs have a comment keep-alive", () => {
  assert.equal(text(codecFor("sse", "envelope").comment), ": ping\n\n");
  assert.equal(text(codecFor("sse", "snapshot").comment), ": ping\n\n");
  for (const f of ["envelope", "snapshot"] as const) {
    assert.equal(codecFor("websocket", f).comment, undefined);
    assert.equal(codecFor("ndjson", f).comment, undefined);
  }
});

Deno.test("WireEvent caches each encoding and returns the same bytes twice", () => {
  const event = progressEvent();
  for (const transport of ["sse", "ndjson"] as const) {
    const encoder = codecFor(transport, "envelope").events;
    const first = event.encoded(encoder);
    assert.ok(first instanceof Uint8Array);
    assert.equal(event.encoded(encoder), first, transport);
  }
  const ws = codecFor("websocket", "envelope").events;
  assert.equal(event.encoded(ws), event.envelope);
});

Deno.test("WireEvent keeps a separate cache slot per encoder", () => {
  const event = progressEvent();
  const sse = event.encoded(codecFor("sse", "envelope").events);
  const ndjson = event.encoded(codecFor("ndjson", "envelope").events);
  const snapshot = event.encoded(codecFor("ndjson", "snapshot").events);
  assert.notEqual(sse, ndjson);
  assert.ok(text(sse).startsWith("id: 7\n"));
  assert.equal(text(ndjson), event.envelope + "\n");
  assert.equal(JSON.parse(text(snapshot)).job_id, "job-1");
});

Deno.test("WireEvent calls an encoder once, also when it frames nothing", () => {
  let calls = 0;
  const counting = (value: string | undefined, id: number): Encoder => ({
    id,
    encode() {
      calls++;
      return value;
    },
  });
  const event = progressEvent();
  const some = counting("frame", 40);
  assert.equal(event.encoded(some), "frame");
  assert.equal(event.encoded(some), "frame");
  assert.equal(calls, 1);
  calls = 0;
  const none = counting(undefined, 41);
  assert.equal(event.encoded(none), undefined);
  assert.equal(event.encoded(none), undefined);
  assert.equal(calls, 1);
});

Deno.test("WireEvent exposes the stored event fields", () => {
  const s = stored("log", 5, { line: "x" });
  const event = new WireEvent(s, undefined);
  assert.equal(event.jobId, "job-1");
  assert.equal(event.sequence, 5);
  assert.equal(event.type, "log");
  assert.equal(event.envelope, s.envelope);
  assert.equal(event.job, undefined);
});

Deno.test("WireEvent.statusAfter without the job: a status event's, running for a progress that says so, else unknown", () => {
  const bare = (type: string, data: Record<string, unknown>) =>
    new WireEvent(stored(type, 3, data), undefined);
  assert.equal(bare("status", { status: "failed" }).statusAfter, "failed");
  assert.equal(bare("progress", { progress: 5, status: "running" }).statusAfter, "running");
  assert.equal(bare("progress", { progress: 5 }).statusAfter, undefined);
  assert.equal(
    bare("progress", { progress: 5, step: { status: "running" } }).statusAfter,
    undefined,
  );
  assert.equal(bare("log", { line: '"status":"running"' }).statusAfter, undefined);
  // With the job, the job tells.
  assert.equal(
    wire("progress", 3, { progress: 5 }, job({ status: "queued" })).statusAfter,
    "queued",
  );
});

Deno.test("WireEvent.changesState is true for status, progress, result and error only", () => {
  for (const type of ["status", "progress", "result", "error"]) {
    assert.equal(wire(type, 1, {}).changesState, true, type);
  }
  for (const type of ["log", "model_deployed", "training_progress"]) {
    assert.equal(wire(type, 1, {}).changesState, false, type);
  }
});

Deno.test("WireEvent.terminal is true for a status event that ends the job", () => {
  for (const status of ["completed", "failed", "cancelled"] as const) {
    assert.equal(wire("status", 3, { status }, job({ status })).terminal, true, status);
  }
});

Deno.test("WireEvent.terminal is false for non-terminal statuses and other types", () => {
  assert.equal(
    wire("status", 2, { status: "running" }, job({ status: "running" })).terminal,
    false,
  );
  assert.equal(wire("status", 2, { status: "queued" }, null).terminal, false);
  assert.equal(wire("log", 2, { line: "x" }, job({ status: "completed" })).terminal, false);
  assert.equal(wire("result", 2, { results: 1 }, job({ status: "completed" })).terminal, false);
});

Deno.test("WireEvent.terminal reads the status from the envelope when there is no job", () => {
  assert.equal(wire("status", 3, { status: "completed" }, null).terminal, true);
  assert.equal(wire("status", 3, { status: "failed" }, null).terminal, true);
  assert.equal(wire("status", 3, { status: "cancelled" }, null).terminal, true);
  assert.equal(wire("status", 3, { status: "running" }, null).terminal, false);
});
