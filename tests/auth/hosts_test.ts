/**
 * The Host guard of a server without authentication (against DNS rebinding): requests
 * for a name the server is not known by are refused, over HTTP and WebSocket, unless the
 * name is in `--allowed-hosts`; a server with authentication answers any name.
 */
import assert from "node:assert/strict";
import { crossOrigin, hostAllowed, originAllowed } from "../../src/auth/origins.ts";
import { ConfigError, parseHosts } from "../../src/config.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, tokenFor } from "../_helpers/tokens.ts";
import { concat } from "../_helpers/bytes.ts";

/** One raw HTTP/1.1 exchange, so that the `Host` header is the test's own. */
async function raw(
  port: number,
  host: string,
  request: string,
  extra: string[] = [],
  body = "",
): Promise<{ status: number; text: string; bytes: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = [request, `Host: ${host}`, ...extra, "Connection: close", "", body].join("\r\n");
    await conn.write(new TextEncoder().encode(head));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), 5000);
    try {
      for (;;) {
        const n = await conn.read(buffer).catch(() => null);
        if (n === null) break;
        chunks.push(buffer.slice(0, n));
        // An upgraded connection stays open: its first frame is enough.
        const sofar = new TextDecoder("latin1").decode(concat(chunks));
        const end = sofar.indexOf("\r\n\r\n");
        if (sofar.startsWith("HTTP/1.1 101") && end >= 0 && sofar.length >= end + 4 + 2) {
          const length = sofar.charCodeAt(end + 5) & 0x7f;
          if (sofar.length >= end + 4 + 2 + length) break;
        }
      }
    } finally {
      clearTimeout(deadline);
    }
    const bytes = concat(chunks);
    const text = new TextDecoder().decode(bytes);
    return { status: Number(text.slice(9, 12)), text, bytes };
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the deadline.
    }
  }
}

const UPGRADE = [
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version: 13",
];

/** The close code and reason of the first close frame after a 101, if any. */
function closeFrame(bytes: Uint8Array): { code: number; reason: string } | undefined {
  const text = new TextDecoder("latin1").decode(bytes);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0 || !text.startsWith("HTTP/1.1 101")) return undefined;
  const frame = bytes.subarray(end + 4);
  if (frame[0] !== 0x88) return undefined;
  const length = frame[1]! & 0x7f;
  const payload = frame.subarray(2, 2 + length);
  return {
    code: (payload[0]! << 8) | payload[1]!,
    reason: new TextDecoder().decode(payload.subarray(2)),
  };
}

Deno.test("hostAllowed answers IP addresses, localhost, the listen host and listed names only", () => {
  const allowed = parseHosts("jobs.example.com, .corp.example");
  for (
    const host of [
      null,
      "127.0.0.1:8080",
      "10.1.2.3",
      "[::1]:8080",
      "localhost:8080",
      "LOCALHOST",
      "app.localhost:3000",
      "devbox:8080",
      "jobs.example.com",
      "JOBS.example.com.:443",
      "corp.example",
      "a.b.corp.example:80",
    ]
  ) {
    assert.equal(hostAllowed(host, allowed, "devbox"), true, String(host));
  }
  for (
    const host of [
      "evil.example:8080",
      "jobs.example.com.evil.example",
      "xcorp.example",
      "localhost.evil.example",
      "127.0.0.1.nip.io",
      "",
      "a b",
    ]
  ) {
    assert.equal(hostAllowed(host, allowed, "devbox"), false, host);
  }
  assert.equal(hostAllowed("evil.example", ["*"], "127.0.0.1"), true);
});

Deno.test("--allowed-hosts takes host names and refuses URLs and ports, naming the option", () => {
  assert.deepEqual(parseHosts(" A.example ,.b.example,*, "), ["a.example", ".b.example", "*"]);
  for (const bad of ["http://a.example", "a.example:8080", "a/b", "-", "a..b@"]) {
    assert.throws(
      () => parseHosts(bad),
      (e) => e instanceof ConfigError && /--allowed-hosts/.test(e.message),
      bad,
    );
  }
});

Deno.test("a server without auth refuses a name it is not known by (DNS rebinding), over HTTP and WebSocket", async () => {
  await withServer({}, async (server) => {
    const evil = `rebind.evil.example:${server.port}`;
    // A read, a write and the status page under the rebound name: all refused.
    const list = await raw(server.port, evil, "GET /jobs HTTP/1.1");
    assert.equal(list.status, 403, list.text);
    const body = JSON.parse(list.text.slice(list.text.indexOf("\r\n\r\n") + 4));
    assert.equal(body.error.code, "host_not_allowed");
    assert.match(body.error.message, /--allowed-hosts/);
    const json = JSON.stringify({ id: "rebound" });
    const create = await raw(server.port, evil, "POST /jobs HTTP/1.1", [
      "Content-Type: application/json",
      `Content-Length: ${json.length}`,
      `Origin: http://${evil}`,
    ], json);
    assert.equal(create.status, 403, create.text);
    assert.equal((await raw(server.port, evil, "GET / HTTP/1.1")).status, 403);
    const ws = await raw(server.port, evil, "GET /ws?all=1 HTTP/1.1", UPGRADE);
    assert.deepEqual(closeFrame(ws.bytes), { code: 1008, reason: "host not allowed" });
    // Nothing was made, and the server's own names still work.
    const own = await raw(server.port, `127.0.0.1:${server.port}`, "GET /jobs HTTP/1.1");
    assert.equal(own.status, 200, own.text);
    assert.doesNotMatch(own.text, /rebound/);
    assert.equal(
      (await raw(server.port, `localhost:${server.port}`, "GET /jobs HTTP/1.1")).status,
      200,
    );
    const ownWs = await raw(
      server.port,
      `localhost:${server.port}`,
      "GET /ws?all=1 HTTP/1.1",
      UPGRADE,
    );
    assert.match(ownWs.text, /^HTTP\/1\.1 101/);
    assert.equal(closeFrame(ownWs.bytes), undefined);
  });
});

Deno.test("--allowed-hosts lets a server without auth answer a name; a server with auth answers any", async () => {
  await withServer({ "allowed-hosts": ".jobs.example" }, async (server) => {
    const named = await raw(server.port, `ci.jobs.example:${server.port}`, "GET /jobs HTTP/1.1");
    assert.equal(named.status, 200, named.text);
    assert.equal((await raw(server.port, "other.example", "GET /jobs HTTP/1.1")).status, 403);
  });
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("alice", "read");
    const named = await raw(server.port, "jobs.example.net", "GET /jobs HTTP/1.1", [
      `Authorization: Bearer ${token}`,
    ]);
    assert.equal(named.status, 200, named.text);
  });
});

Deno.test("a Host header that is no host is refused with 400, never a 500, with or without auth", async () => {
  for (const overrides of [{}, { ...AUTH }]) {
    await withServer(overrides, async (server) => {
      const token = await tokenFor("ops", "admin");
      for (
        const host of [
          "a b",
          "a<b",
          "[::1",
          "a%b",
          "x:80:80",
          "a/b",
          "a?b",
          "a#b",
          "@x",
          // Made of a host's characters, and still no host a URL takes.
          "256.1.1.1",
          "1.2.3.4.5",
          "999999999999",
          "0x100000000",
          "localhost:65536",
          "xn--a",
        ]
      ) {
        for (const path of ["/healthz", "/jobs", "/"]) {
          const reply = await raw(server.port, host, `GET ${path} HTTP/1.1`, [
            `Authorization: Bearer ${token}`,
          ]);
          assert.equal(reply.status, 400, `${host} ${path}: ${reply.text}`);
          assert.match(reply.text, /"invalid_host"/);
        }
        const ws = await raw(server.port, host, "GET /ws?all=1 HTTP/1.1", UPGRADE);
        assert.deepEqual(closeFrame(ws.bytes), { code: 1008, reason: "invalid host" }, host);
      }
      // Names, addresses and ports still pass.
      for (const host of [`127.0.0.1:${server.port}`, "localhost", "[::1]:80", "my_host.local"]) {
        const reply = await raw(server.port, host, "GET /healthz HTTP/1.1");
        // Without auth a name it is not known by is refused, as a guard against rebinding.
        const expected = host === "my_host.local" && !("jwt-secret" in overrides) ? 403 : 200;
        assert.equal(reply.status, expected, `${host}: ${reply.text}`);
      }
      const metrics = await raw(server.port, `127.0.0.1:${server.port}`, "GET /metrics HTTP/1.1", [
        `Authorization: Bearer ${token}`,
      ]);
      assert.match(metrics.text, /jobwire_server_errors_total 0\b/);
    });
  }
});

Deno.test("the server's own origin is told by host and port, whatever the Host header's case or written-out default port", () => {
  for (
    const [origin, host] of [
      ["https://jobs.example.com", "jobs.example.com:443"],
      ["https://jobs.example.com", "jobs.example.com"],
      ["http://jobs.example.com", "jobs.example.com:80"],
      ["http://localhost:9100", "LOCALHOST:9100"],
      ["https://Jobs.Example.com", "jobs.EXAMPLE.com"],
      // A TLS-terminating proxy: https outside, the Host header passed on as it was.
      ["https://jobs.example.com:8443", "jobs.example.com:8443"],
    ]
  ) {
    assert.equal(crossOrigin(origin!, host!), false, `${origin} against Host ${host}`);
    assert.equal(originAllowed(origin!, host!, []), true, `${origin} against Host ${host}`);
  }
  for (
    const [origin, host] of [
      ["https://jobs.example.com", "jobs.example.com:80"],
      ["http://jobs.example.com", "jobs.example.com:443"],
      ["http://localhost:9100", "localhost:9101"],
      ["http://jobs.example.com.evil.example", "jobs.example.com"],
      ["null", "jobs.example.com"],
      ["file://jobs.example.com", "jobs.example.com"],
    ]
  ) {
    assert.equal(crossOrigin(origin!, host!), true, `${origin} against Host ${host}`);
    assert.equal(originAllowed(origin!, host!, []), false, `${origin} against Host ${host}`);
  }
});

Deno.test("a write from the server's own origin behind a proxy that writes the default port out is not refused", async () => {
  await withServer(AUTH, async (server) => {
    const token = await tokenFor("alice", "read write");
    const body = JSON.stringify({ id: "proxied" });
    const created = await raw(server.port, "jobs.example.com:443", "POST /jobs HTTP/1.1", [
      `Authorization: Bearer ${token}`,
      "Origin: https://jobs.example.com",
      "Content-Type: application/json",
      `Content-Length: ${body.length}`,
    ], body);
    assert.equal(created.status, 201, created.text);
    // Same origin: no CORS headers are needed, and none are sent.
    assert.doesNotMatch(created.text, /access-control-allow-origin/i);
  });
});
