import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeEnvelope, joinEnvelope } from "../../src/jobs/envelope.ts";

Deno.test("joinEnvelope around the data's JSON text gives encodeEnvelope's envelope byte for byte", () => {
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
          joinEnvelope(type, jobId, sequence, timestamp, JSON.stringify(data)),
          envelope,
        );
      },
    ),
    { numRuns: 2000 },
  );
});
