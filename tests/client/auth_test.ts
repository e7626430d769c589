import assert from "node:assert/strict";
import { type FetchLike, watchJob, type WatchJobOptions, watchJobs } from "../../src/client/mod.ts";
import { createJob, logEvent, publish } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { AUTH, tokenFor } from "../_helpers/tokens.ts";
import { createJobAs } from "../auth/_support.ts";
import { failingWebSocket, filteredWebSocket, Recorder } from "../_helpers/watch.ts";

/** The real network, with the URL and headers of every request recorded. */
function recording(): FetchLike & { seen: { url: URL; headers: Headers }[] } {
  const seen: { url: URL; headers: Headers }[] = [];
  const wrapped = (input: string, init?: RequestInit) => {
    seen.push({ url: new URL(input), headers: new Headers(init?.headers) });
    return fetch(input, init);
  };
  return Object.assign(wrapped, { seen });
}

Deno.test("the token goes in WebSocket URLs and in the Authorization header of HTTP requests", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    const urls: string[] = [];
    const Ws = filteredWebSocket(() => true);
    const Recording = class extends Ws {
      constructor(url: string) {
        super(url);
        urls.push(url);
      }
    };
    const network = recording();
    const watcher = watchJob(server.url, id, {
      token: "s3cret",
      WebSocket: Recording,
      fetch: network,
    });
    const rec = new Recorder(watcher);
    try {
      await rec.until(1);
      const url = new URL(urls[0]!);
      assert.equal(url.protocol, "ws:");
      assert.equal(url.pathname, `/ws/jobs/${id}`);
      assert.equal(url.searchParams.get("token"), "s3cret");
      assert.equal(url.searchParams.get("since"), "0");
      assert.equal(url.searchParams.get("close_on_finish"), "1");
    } finally {
      watcher.close();
    }

    const sse = recording();
    const tickets: string[] = [];
    const second = watchJob(server.url, id, {
      token: () => "fresh",
      getTicket: (jobId) => {
        tickets.push(jobId);
        return Promise.resolve(`ticket-${tickets.length}`);
      },
      WebSocket: failingWebSocket(),
      fetch: sse,
      initialDelayMs: 5,
    });
    const rec2 = new Recorder(second);
    try {
      await rec2.until(1);
      assert.equal(second.transport, "sse");
      const stream = sse.seen.find((r) => r.headers.get("accept") === "text/event-stream")!;
      assert.equal(stream.headers.get("authorization"), "Bearer fresh");
      assert.equal(stream.headers.get("last-event-id"), "0");
      assert.equal(stream.url.searchParams.get("token"), null, "no token in HTTP URLs");
      assert.match(stream.url.searchParams.get("ticket") ?? "", /^ticket-\d$/);
      assert.deepEqual(new Set(tickets), new Set([id]));
      assert.ok(sse.seen.every((r) => r.headers.get("authorization") === "Bearer fresh"));
    } finally {
      second.close();
    }
  });
});

Deno.test("a watcher given an aborted signal never connects; aborting later closes it", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const before = new AbortController();
    before.abort();
    const idle = watchJob(server.url, id, { signal: before.signal });
    assert.equal(idle.state, "closed");
    const later = new AbortController();
    const watcher = watchJob(server.url, id, { signal: later.signal });
    const rec = new Recorder(watcher);
    await rec.next("connected");
    later.abort();
    assert.equal(watcher.state, "closed");
    assert.equal((await rec.next("closed")).reason, "aborted");
  });
});

for (const transport of ["sse", "poll"] as const) {
  Deno.test(`a token function is asked again after a 401 over ${transport}, not given up on`, async () => {
    await withServer(AUTH, async (server) => {
      const good = await tokenFor("alice", "read write");
      const id = await createJobAs(server.url, good);
      let calls = 0;
      const watcher = watchJob(server.url, id, {
        token: () => ++calls === 1 ? "stale" : good,
        transports: [transport],
        initialDelayMs: 5,
      });
      const rec = new Recorder(watcher);
      try {
        await fetch(`${server.url}/jobs/${id}/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${good}`, "content-type": "application/json" },
          body: JSON.stringify(logEvent(1)),
        }).then((r) => r.body?.cancel());
        assert.deepEqual(await rec.until(1), [1]);
        assert.ok(calls >= 2, `token asked ${calls} times`);
      } finally {
        watcher.close();
      }
    });
  });
}

Deno.test("getTicket is refused for a stream of several jobs or all of them, where no ticket works", () => {
  const getTicket = () => Promise.resolve("ticket");
  for (const options of [{ jobs: ["a", "b"], getTicket }, { all: true, getTicket }]) {
    assert.throws(
      () => watchJobs("http://127.0.0.1:1", options),
      (error: Error) => error instanceof TypeError && /one job/.test(error.message),
    );
  }
});

/** Watches `id` until the watcher closes: its last error and the reason it closed with. */
async function untilClosed(base: string, id: string, options: WatchJobOptions) {
  const watcher = watchJob(base, id, options);
  const rec = new Recorder(watcher);
  try {
    const closed = await rec.next("closed");
    return { error: rec.all("error").at(-1), reason: closed.reason };
  } finally {
    watcher.close();
  }
}

Deno.test("a refused watcher ends with the same error over WebSocket, SSE and polling", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read write");
    const id = await createJobAs(server.url, alice);
    const cases = [
      { token: bob, code: "forbidden", status: 403, message: `No access to job ${id}` },
      { token: "not-a-token", code: "invalid_token", status: 401, message: "The token is invalid" },
    ];
    for (const expected of cases) {
      const seen: string[] = [];
      for (const transport of ["websocket", "sse", "poll"] as const) {
        const { error, reason } = await untilClosed(server.url, id, {
          token: expected.token,
          transports: [transport],
          initialDelayMs: 5,
        });
        seen.push(`${transport}: ${error?.code} ${error?.status} ${error?.message} / ${reason}`);
      }
      const { code, status, message } = expected;
      assert.deepEqual(seen, [
        `websocket: ${code} ${status} ${message} / ${message}`,
        `sse: ${code} ${status} ${message} / ${message}`,
        `poll: ${code} ${status} ${message} / ${message}`,
      ]);
    }
  });
});

Deno.test("a token function is not asked again after a refusal (403) over any transport", async () => {
  await withServer(AUTH, async (server) => {
    const alice = await tokenFor("alice", "read write");
    const bob = await tokenFor("bob", "read write");
    const id = await createJobAs(server.url, alice);
    for (const transport of ["websocket", "sse", "poll"] as const) {
      let calls = 0;
      const { error } = await untilClosed(server.url, id, {
        token: () => (calls++, bob),
        transports: [transport],
        initialDelayMs: 5,
        maxAttempts: 4,
      });
      assert.equal(`${error?.code} ${error?.status}`, "forbidden 403", transport);
      assert.equal(calls, 1, `${transport}: token asked ${calls} times`);
    }
  });
});
