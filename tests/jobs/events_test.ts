import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BUILT_IN_TYPES,
  checkEvent,
  type EventCheck,
  formatPercentage,
  normalizeLevel,
  SESSION_TYPES,
} from "../../src/jobs/events.ts";

/** The event of an accepted check; fails the test when it was refused. */
function accepted(check: EventCheck): { type: string; data: Record<string, unknown> } {
  if (!check.ok) assert.fail(`expected the event to be accepted: ${JSON.stringify(check.issues)}`);
  return check.event;
}

/** The issue paths of a refused check; fails the test when it was accepted. */
function refusedPaths(check: EventCheck): string[] {
  if (check.ok) assert.fail(`expected the event to be refused: ${JSON.stringify(check.event)}`);
  assert.ok(check.issues.length > 0);
  for (const issue of check.issues) {
    assert.equal(typeof issue.message, "string");
    assert.ok(issue.message.length > 0);
  }
  return check.issues.map((i) => i.path);
}

// status

Deno.test("checkEvent accepts a status event and keeps its message", () => {
  const event = accepted(
    checkEvent({ type: "status", data: { status: "running", message: "go" } }),
  );
  assert.deepEqual(event, { type: "status", data: { status: "running", message: "go" } });
});

Deno.test("checkEvent canonicalizes status aliases and letter case", () => {
  const cases: [string, string][] = [
    ["in_progress", "running"],
    ["PROCESSING", "running"],
    ["Processed", "completed"],
    ["canceled", "cancelled"],
    ["FAILED", "failed"],
  ];
  for (const [input, output] of cases) {
    assert.equal(
      accepted(checkEvent({ type: "status", data: { status: input } })).data.status,
      output,
    );
  }
});

Deno.test("checkEvent refuses a status event with an unknown status at data.status", () => {
  assert.deepEqual(refusedPaths(checkEvent({ type: "status", data: { status: "done" } })), [
    "data.status",
  ]);
});

Deno.test("checkEvent refuses a status event without a status at data.status", () => {
  assert.deepEqual(refusedPaths(checkEvent({ type: "status" })), ["data.status"]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "status", data: { status: 3 } })), [
    "data.status",
  ]);
});

Deno.test("checkEvent refuses a status message that is not a string", () => {
  assert.deepEqual(
    refusedPaths(checkEvent({ type: "status", data: { status: "running", message: 5 } })),
    ["data.message"],
  );
});

// progress

Deno.test("checkEvent adds the percentage to a progress event", () => {
  const event = accepted(checkEvent({ type: "progress", data: { progress: 45.5, stage: "MCMC" } }));
  assert.deepEqual(event.data, { progress: 45.5, stage: "MCMC", percentage: "45.5%" });
});

Deno.test("checkEvent computes progress from current and total when progress is missing", () => {
  const event = accepted(checkEvent({ type: "progress", data: { current: 1, total: 3 } }));
  assert.ok(Math.abs((event.data.progress as number) - 100 / 3) < 1e-9);
  assert.equal(event.data.percentage, "33.33%");
  assert.equal(event.data.current, 1);
  assert.equal(event.data.total, 3);
});

Deno.test("checkEvent caps progress from current beyond total at 100", () => {
  const event = accepted(checkEvent({ type: "progress", data: { current: 12, total: 10 } }));
  assert.equal(event.data.progress, 100);
  assert.equal(event.data.percentage, "100%");
});

Deno.test("checkEvent keeps an explicit progress when current and total are also given", () => {
  const event = accepted(
    checkEvent({ type: "progress", data: { progress: 10, current: 9, total: 10 } }),
  );
  assert.equal(event.data.progress, 10);
  assert.equal(event.data.percentage, "10%");
});

Deno.test("checkEvent formats whole and fractional percentages without trailing zeros", () => {
  assert.equal(
    accepted(checkEvent({ type: "progress", data: { progress: 0 } })).data.percentage,
    "0%",
  );
  assert.equal(
    accepted(checkEvent({ type: "progress", data: { progress: 100 } })).data.percentage,
    "100%",
  );
  assert.equal(
    accepted(checkEvent({ type: "progress", data: { progress: 12.3456 } })).data.percentage,
    "12.35%",
  );
});

Deno.test("formatPercentage rounds to two decimals and drops trailing zeros", () => {
  assert.equal(formatPercentage(45.5), "45.5%");
  assert.equal(formatPercentage(50), "50%");
  assert.equal(formatPercentage(66.666), "66.67%");
  assert.equal(formatPercentage(0.1 + 0.2), "0.3%");
});

Deno.test("checkEvent refuses progress outside 0-100 at data.progress", () => {
  assert.deepEqual(refusedPaths(checkEvent({ type: "progress", data: { progress: 101 } })), [
    "data.progress",
  ]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "progress", data: { progress: -1 } })), [
    "data.progress",
  ]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "progress", data: { progress: "50" } })), [
    "data.progress",
  ]);
});

Deno.test("checkEvent refuses progress without progress or both current and total", () => {
  assert.deepEqual(refusedPaths(checkEvent({ type: "progress", data: {} })), ["data.progress"]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "progress", data: { current: 3 } })), [
    "data.progress",
  ]);
});

Deno.test("checkEvent refuses a zero total and a negative current or eta", () => {
  assert.deepEqual(
    refusedPaths(checkEvent({ type: "progress", data: { current: 1, total: 0 } })),
    ["data.total"],
  );
  assert.deepEqual(
    refusedPaths(checkEvent({ type: "progress", data: { current: -1, total: 5 } })),
    ["data.current"],
  );
  assert.deepEqual(
    refusedPaths(checkEvent({ type: "progress", data: { progress: 5, eta_seconds: -3 } })),
    ["data.eta_seconds"],
  );
});

Deno.test("checkEvent keeps a producer eta_seconds and extra progress fields", () => {
  const event = accepted(
    checkEvent({ type: "progress", data: { progress: 5, eta_seconds: 90, epoch: 2 } }),
  );
  assert.equal(event.data.eta_seconds, 90);
  assert.equal(event.data.epoch, 2);
});

Deno.test("checkEvent keeps a progress status that says running, in any spelling, as running, or none", () => {
  for (const status of ["running", "in_progress", "IN_PROGRESS", "Processing", null]) {
    const event = accepted(checkEvent({ type: "progress", data: { progress: 5, status } }));
    assert.equal(event.data.status, status === null ? null : "running");
  }
  const none = accepted(checkEvent({ type: "progress", data: { progress: 5 } }));
  assert.equal("status" in none.data, false);
});

Deno.test("checkEvent refuses a progress status that would not change the job's status", () => {
  for (const status of ["processed", "completed", "FAILED", "canceled", "queued", "pending"]) {
    const check = checkEvent({ type: "progress", data: { progress: 100, status } }, "events.1");
    assert.deepEqual(refusedPaths(check), ["events.1.data.status"]);
    assert.match(check.ok ? "" : check.issues[0]!.message, /as a status event/);
  }
});

Deno.test("checkEvent refuses a progress status that names a step of the work", () => {
  for (const status of ["transcribing", "", 3, { a: 1 }]) {
    const check = checkEvent({ type: "progress", progress: 45, status });
    assert.deepEqual(refusedPaths(check), ["data.status"]);
    assert.match(check.ok ? "" : check.issues[0]!.message, /goes in stage/);
  }
});

// log

Deno.test("checkEvent gives a log event the level info when it has none", () => {
  const event = accepted(checkEvent({ type: "log", data: { line: "hello" } }));
  assert.deepEqual(event, { type: "log", data: { line: "hello", level: "info" } });
});

Deno.test("checkEvent canonicalizes log level aliases and letter case", () => {
  const cases: [string, string][] = [
    ["warn", "warning"],
    ["WARNING", "warning"],
    ["err", "error"],
    ["fatal", "error"],
    ["Critical", "error"],
    ["trace", "debug"],
    ["DEBUG", "debug"],
    ["Info", "info"],
  ];
  for (const [input, output] of cases) {
    assert.equal(
      accepted(checkEvent({ type: "log", data: { line: "x", level: input } })).data.level,
      output,
      input,
    );
  }
});

Deno.test("checkEvent refuses an unknown log level at data.level", () => {
  assert.deepEqual(
    refusedPaths(checkEvent({ type: "log", data: { line: "x", level: "verbose" } })),
    ["data.level"],
  );
});

Deno.test("checkEvent refuses a log event without a line at data.line", () => {
  assert.deepEqual(refusedPaths(checkEvent({ type: "log", data: { level: "info" } })), [
    "data.line",
  ]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "log", data: { line: 42 } })), ["data.line"]);
});

Deno.test("checkEvent keeps the source of a log event", () => {
  const event = accepted(checkEvent({ type: "log", data: { line: "x", source: "stderr" } }));
  assert.equal(event.data.source, "stderr");
});

Deno.test("normalizeLevel returns undefined for names that are no level", () => {
  assert.equal(normalizeLevel("loud"), undefined);
  assert.equal(normalizeLevel(""), undefined);
  assert.equal(normalizeLevel(" WARN "), "warning");
});

// result

Deno.test("checkEvent accepts a result event with results of any JSON type", () => {
  for (const results of [{ a: 1 }, [1, 2], "text", 0, null, false]) {
    const event = accepted(checkEvent({ type: "result", data: { results } }));
    assert.deepEqual(event.data.results, results);
  }
});

Deno.test("checkEvent maps the result alias to results", () => {
  const event = accepted(checkEvent({ type: "result", data: { result: { score: 0.9 } } }));
  assert.deepEqual(event.data.results, { score: 0.9 });
});

Deno.test("checkEvent refuses a result event without results at data.results", () => {
  assert.deepEqual(refusedPaths(checkEvent({ type: "result", data: {} })), ["data.results"]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "result" })), ["data.results"]);
});

// error

Deno.test("checkEvent gives an error event the error_type general when it has none", () => {
  const event = accepted(checkEvent({ type: "error", data: { error: "boom" } }));
  assert.deepEqual(event, { type: "error", data: { error: "boom", error_type: "general" } });
});

Deno.test("checkEvent accepts built-in and custom lower-case error types with details", () => {
  for (const errorType of ["validation_error", "system_error", "out_of_memory", "timeout"]) {
    const event = accepted(
      checkEvent({ type: "error", data: { error: "e", error_type: errorType, details: [1] } }),
    );
    assert.equal(event.data.error_type, errorType);
    assert.deepEqual(event.data.details, [1]);
  }
});

Deno.test("checkEvent keeps an error_type of any letter case in lower case, digits too", () => {
  for (
    const [sent, kept] of [
      ["MEMORY_ERROR", "memory_error"],
      ["Validation", "validation"],
      ["HTTP_503", "http_503"],
      ["S3_ERROR", "s3_error"],
      ["e1", "e1"],
      ["_x9", "_x9"],
    ]
  ) {
    const check = checkEvent({ type: "error", data: { error: "e", error_type: sent } });
    assert.ok(check.ok, JSON.stringify(check));
    assert.equal(check.event.data.error_type, kept);
  }
});

Deno.test("checkEvent refuses an error_type outside [A-Za-z_][A-Za-z0-9_]* at data.error_type", () => {
  for (const errorType of ["system-error", "1e", "503", "", "a b", "é", "x.y"]) {
    assert.deepEqual(
      refusedPaths(checkEvent({ type: "error", data: { error: "e", error_type: errorType } })),
      ["data.error_type"],
      errorType,
    );
  }
});

Deno.test("checkEvent refuses an error event with an empty or missing error", () => {
  assert.deepEqual(refusedPaths(checkEvent({ type: "error", data: { error: "" } })), [
    "data.error",
  ]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "error", data: {} })), ["data.error"]);
});

// custom types

Deno.test("checkEvent accepts custom types matching the pattern with their data as given", () => {
  const data = { nested: { list: [1, "two", null] }, flag: true };
  for (
    const type of ["recommendation_update", "training_progress", "model.deployed", "a", "x:y-z9"]
  ) {
    assert.deepEqual(accepted(checkEvent({ type, data })), { type, data });
  }
});

Deno.test("checkEvent accepts a custom type without data as an empty object", () => {
  assert.deepEqual(accepted(checkEvent({ type: "tick" })), { type: "tick", data: {} });
});

Deno.test("checkEvent accepts a 64-character custom type and refuses a 65-character one", () => {
  const longest = "a" + "b".repeat(63);
  assert.equal(accepted(checkEvent({ type: longest, data: {} })).type, longest);
  assert.deepEqual(refusedPaths(checkEvent({ type: longest + "c", data: {} })), ["type"]);
});

Deno.test("checkEvent refuses custom types that do not match the pattern at type", () => {
  for (const type of ["", "Upper", "1abc", "_x", "has space", "a/b", "é", "-x"]) {
    assert.deepEqual(refusedPaths(checkEvent({ type, data: {} })), ["type"], type);
  }
});

Deno.test("checkEvent refuses every reserved session type as a custom type", () => {
  assert.ok(SESSION_TYPES.size > 0);
  for (const type of SESSION_TYPES) {
    const check = checkEvent({ type, data: {} });
    assert.deepEqual(refusedPaths(check), ["type"], type);
    assert.ok(!check.ok && check.issues[0]!.message.includes(type));
  }
});

Deno.test("checkEvent refuses the DESIGN session message types connection, heartbeat and pong", () => {
  for (const type of ["connection", "heartbeat", "pong", "subscribed", "unsubscribed"]) {
    assert.deepEqual(refusedPaths(checkEvent({ type, data: {} })), ["type"], type);
  }
});

Deno.test("no built-in type is also a reserved session type", () => {
  for (const type of BUILT_IN_TYPES) assert.equal(SESSION_TYPES.has(type), false, type);
});

// bad shapes and issue paths

Deno.test("checkEvent refuses data that is not an object at data", () => {
  for (const data of [[1, 2], "text", 5, null, true]) {
    assert.deepEqual(
      refusedPaths(checkEvent({ type: "log", data })),
      ["data"],
      JSON.stringify(data),
    );
    assert.deepEqual(refusedPaths(checkEvent({ type: "custom", data })), ["data"]);
  }
});

Deno.test("checkEvent refuses an event without a type at type", () => {
  assert.deepEqual(refusedPaths(checkEvent({ data: { line: "x" } })), ["type"]);
  assert.deepEqual(refusedPaths(checkEvent({ type: 7, data: {} })), ["type"]);
});

Deno.test("checkEvent refuses input that is not an object with an empty path", () => {
  for (const input of [null, undefined, 3, "log", [], [{ type: "log" }]]) {
    assert.deepEqual(refusedPaths(checkEvent(input)), [""], JSON.stringify(input));
  }
});

Deno.test("checkEvent prefixes every issue path with the given path", () => {
  assert.deepEqual(refusedPaths(checkEvent("x", "events.3")), ["events.3"]);
  assert.deepEqual(refusedPaths(checkEvent({ data: {} }, "events.0")), ["events.0.type"]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "log", data: 1 }, "events.1")), [
    "events.1.data",
  ]);
  assert.deepEqual(refusedPaths(checkEvent({ type: "log", data: {} }, "events.2")), [
    "events.2.data.line",
  ]);
  assert.deepEqual(
    refusedPaths(checkEvent({ type: "status", data: { status: "nope" } }, "events.4")),
    ["events.4.data.status"],
  );
  assert.deepEqual(refusedPaths(checkEvent({ type: "BAD", data: {} }, "events.5")), [
    "events.5.type",
  ]);
});

Deno.test("checkEvent does not modify its input", () => {
  const input = { type: "progress", data: { progress: 5 } };
  const copy = structuredClone(input);
  accepted(checkEvent(input));
  assert.deepEqual(input, copy);
});

// properties

function checkShape(check: EventCheck): void {
  if (check.ok) {
    assert.equal(typeof check.event.type, "string");
    assert.equal(typeof check.event.data, "object");
    assert.notEqual(check.event.data, null);
    assert.equal(Array.isArray(check.event.data), false);
  } else {
    assert.ok(Array.isArray(check.issues));
    assert.ok(check.issues.length >= 1);
    for (const issue of check.issues) {
      assert.equal(typeof issue.path, "string");
      assert.equal(typeof issue.message, "string");
    }
  }
}

Deno.test("checkEvent never throws and answers a well-formed outcome for any JSON value", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (input) => {
      checkShape(checkEvent(input));
    }),
    { numRuns: 500 },
  );
});

Deno.test("checkEvent never throws for any JSON data under every built-in type", () => {
  const type = fc.constantFrom<string>(...BUILT_IN_TYPES, "custom.type", "connection", "Bad");
  fc.assert(
    fc.property(type, fc.jsonValue(), fc.string(), (t, data, path) => {
      checkShape(checkEvent({ type: t, data }, path));
    }),
    { numRuns: 500 },
  );
});

Deno.test("checkEvent accepts every progress in 0-100 and adds a matching percentage", () => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 100, noNaN: true }), (progress) => {
      const event = accepted(checkEvent({ type: "progress", data: { progress } }));
      assert.equal(event.data.progress, progress);
      assert.equal(event.data.percentage, formatPercentage(progress));
      assert.match(event.data.percentage as string, /^\d+(\.\d{1,2})?%$/);
    }),
  );
});

Deno.test("checkEvent refuses one thing under both its names, as the shortcuts do", () => {
  const result = checkEvent({ type: "result", data: { result: 1, results: 2 } }, "events.0");
  assert.deepEqual(refusedPaths(result), ["events.0.data.result"]);
  const eta = checkEvent({
    type: "progress",
    data: { progress: 5, eta_seconds: 6, estimated_time_remaining: 5 },
  });
  assert.deepEqual(refusedPaths(eta), ["data.estimated_time_remaining"]);
  // Either name alone is taken, and so is progress beside its counts.
  accepted(checkEvent({ type: "result", data: { result: 1 } }));
  accepted(checkEvent({ type: "progress", data: { progress: 5, estimated_time_remaining: 5 } }));
  accepted(checkEvent({ type: "progress", data: { progress: 90, current: 9, total: 10 } }));
});
