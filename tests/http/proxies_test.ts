/**
 * Who the client is behind a reverse proxy: which addresses `--trusted-proxies` trusts, and
 * what `X-Forwarded-For` and `X-Forwarded-Proto` are believed to say.
 */
import assert from "node:assert/strict";
import { addressSet, clientBehind, proxyEntry } from "../../src/http/proxies.ts";
import { ConfigError, parseTrustedProxies } from "../../src/config.ts";

function forwarded(forwardedFor?: string, proto?: string): Headers {
  const headers = new Headers();
  if (forwardedFor !== undefined) headers.set("x-forwarded-for", forwardedFor);
  if (proto !== undefined) headers.set("x-forwarded-proto", proto);
  return headers;
}

Deno.test("trusted proxies: addresses, ranges, loopback and private, in IPv4 and IPv6", () => {
  const trusted = addressSet(
    parseTrustedProxies("loopback, 10.1.0.0/16, 192.0.2.7, 2001:db8:aa::/48, 2001:db8::5"),
  );
  for (const ip of ["127.0.0.1", "127.200.3.4", "::1", "10.1.0.1", "10.1.255.255", "192.0.2.7"]) {
    assert.equal(trusted(ip), true, ip);
  }
  for (const ip of ["2001:db8:aa::1", "2001:db8:aa:ffff::9", "2001:db8::5", "2001:0db8:0::5"]) {
    assert.equal(trusted(ip), true, ip);
  }
  // An IPv4 client on a dual-stack socket is reported as ::ffff:a.b.c.d.
  assert.equal(trusted("::ffff:10.1.2.3"), true);
  assert.equal(trusted("::ffff:127.0.0.1"), true);
  for (
    const ip of [
      "10.2.0.1",
      "11.1.0.1",
      "192.0.2.8",
      "2001:db8:ab::1",
      "2001:db8::6",
      "::2",
      "::ffff:10.2.0.1",
      "unknown",
      "",
      "999.1.1.1",
    ]
  ) {
    assert.equal(trusted(ip), false, ip);
  }
  const privateNets = addressSet(parseTrustedProxies("private"));
  for (const ip of ["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fd00::1"]) {
    assert.equal(privateNets(ip), true, ip);
  }
  for (const ip of ["172.32.0.1", "192.169.0.1", "127.0.0.1", "8.8.8.8", "fe80::1"]) {
    assert.equal(privateNets(ip), false, ip);
  }
  assert.equal(addressSet(parseTrustedProxies("0.0.0.0/0"))("203.0.113.9"), true);
  assert.equal(addressSet(parseTrustedProxies("none"))("127.0.0.1"), false);
  assert.equal(addressSet([])("127.0.0.1"), false);
});

Deno.test("trusted proxies: entries are normalized, and anything else is refused naming the entry", () => {
  assert.deepEqual(parseTrustedProxies(""), []);
  assert.deepEqual(
    parseTrustedProxies(" Loopback ,10.0.0.0/08, 2001:DB8:0:0::1/64"),
    ["loopback", "10.0.0.0/8", "2001:db8::1/64"],
  );
  for (
    const bad of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "300.1.1.1",
      "example.com",
      "constructor",
      "none, 10.0.0.1",
      "10.0.0.1/8/8",
    ]
  ) {
    assert.throws(
      () => parseTrustedProxies(bad),
      (e: unknown) => e instanceof ConfigError && e.message.includes("--trusted-proxies"),
      bad,
    );
  }
  assert.equal(proxyEntry("private"), "private");
  // An IPv4-mapped range is IPv4's; one shorter than /96 would reach beyond IPv4.
  assert.equal(proxyEntry("::ffff:10.0.0.0/104"), "10.0.0.0/8");
  assert.equal(proxyEntry("::FFFF:a00:1"), "10.0.0.1");
  assert.equal(proxyEntry("::ffff:10.0.0.0/8"), undefined);
  assert.equal(addressSet(parseTrustedProxies("::ffff:10.0.0.0/104"))("8.8.8.8"), false);
  assert.equal(addressSet(parseTrustedProxies("::ffff:10.0.0.0/104"))("10.9.8.7"), true);
  assert.equal(proxyEntry("toString"), undefined);
});

Deno.test("client behind a trusted proxy: the rightmost untrusted address of X-Forwarded-For", () => {
  const trusted = addressSet(parseTrustedProxies("loopback, 10.0.0.0/8"));
  // The proxy appended what it saw; what the client wrote to the left is never reached.
  assert.deepEqual(
    clientBehind("127.0.0.1", forwarded("6.6.6.6, 203.0.113.9"), trusted),
    { ip: "203.0.113.9", forwarded: true, https: false },
  );
  // Two proxies in a row: both trusted, so the address before them is the client's.
  assert.equal(
    clientBehind("127.0.0.1", forwarded("198.51.100.4, 10.0.0.7"), trusted).ip,
    "198.51.100.4",
  );
  // Header repeated: Headers joins the values with ", ", in order.
  const twice = new Headers([["x-forwarded-for", "198.51.100.4"], ["x-forwarded-for", "10.0.0.7"]]);
  assert.equal(clientBehind("127.0.0.1", twice, trusted).ip, "198.51.100.4");
  // Ports, brackets, quotes and an IPv4-mapped address.
  assert.equal(clientBehind("10.0.0.1", forwarded("203.0.113.9:4711"), trusted).ip, "203.0.113.9");
  assert.equal(clientBehind("10.0.0.1", forwarded("[2001:DB8::9]:443"), trusted).ip, "2001:db8::9");
  assert.equal(clientBehind("10.0.0.1", forwarded('"[2001:db8::9]"'), trusted).ip, "2001:db8::9");
  assert.equal(
    clientBehind("10.0.0.1", forwarded("::ffff:203.0.113.9"), trusted).ip,
    "203.0.113.9",
  );
  // Every hop trusted: the leftmost one is as far as the chain goes.
  assert.equal(clientBehind("127.0.0.1", forwarded("10.0.0.3, 10.0.0.4"), trusted).ip, "10.0.0.3");
  // No header: the proxy itself (a request it made, or one from the same host).
  assert.deepEqual(
    clientBehind("127.0.0.1", forwarded(), trusted),
    { ip: "127.0.0.1", forwarded: false, https: false },
  );
  assert.equal(clientBehind("::ffff:127.0.0.1", forwarded(), trusted).ip, "127.0.0.1");
  // A hop that is not an address ends the walk at the proxy that forwarded it.
  assert.deepEqual(
    clientBehind("127.0.0.1", forwarded("203.0.113.9, unknown"), trusted),
    { ip: "127.0.0.1", forwarded: false, https: false },
  );
  assert.equal(
    clientBehind("127.0.0.1", forwarded("unknown, 10.0.0.5"), trusted).ip,
    "10.0.0.5",
  );
  assert.equal(clientBehind("127.0.0.1", forwarded(" , 203.0.113.9 ,"), trusted).ip, "203.0.113.9");
});

Deno.test("client behind a trusted proxy: HTTPS when the first X-Forwarded-Proto says so", () => {
  const trusted = addressSet(parseTrustedProxies("loopback"));
  assert.equal(clientBehind("127.0.0.1", forwarded(undefined, "https"), trusted).https, true);
  assert.equal(clientBehind("127.0.0.1", forwarded(undefined, "HTTPS, http"), trusted).https, true);
  assert.equal(
    clientBehind("127.0.0.1", forwarded(undefined, "http, https"), trusted).https,
    false,
  );
  assert.equal(clientBehind("127.0.0.1", forwarded(undefined, "http"), trusted).https, false);
  assert.equal(clientBehind("127.0.0.1", forwarded(), trusted).https, false);
});

Deno.test("client from an untrusted address: the forwarding headers are ignored", () => {
  const trusted = addressSet(parseTrustedProxies("10.0.0.0/8"));
  assert.deepEqual(
    clientBehind("203.0.113.9", forwarded("10.0.0.1", "https"), trusted),
    { ip: "203.0.113.9", forwarded: false, https: false },
  );
  // The default: nothing trusted, not even loopback.
  assert.deepEqual(
    clientBehind("127.0.0.1", forwarded("203.0.113.9", "https"), addressSet([])),
    { ip: "127.0.0.1", forwarded: false, https: false },
  );
});
