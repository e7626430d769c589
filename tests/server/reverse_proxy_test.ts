/**
 * jobwire behind a reverse proxy: `--trusted-proxies` decides whose `X-Forwarded-For` and
 * `X-Forwarded-Proto` are believed (per-address limits, the cookie's `Secure`, the URLs of a
 * created job), and the README's nginx configuration, run by a real nginx, passes every
 * transport through live.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { http, StreamClient, waitFor } from "../_helpers/clients.ts";
import { startTestServer, type TestServer, withServer } from "../_helpers/server.ts";
import { AUTH, bearer, tokenFor } from "../_helpers/tokens.ts";
import {
  call,
  createJobAs,
  expectStreamRefused,
  expectWsOpen,
  expectWsRefused,
  openStream,
  publishAs,
} from "../auth/_support.ts";
import { freePort, nginxInstalled, runNginx, type RunningNginx } from "../../scripts/_nchan.ts";

/** Streams per client address: one, with loopback counted like any address. */
const ONE_PER_ADDRESS = { "max-connections-per-ip": 1, "limits-exempt-ips": "none" };

function from(address: string, headers: Record<string, string> = {}): Record<string, string> {
  return { "x-forwarded-for": address, ...headers };
}

Deno.test("behind a trusted proxy, per-address limits count the forwarded client, not the proxy", async () => {
  await withServer(
    { ...AUTH, ...ONE_PER_ADDRESS, "trusted-proxies": "loopback" },
    async (server) => {
      const token = await tokenFor("alice", "read write");
      const id = await createJobAs(server.url, token);
      const url = `${server.url}/jobs/${id}/events`;
      const first = await openStream(url, "sse", { ...bearer(token), ...from("203.0.113.7") });
      assert.equal(first.status, 200, first.text);
      try {
        // The same client again: over its one stream.
        await expectStreamRefused(url, 429, undefined, "sse", {
          ...bearer(token),
          ...from("203.0.113.7"),
        });
        // A client that claims another address to its left is still the proxy's hop.
        await expectStreamRefused(url, 429, undefined, "sse", {
          ...bearer(token),
          ...from("198.51.100.1, 203.0.113.7"),
        });
        // Another client, through the same proxy, over WebSocket.
        const ws = await expectWsOpen(
          `${server.url}/ws/jobs/${id}?token=${token}`,
          from("203.0.113.8"),
        );
        await expectWsRefused(`${server.url}/ws/jobs/${id}?token=${token}`, 1013, undefined, {
          ...from("203.0.113.8"),
        });
        await ws.close();
      } finally {
        await first.stream?.close();
      }
    },
  );
});

Deno.test("an address a trusted proxy reported is counted even when it is exempt as a peer", async () => {
  // Default exemptions (loopback): the proxy's own requests are not counted per address,
  // but a client inside a trusted range could write 127.0.0.1 in X-Forwarded-For.
  await withServer(
    { ...AUTH, "max-connections-per-ip": 1, "trusted-proxies": "loopback" },
    async (server) => {
      const token = await tokenFor("alice", "read write");
      const id = await createJobAs(server.url, token);
      const url = `${server.url}/jobs/${id}/events`;
      const first = await openStream(url, "sse", { ...bearer(token), ...from("127.0.0.5") });
      assert.equal(first.status, 200, first.text);
      const own: Awaited<ReturnType<typeof openStream>>[] = [];
      try {
        await expectStreamRefused(url, 429, undefined, "sse", {
          ...bearer(token),
          ...from("127.0.0.5"),
        });
        // Requests of the proxy itself (no header) stay exempt.
        for (let i = 0; i < 2; i++) {
          own.push(await openStream(url, "sse", bearer(token)));
          assert.equal(own.at(-1)!.status, 200, own.at(-1)!.text);
        }
      } finally {
        await first.stream?.close();
        for (const stream of own) await stream.stream?.close();
      }
    },
  );
});

Deno.test("from an address not trusted, X-Forwarded-For and X-Forwarded-Proto are ignored", async () => {
  // The default trusts no proxy: every stream below comes from 127.0.0.1, whatever it says.
  await withServer({ ...AUTH, ...ONE_PER_ADDRESS }, async (server) => {
    const token = await tokenFor("alice", "read write");
    const id = await createJobAs(server.url, token);
    const url = `${server.url}/jobs/${id}/events`;
    const first = await openStream(url, "sse", { ...bearer(token), ...from("203.0.113.7") });
    assert.equal(first.status, 200, first.text);
    try {
      await expectStreamRefused(url, 429, undefined, "sse", {
        ...bearer(token),
        ...from("203.0.113.9"),
      });
    } finally {
      await first.stream?.close();
    }
    const created = await call(server.url, token, "POST", "/jobs", {}, {
      "x-forwarded-proto": "https",
    });
    assert.equal(created.status, 201, created.text);
    assert.match(created.json.urls.ws, /^ws:\/\//);
    const cookie = await http(server.url, "POST", "/auth/cookie", undefined, {
      ...bearer(token),
      "x-forwarded-proto": "https",
    });
    assert.equal(cookie.status, 200, cookie.text);
    assert.doesNotMatch(cookie.headers.get("set-cookie") ?? "", /Secure/i);
  });
});

Deno.test("X-Forwarded-Proto https from a trusted proxy: job URLs in https and wss, a Secure cookie", async () => {
  await withServer({ ...AUTH, "trusted-proxies": "127.0.0.1" }, async (server) => {
    const token = await tokenFor("alice", "read write");
    const proto = { "x-forwarded-proto": "https" };
    const created = await call(server.url, token, "POST", "/jobs", {}, proto);
    assert.equal(created.status, 201, created.text);
    const host = new URL(server.url).host;
    const id = created.json.job.id;
    assert.equal(created.json.urls.ws, `wss://${host}/ws/jobs/${id}`);
    assert.equal(created.json.urls.sse, `https://${host}/jobs/${id}/events`);
    assert.equal(created.json.urls.status, `https://${host}/#/jobs/${id}`);
    const plain = await call(server.url, token, "POST", "/jobs", {});
    assert.match(plain.json.urls.ws, /^ws:\/\//);
    for (const path of ["/auth/cookie", "/auth/logout"]) {
      const reply = await http(server.url, "POST", path, undefined, { ...bearer(token), ...proto });
      assert.equal(reply.status, 200, reply.text);
      assert.match(reply.headers.get("set-cookie") ?? "", /; HttpOnly; SameSite=Strict; Secure$/);
    }
    const cookie = await http(server.url, "POST", "/auth/cookie", undefined, bearer(token));
    assert.doesNotMatch(cookie.headers.get("set-cookie") ?? "", /Secure/i);
  });
});

/** The nginx blocks of the README's _Behind a reverse proxy_: the `map` and the `location`. */
async function readmeNginxBlocks(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const marker = readme.indexOf("<!-- nginx config: tested -->");
  assert.ok(marker >= 0, "the README's nginx configuration is gone");
  const block = /```nginx\n([\s\S]*?)```/.exec(readme.slice(marker));
  assert.ok(block, "no nginx block after the marker");
  return block[1]!;
}

/** The address nginx connects to jobwire from: a loopback address of its own, as a proxy on another host would have. */
const NGINX_SOURCE = "127.0.0.2";

/**
 * nginx in the foreground with the README's blocks, proxying to `upstream` (host:port)
 * from {@link NGINX_SOURCE}, so that the test's clients (127.0.0.1) are not proxies.
 */
async function startNginx(upstream: string): Promise<RunningNginx> {
  const blocks = await readmeNginxBlocks();
  // The block's second comment opens the part that goes in a server block.
  const [map, rest] = blocks.split("# In the server block");
  assert.ok(map !== undefined && rest !== undefined, blocks);
  const location = rest.slice(rest.indexOf("\n") + 1);
  assert.ok(location.includes("proxy_pass http://127.0.0.1:8080;"), location);
  const dir = await Deno.makeTempDir({ prefix: "jobwire-nginx-" });
  // Worker processes run as an unprivileged user when the master is root: they need to
  // reach the temp paths nginx makes for them here.
  await Deno.chmod(dir, 0o755);
  const port = freePort();
  await Deno.writeTextFile(
    join(dir, "nginx.conf"),
    `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${join(dir, "body")};
  proxy_temp_path ${join(dir, "proxy")};
  proxy_bind ${NGINX_SOURCE};
  ${map}
  server {
    listen 127.0.0.1:${port};
    ${location.replace("proxy_pass http://127.0.0.1:8080;", `proxy_pass http://${upstream};`)}
  }
}
`,
  );
  return await runNginx(dir, `http://127.0.0.1:${port}`);
}

Deno.test({
  name:
    "the README's nginx configuration: WebSocket, SSE, NDJSON and long-poll live through a real nginx, each client counted as nginx saw it",
  ignore: !nginxInstalled(),
  async fn() {
    let server: TestServer | undefined;
    let nginx: RunningNginx | undefined;
    try {
      server = await startTestServer({
        ...AUTH,
        "max-connections-per-ip": 3,
        "limits-exempt-ips": "none",
        "trusted-proxies": NGINX_SOURCE,
        heartbeat: "1s",
      });
      nginx = await startNginx(new URL(server.url).host);
      const base = nginx.url;
      const token = await tokenFor("alice", "read write");
      // A browser on the proxy's origin (a port of its own): its Origin matches, and the
      // job's URLs name that origin.
      const created = await call(base, token, "POST", "/jobs", {}, { origin: base });
      assert.equal(created.status, 201, created.text);
      const id = created.json.job.id;
      assert.equal(created.json.urls.ws, `${base.replace(/^http/, "ws")}/ws/jobs/${id}`);
      // Three streams of one client (127.0.0.1 to nginx), whatever each wrote in
      // X-Forwarded-For: nginx appends the address it saw, and that one is not a proxy.
      const ws = await expectWsOpen(`${base}/ws/jobs/${id}?token=${token}`, {
        origin: base,
        ...from("203.0.113.1"),
      });
      const sse = await StreamClient.open(`${base}/jobs/${id}/events`, "sse", {
        ...bearer(token),
        ...from("203.0.113.2"),
      });
      const ndjson = await StreamClient.open(
        `${base}/jobs/${id}/events?format=ndjson`,
        "ndjson",
        bearer(token),
      );
      try {
        await expectStreamRefused(`${base}/jobs/${id}/events`, 429, undefined, "sse", {
          ...bearer(token),
          ...from(`203.0.113.9, ${NGINX_SOURCE}`),
        });
        await expectWsRefused(`${base}/ws/jobs/${id}?token=${token}`, 1013, undefined, {
          ...from("127.0.0.1"),
        });
        // The same client straight to jobwire is the same address.
        await expectStreamRefused(`${server.url}/jobs/${id}/events`, 429, undefined, "sse", {
          ...bearer(token),
          ...from("203.0.113.5"),
        });
        // Events go through live, while every stream stays open: nothing waits in a buffer.
        const published = await publishAs(base, token, id, "through the proxy");
        assert.equal(published.status, 201, published.text);
        const isLog = (m: { type?: string; json?: { type?: string } }) =>
          (m.json ?? m).type === "log";
        const [viaWs, viaSse, viaNdjson] = await Promise.all([
          ws.next(isLog, 5000),
          sse.next(isLog, 5000),
          ndjson.next(isLog, 5000),
        ]);
        for (const event of [viaWs, viaSse.json, viaNdjson]) {
          assert.equal(event.data.line, "through the proxy");
          assert.equal(event.sequence, 1);
        }
        // Heartbeats keep flowing through an idle stream (1 s here).
        await waitFor(() => sse.messages.some((m) => m.event === "heartbeat"), 5000);
      } finally {
        await ws.close();
        await sse.close();
        await ndjson.close();
      }
      // A long-poll waits through nginx and answers with the next event.
      let answered = false;
      const poll = http(base, "GET", `/jobs/${id}/events?since=1&wait=10`, undefined, bearer(token))
        .finally(() => answered = true);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(answered, false, "the long-poll answered before there was an event");
      assert.equal((await publishAs(base, token, id, "after the wait")).status, 201);
      const polled = await poll;
      assert.equal(polled.status, 200, polled.text);
      assert.deepEqual(polled.json.events.map((e: { sequence: number }) => e.sequence), [2]);
    } finally {
      await nginx?.stop();
      await server?.close();
    }
  },
});
