import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeEnvelope, envelopesOf } from "../../src/jobs/envelope.ts";

Deno.test("envelopesOf around the data's JSON text gives encodeEnvelope's envelope byte for byte", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme" }),
      fc.string({ unit: "binary" }),
      fc.nat(),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.jsonValue(),
      (type, jobId, sequence, timestamp, data) => {
        const envelope = encodeEnvelope(type, jobId, sequence, timestamp, data);
        assert.equal(
          envelopesOf(jobId)(type, sequence, timestamp, JSON.stringify(data)),
          envelope,
        );
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("envelopesOf rebuilds a job's envelopes byte for byte, whatever repeats between them", () => {
  const part = fc.record({
    // Few types and times, so that consecutive events share them as commits do.
    type: fc.constantFrom("progress", "log", "status", 'é"type\n'),
    timestamp: fc.constantFrom("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.001Z"),
    data: fc.jsonValue(),
  });
  fc.assert(
    fc.property(
      fc.string({ unit: "binary" }),
      fc.array(part, { maxLength: 20 }),
      (jobId, events) => {
        const envelope = envelopesOf(jobId);
        events.forEach(({ type, timestamp, data }, i) => {
          assert.equal(
            envelope(type, i + 1, timestamp, JSON.stringify(data)),
            encodeEnvelope(type, jobId, i + 1, timestamp, data),
          );
        });
      },
    ),
    { numRuns: 500 },
  );
});
