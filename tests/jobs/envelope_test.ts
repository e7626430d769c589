import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeEnvelope, envelopeData, joinEnvelope } from "../../src/jobs/envelope.ts";

const TIME = "2026-12-01T13:40:00.123Z";

Deno.test("envelopeData cuts the data from an envelope and joinEnvelope gives it back byte for byte", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme" }),
      fc.string({ unit: "binary" }),
      fc.nat(),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.jsonValue(),
      (type, jobId, sequence, timestamp, data) => {
        const envelope = encodeEnvelope(type, jobId, sequence, timestamp, data);
        const cut = envelopeData({ job_id: jobId, sequence, type, envelope }, timestamp);
        assert.equal(cut, JSON.stringify(data));
        assert.equal(joinEnvelope(type, jobId, sequence, timestamp, cut!), envelope);
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("envelopeData is undefined for an envelope its parts do not make", () => {
  const event = (envelope: string) => ({ job_id: "j", sequence: 3, type: "log", envelope });
  // No data: the key is left out.
  assert.equal(
    envelopeData(event(encodeEnvelope("log", "j", 3, TIME, undefined)), TIME),
    undefined,
  );
  // Another time, job, sequence or type than the envelope holds.
  const envelope = encodeEnvelope("log", "j", 3, TIME, { line: "x" });
  assert.equal(envelopeData(event(envelope), "2026-12-01T13:40:00.124Z"), undefined);
  assert.equal(envelopeData({ ...event(envelope), job_id: "k" }, TIME), undefined);
  assert.equal(envelopeData({ ...event(envelope), sequence: 4 }, TIME), undefined);
  assert.equal(envelopeData({ ...event(envelope), type: "status" }, TIME), undefined);
  assert.equal(envelopeData(event(envelope), TIME), '{"line":"x"}');
});
