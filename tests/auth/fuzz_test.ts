/**
 * Property test: arbitrary JSON values and arbitrary bytes sent to every write endpoint
 * with an admin token are answered with a success or a 4xx in the JSON error shape, never
 * a 5xx, and a refused request persists nothing.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { http, type Reply } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, bearer, tokenFor } from "../_helpers/tokens.ts";

/** Write endpoints; `:id` is replaced by a fresh job (or a fuzzed id). */
const ENDPOINTS = [
  "/jobs",
  "/jobs/:id/events",
  "/jobs/:id/queue",
  "/jobs/:id/start",
  "/jobs/:id/cancel",
  "/jobs/:id/progress",
  "/jobs/:id/log",
  "/jobs/:id/complete",
  "/jobs/:id/fail",
  "/auth/login",
  "/tickets",
] as const;

const utf8 = new TextEncoder();

const PLACEHOLDER = "__JOB__";

/** Bodies close to the real shape of `endpoint`, so validation past the first check runs. */
function nearValid(endpoint: typeof ENDPOINTS[number]): fc.Arbitrary<unknown> {
  const json = fc.jsonValue({ maxDepth: 3 });
  const text = fc.string({ maxLength: 40 });
  const loose = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: arb }, json);
  const type = fc.oneof(
    fc.constantFrom("log", "progress", "status", "result", "error", "metric", "custom", ""),
    text,
  );
  const status = fc.constantFrom("running", "completed", "failed", "queued", "bogus", "");
  const event = fc.oneof(
    fc.record({ type, data: json }, { requiredKeys: [] }),
    fc.record({
      type: fc.constant("status"),
      data: fc.record({ status, message: loose(text) }, { requiredKeys: [] }),
    }),
    fc.record({
      type: fc.constant("progress"),
      data: fc.record({
        progress: loose(fc.double()),
        stage: loose(text),
        current: loose(fc.integer()),
        total: loose(fc.integer()),
      }, { requiredKeys: [] }),
    }),
    fc.record({
      type: fc.constant("log"),
      data: fc.record({ line: loose(text), level: loose(text) }),
    }),
  );
  switch (endpoint) {
    case "/jobs":
      return fc.record({
        id: loose(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,30}$/)),
        kind: loose(text),
        owner: loose(text),
        metadata: loose(fc.dictionary(text, json)),
      }, { requiredKeys: [] });
    case "/jobs/:id/events":
      return fc.oneof(
        event,
        fc.record({
          events: loose(fc.array(event, { maxLength: 5 })),
          expected_sequence: loose(fc.integer()),
        }, { requiredKeys: ["events"] }),
      );
    case "/jobs/:id/log":
      return fc.oneof(
        fc.record({ line: loose(text), level: loose(text) }, { requiredKeys: [] }),
        fc.record({
          lines: loose(fc.array(fc.oneof(text, fc.dictionary(text, json)), { maxLength: 4 })),
          level: loose(text),
          source: loose(text),
        }, { requiredKeys: [] }),
      );
    case "/jobs/:id/progress":
      return fc.record({
        progress: loose(fc.double()),
        percentage: loose(fc.double()),
        stage: loose(text),
      }, { requiredKeys: [] });
    case "/jobs/:id/complete":
    case "/jobs/:id/fail":
    case "/jobs/:id/queue":
    case "/jobs/:id/start":
    case "/jobs/:id/cancel":
      return fc.record({
        result: json,
        message: loose(text),
        reason: loose(text),
        error: loose(text),
        error_type: loose(text),
        details: json,
      }, { requiredKeys: [] });
    case "/auth/login":
      return fc.record({
        username: loose(text),
        password: loose(text),
        cookie: loose(fc.boolean()),
      }, { requiredKeys: [] });
    case "/tickets":
      return fc.record({
        job_id: fc.oneof(fc.constant(PLACEHOLDER), text, json),
      }, { requiredKeys: [] });
  }
}

interface Case {
  endpoint: typeof ENDPOINTS[number];
  /** Raw body bytes, a JSON value to serialize, text, or no body. */
  body: { bytes: Uint8Array } | { json: unknown } | { text: string } | undefined;
  contentType: string | undefined;
  /** A fuzzed job id for the path instead of the fresh job. */
  pathId: string | undefined;
  /** Whether the fresh job is started first (so complete/fail can succeed). */
  started: boolean;
}

function cases(): fc.Arbitrary<Case> {
  return fc.constantFrom(...ENDPOINTS).chain((endpoint) =>
    fc.record({
      endpoint: fc.constant(endpoint),
      body: fc.oneof(
        { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((json) => ({ json })) },
        { weight: 5, arbitrary: nearValid(endpoint).map((json) => ({ json })) },
        { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ bytes })) },
        { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ text })) },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      contentType: fc.oneof(
        { weight: 8, arbitrary: fc.constant("application/json") },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            undefined,
            "text/plain",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "",
          ),
        },
      ),
      pathId: fc.oneof(
        { weight: 10, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
      ),
      started: fc.boolean(),
    })
  );
}

function encodePathId(id: string): string {
  try {
    return encodeURIComponent(id);
  } catch {
    // A lone surrogate cannot be encoded: send its escape as typed.
    return "%ED%A0%80";
  }
}

/** Replaces the fresh job's placeholder anywhere in a JSON value. */
function withJob(value: unknown, jobId: string): unknown {
  if (value === PLACEHOLDER) return jobId;
  if (Array.isArray(value)) return value.map((v) => withJob(v, jobId));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withJob(v, jobId)]));
  }
  return value;
}

Deno.test("fuzz: arbitrary JSON and bytes at every write endpoint never give a 5xx, and refusals persist nothing", async () => {
  await withServer(AUTH, async (server) => {
    const admin = await tokenFor("fuzzer", "admin");
    const auth = bearer(admin);
    const stats = async () => {
      const reply = await http(server.url, "GET", "/stats", undefined, auth);
      assert.equal(reply.status, 200, reply.text);
      return {
        jobs: reply.json.jobs.total as number,
        events: reply.json.events.published_total as number,
      };
    };
    const jobIds = async () => {
      const reply = await http(server.url, "GET", "/jobs?limit=500", undefined, auth);
      assert.equal(reply.status, 200, reply.text);
      return (reply.json.jobs as { id: string }[]).map((j) => j.id).sort().join(",");
    };
    let run = 0;
    let successes = 0;
    let refusals = 0;
    await fc.assert(
      fc.asyncProperty(cases(), async (c) => {
        run++;
        const created = await http(server.url, "POST", "/jobs", {
          id: `fuzz-${run}-${crypto.randomUUID()}`,
        }, auth);
        assert.equal(created.status, 201, created.text);
        const jobId = created.json.job.id as string;
        if (c.started) {
          const start = await http(server.url, "POST", `/jobs/${jobId}/start`, {}, auth);
          assert.equal(start.status, 201, start.text);
        }
        const sequence = c.started ? 1 : 0;
        const before = await stats();
        const listBefore = await jobIds();
        const path = c.endpoint.replace(
          ":id",
          c.pathId === undefined ? jobId : encodePathId(c.pathId),
        );
        const headers: Record<string, string> = { ...auth };
        if (c.contentType !== undefined) headers["content-type"] = c.contentType;
        let body: BodyInit | undefined;
        if (c.body !== undefined) {
          body = "bytes" in c.body
            ? c.body.bytes as Uint8Array<ArrayBuffer>
            : "text" in c.body
            ? utf8.encode(c.body.text)
            : utf8.encode(JSON.stringify(withJob(c.body.json, jobId)) ?? "");
        }
        const response = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers,
          ...(body === undefined ? {} : { body }),
        });
        const text = await response.text();
        const reply: Reply = {
          status: response.status,
          headers: response.headers,
          text,
          json: undefined,
        };
        const what = `POST ${path} -> ${reply.status} ${text.slice(0, 300)}`;
        assert.ok(reply.status < 500, what);
        assert.ok(reply.status >= 200 && reply.status < 500, what);
        if (reply.status >= 400) {
          let json: { error?: { code?: unknown; message?: unknown } } | undefined;
          try {
            json = JSON.parse(text);
          } catch {
            assert.fail(`not JSON: ${what}`);
          }
          assert.equal(typeof json?.error?.code, "string", what);
          assert.equal(typeof json?.error?.message, "string", what);
          assert.match(response.headers.get("content-type") ?? "", /application\/json/, what);
          // Nothing was persisted.
          const after = await stats();
          assert.deepEqual(after, before, `persisted on refusal: ${what}`);
          assert.equal(await jobIds(), listBefore, `job list changed on refusal: ${what}`);
          const job = await http(server.url, "GET", `/jobs/${jobId}`, undefined, auth);
          assert.equal(job.json.last_sequence, sequence, `events stored on refusal: ${what}`);
          refusals++;
        } else if (c.endpoint.startsWith("/jobs/:id") && c.pathId === undefined) {
          // A success was committed: the job moved on.
          const job = await http(server.url, "GET", `/jobs/${jobId}`, undefined, auth);
          assert.ok(job.json.last_sequence > sequence, what);
        }
        if (reply.status < 300) successes++;
      }),
      { numRuns: 200 },
    );
    // The property was not vacuous: both outcomes were seen.
    assert.ok(successes > 0 && refusals > 0, `${successes} successes, ${refusals} refusals`);
    // The server is still healthy after the barrage.
    assert.equal((await http(server.url, "GET", "/healthz")).status, 200);
  });
});
