import assert from "node:assert/strict";
import fc from "fast-check";
import { backoffDelay, qualityOf } from "../../src/client/mod.ts";

Deno.test("backoffDelay draws from [0, min(max, initial × 2^(n-1))]", () => {
  const options = { initialDelayMs: 100, maxDelayMs: 1000 };
  assert.equal(backoffDelay(1, options, 0), 0);
  assert.equal(backoffDelay(1, options, 0.999), 99);
  assert.equal(backoffDelay(3, options, 0.5), 200);
  assert.equal(backoffDelay(10, options, 0.5), 500);
  assert.equal(backoffDelay(5000, options, 0.999), 999);
  assert.throws(() => backoffDelay(0, options), RangeError);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 100 }),
      fc.double({ min: 0, max: 0.9999, noNaN: true }),
      (n, r) => {
        const delay = backoffDelay(n, options, r);
        return delay >= 0 && delay <= Math.min(1000, 100 * 2 ** (n - 1));
      },
    ),
  );
});

Deno.test("qualityOf follows the 50/150/300 ms thresholds", () => {
  assert.deepEqual(
    [0, 49, 50, 149, 150, 299, 300, 5000, -1, NaN].map(qualityOf),
    [
      "excellent",
      "excellent",
      "good",
      "good",
      "fair",
      "fair",
      "poor",
      "poor",
      "unknown",
      "unknown",
    ],
  );
});
