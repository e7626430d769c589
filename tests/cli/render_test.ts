import assert from "node:assert/strict";
import { retryDelay } from "../../src/cli/watch.ts";
import { createOutput } from "../../src/cli/watch_output.ts";
import {
  eventLine,
  formatDuration,
  formatPercent,
  progressBar,
  remainingSeconds,
  statusLine,
  summaryLine,
} from "../../src/cli/render.ts";
import type { JobEvent, JobSnapshot } from "../../src/client/types.ts";

const ESC = "\x1b";
const T0 = Date.parse("2026-01-01T00:00:00.000Z");

function job(over: Partial<JobSnapshot> = {}): JobSnapshot {
  return {
    id: "build-42",
    kind: null,
    owner: null,
    status: "running",
    progress: 45.5,
    stage: "compile",
    message: "120 files",
    eta_seconds: 80,
    created_at: new Date(T0).toISOString(),
    queued_at: null,
    started_at: new Date(T0).toISOString(),
    updated_at: new Date(T0 + 10_000).toISOString(),
    completed_at: null,
    error: null,
    metadata: {},
    last_sequence: 5,
    ...over,
  };
}

function event(type: string, data: Record<string, unknown>): JobEvent {
  return { type, job_id: "build-42", sequence: 1, timestamp: new Date(T0).toISOString(), data };
}

Deno.test("formatDuration picks the two largest units", () => {
  assert.deepEqual(
    [0, 45.9, 60, 122, 3599, 3600, 3900, 86_399, 90_000].map(formatDuration),
    ["0s", "45s", "1m00s", "2m02s", "59m59s", "1h00m", "1h05m", "23h59m", "1d01h"],
  );
  assert.equal(formatDuration(-5), "0s");
});

Deno.test("progressBar fills eighths of cells and keeps its width", () => {
  assert.equal(progressBar(0, 4), "    ");
  assert.equal(progressBar(100, 4), "████");
  assert.equal(progressBar(50, 4), "██  ");
  assert.equal(progressBar(45.5, 10), "████▌     ");
  for (let p = 0; p <= 100; p += 0.7) assert.equal([...progressBar(p, 24)].length, 24);
  assert.equal(progressBar(150, 2), "██");
});

Deno.test("formatPercent keeps at most one decimal", () => {
  assert.equal(formatPercent(45), "45%");
  assert.equal(formatPercent(45.55), "45.5%");
  assert.equal(formatPercent(33.333), "33.3%");
});

Deno.test("statusLine shows status, bar, percentage, stage, count, ETA and elapsed time", () => {
  const line = statusLine(job(), { now: T0 + 42_000, width: 200, color: false, count: "12/200" });
  assert.equal(
    line,
    "running  [██████████▉             ]  45.5%  compile  12/200  ETA 48s  elapsed 42s  120 files",
  );
});

Deno.test("statusLine fits the width and colours only when asked", () => {
  const narrow = statusLine(job(), { now: T0 + 42_000, width: 30, color: false });
  assert.ok([...narrow].length <= 30, narrow);
  assert.ok(narrow.endsWith("…"));
  const coloured = statusLine(job(), { now: T0, width: 200, color: true, note: "reconnecting" });
  assert.ok(
    coloured.startsWith(`${ESC}[33mreconnecting${ESC}[0m  ${ESC}[36mrunning${ESC}[0m`),
    coloured,
  );
  assert.ok(!statusLine(job(), { now: T0, width: 200, color: false }).includes(ESC));
});

Deno.test("remainingSeconds counts the ETA down from the last update, only while running", () => {
  assert.equal(remainingSeconds(job(), T0 + 30_000), 60);
  assert.equal(remainingSeconds(job(), T0 + 500_000), 0);
  assert.equal(remainingSeconds(job({ status: "completed" }), T0), undefined);
  assert.equal(remainingSeconds(job({ eta_seconds: null }), T0), undefined);
});

Deno.test("eventLine gives one labelled line per event type", () => {
  const line = (type: string, data: Record<string, unknown>) =>
    eventLine(event(type, data), false).replace(/^\d\d:\d\d:\d\d /, "");
  assert.equal(line("log", { line: "hello", level: "info" }), "info     hello");
  assert.equal(line("log", { line: "disk", level: "warning" }), "warning  disk");
  assert.equal(line("status", { status: "running" }), "status   running");
  assert.equal(line("status", { status: "failed", message: "boom" }), "status   failed — boom");
  assert.equal(
    line("progress", { progress: 45, stage: "compile", current: 9, total: 20, eta_seconds: 80 }),
    "progress 45% compile 9/20 ETA 1m20s",
  );
  assert.equal(line("result", { results: { ok: true } }), 'result   {"ok":true}');
  assert.equal(
    line("error", { error: "boom", error_type: "exit_code" }),
    "error    [exit_code] boom",
  );
  assert.equal(line("model_deployed", { v: 3 }), 'event    model_deployed {"v":3}');
  assert.match(eventLine(event("log", { line: "x", level: "error" }), false), /^\d\d:\d\d:\d\d /);
});

Deno.test("eventLine colours levels and statuses when asked", () => {
  const has = (line: string, text: string) => assert.ok(line.includes(text), JSON.stringify(line));
  has(eventLine(event("log", { line: "x", level: "warning" }), true), `${ESC}[33mwarning`);
  has(eventLine(event("log", { line: "x", level: "error" }), true), `${ESC}[31merror`);
  has(eventLine(event("status", { status: "completed" }), true), `${ESC}[32mcompleted`);
});

Deno.test("job text reaches the terminal without escape sequences, control characters or line breaks", () => {
  const evil = `evil ${ESC}]0;PWNED\x07 ${ESC}[2J\nfake line\r${ESC}[31mx\x9b2J`;
  const lines = [
    eventLine(event("log", { line: evil }), false),
    eventLine(event("status", { status: "running", message: evil }), false),
    eventLine(event("progress", { progress: 5, stage: evil, message: evil }), false),
    eventLine(event("error", { error: evil }), false),
    eventLine(event("model.x", { note: evil }), false),
    statusLine(job({ stage: evil, message: evil }), { now: T0, width: 400, color: false }),
    summaryLine(
      "build-42",
      job({ status: "failed", error: { error: evil, error_type: "general" } }),
      false,
    ),
  ];
  for (const line of lines) {
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(line, /[\x00-\x08\x0a-\x1f\x7f-\x9f]/, JSON.stringify(line));
  }
  // Shown as text, the sequences are gone; a custom event's data is JSON, its controls escaped.
  for (const line of lines.filter((_, i) => i !== 4)) {
    assert.ok(!line.includes("PWNED"), JSON.stringify(line));
  }
  assert.ok(lines[4]!.includes("\\u001b]0;PWNED"), lines[4]);
  assert.match(lines[0]!, /evil +↵ fake linex$/);
});

Deno.test("summaryLine says how the job ended and how long it took", () => {
  const done = job({ status: "completed", completed_at: new Date(T0 + 62_000).toISOString() });
  assert.equal(summaryLine("build-42", done, false), "job build-42 completed in 1m02s");
  const failed = job({
    status: "failed",
    completed_at: new Date(T0 + 3_000).toISOString(),
    error: { error: "Exited with code 3", error_type: "exit_code" },
  });
  assert.equal(
    summaryLine("build-42", failed, false),
    "job build-42 failed in 3s: Exited with code 3",
  );
});

Deno.test("watch prints a short reconnect delay in tenths of a second, a long one as a duration", () => {
  assert.equal(retryDelay(0), "0.0s");
  assert.equal(retryDelay(420), "0.4s");
  assert.equal(retryDelay(3_000), "3.0s");
  assert.equal(retryDelay(90_000), "1m30s");
});

Deno.test("the terminal bar shows a running job's latest count, and none once the job has ended", () => {
  let text = "";
  const output = createOutput("tty", {
    out: (chunk) => text += chunk,
    err: (chunk) => text += chunk,
    columns: () => 200,
  }, false);
  try {
    output.snapshot(job());
    output.event(event("progress", { progress: 50, current: 2, total: 4 }));
    output.snapshot(job({ progress: 50 }));
    assert.match(text, /2\/4/);
    // An ended job's replay: its progress events are history beside a full bar.
    text = "";
    output.snapshot(job({ status: "completed", progress: 100, completed_at: job().updated_at }));
    output.event(event("progress", { progress: 25, current: 1, total: 4 }));
    output.event(event("log", { line: "done", level: "info" }));
    output.finish("build-42", undefined);
    assert.match(text, /completed/);
    assert.doesNotMatch(text, /1\/4/);
  } finally {
    output.close();
  }
});

Deno.test("job text reaches the terminal without bidirectional overrides or Unicode line separators", () => {
  const line = eventLine(
    event("log", { line: "invoice\u202egnp.exe\u2028second\u2029third \u2066x\u2069" }),
    false,
  );
  assert.doesNotMatch(line, /[\u202a-\u202e\u2066-\u2069\u2028\u2029]/, JSON.stringify(line));
  assert.match(line, /invoicegnp\.exe ↵ second ↵ third x$/);
});
