import assert from "node:assert/strict";
import { exemptAddress, Visitors } from "../../src/auth/limits.ts";

const LIMITS = {
  maxConnections: 3,
  maxConnectionsPerPrincipal: 1,
  maxConnectionsPerIp: 1,
  publishRate: 10,
  publishBurst: 10,
};

Deno.test("exemptAddress: loopback covers 127.0.0.0/8, ::1 and IPv4-mapped loopback; listed addresses match either form", () => {
  for (const ip of ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"]) {
    assert.equal(exemptAddress(ip, ["loopback"]), true, ip);
  }
  for (const ip of ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "unknown"]) {
    assert.equal(exemptAddress(ip, ["loopback"]), false, ip);
  }
  assert.equal(exemptAddress("10.0.0.1", ["10.0.0.1"]), true);
  assert.equal(exemptAddress("::ffff:10.0.0.1", ["10.0.0.1"]), true);
  assert.equal(exemptAddress("127.0.0.1", []), false, "none: every address counts");
  assert.equal(exemptAddress("127.0.0.1", ["10.0.0.1"]), false, "loopback only when listed");
});

Deno.test("Visitors: a null key skips that count, while the server-wide cap still holds", () => {
  const visitors = new Visitors(LIMITS);
  // Counted principal and address: the second stream of either is refused.
  const first = visitors.openStream("alice", "10.0.0.1");
  assert.equal(typeof first, "function");
  assert.equal(visitors.openStream("alice", "10.0.0.2"), "principal");
  assert.equal(visitors.openStream("bob", "10.0.0.1"), "ip");
  // Skipped counts: the same principal or address opens more.
  const second = visitors.openStream(null, "10.0.0.3");
  const third = visitors.openStream("carol", null);
  assert.equal(typeof second, "function");
  assert.equal(typeof third, "function");
  assert.equal(visitors.openStream(null, null), "server", "the total still counts every stream");
  // Releasing a stream with skipped counts frees only the total.
  (second as () => void)();
  (second as () => void)();
  assert.equal(visitors.connections, 2);
  assert.equal(visitors.openStream("alice", "10.0.0.9"), "principal");
  const fourth = visitors.openStream(null, null);
  assert.equal(typeof fourth, "function");
  assert.equal(visitors.connections, 3);
});

Deno.test("Visitors: a null principal is never rate limited, a counted one is", () => {
  const visitors = new Visitors(LIMITS);
  for (let i = 0; i < 100; i++) assert.equal(visitors.allowPublish(null, 10), 0);
  assert.equal(visitors.allowPublish("alice", 10), 0);
  assert.ok(visitors.allowPublish("alice", 10) >= 1);
});

Deno.test("Visitors: a batch larger than the bucket passes when it is full and leaves it in debt", () => {
  const visitors = new Visitors(LIMITS); // 10 events a second, bucket of 10
  assert.equal(visitors.allowPublish("alice", 1000), 0, "a full bucket lets a large batch through");
  // 990 events of debt: one more event waits until the bucket is back above one.
  const wait = visitors.allowPublish("alice", 1);
  assert.ok(wait >= 99 && wait <= 100, `waits ${wait} s`);
  // Given back (the batch was not stored after all), the bucket is full again.
  visitors.refundPublish("alice", 1000);
  assert.equal(visitors.allowPublish("alice", 10), 0);
});

Deno.test("Visitors: a debt still owed outlives the sweep of idle visitors", () => {
  let now = 1_000_000;
  const visitors = new Visitors({ ...LIMITS, publishRate: 1 }, undefined, () => now);
  assert.equal(visitors.allowPublish("alice", 999), 0);
  now += 630_000; // 10.5 minutes idle: 630 of the 989 events owed are paid back
  visitors.openStream("bob", null); // any visit sweeps
  const wait = visitors.allowPublish("alice", 1);
  assert.ok(wait >= 359 && wait <= 361, `waits ${wait} s`);
  // Paid back in full, the visitor is forgotten at the next sweep and starts full.
  now += 400_000;
  visitors.openStream("carol", null);
  assert.equal(visitors.allowPublish("alice", 10), 0);
});
