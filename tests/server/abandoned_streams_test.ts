/**
 * Streams whose clients went away just before the server stops: the shutdown closes
 * every stream, and one the runtime already ended must not stop it with an error.
 */
import assert from "node:assert/strict";
import { http, publishLarge, waitFor } from "../_helpers/clients.ts";
import { withChildServer } from "../_helpers/server.ts";

const STREAMS = 500;

// The race is narrow: a few rounds per server shape make it show on a build that has it.
for (const [workers, round] of [1, 2].flatMap((w) => [1, 2, 3].map((r) => [w, r] as const))) {
  Deno.test(`a server (${workers} isolate(s)) stops cleanly right after its SSE clients left (${round})`, async () => {
    await withChildServer(workers, [], async (server) => {
      assert.equal((await http(server.url, "POST", "/jobs", { id: "left" })).status, 201);
      // Raw connections that never read: closing one with unread bytes resets it, as a
      // client process that exits does.
      const { hostname, port } = new URL(server.url);
      const request = new TextEncoder().encode(
        `GET /jobs/left/events?since=0 HTTP/1.1\r\nHost: ${hostname}\r\n` +
          "Accept: text/event-stream\r\n\r\n",
      );
      const connections = await Promise.all(Array.from({ length: STREAMS }, async () => {
        const connection = await Deno.connect({ hostname, port: Number(port) });
        await connection.write(request);
        return connection;
      }));
      await waitFor(
        async () => {
          const stats = await http(server.url, "GET", "/stats");
          return stats.json.connections.sse === STREAMS;
        },
        10_000,
        "every stream open",
      );
      for (let i = 0; i < 20; i++) {
        const published = await http(server.url, "POST", "/jobs/left/events", {
          type: "log",
          data: { line: `line ${i}` },
        });
        assert.equal(published.status, 201);
      }
      await new Promise((r) => setTimeout(r, 100));
      for (const connection of connections) connection.close();
      const status = await server.stop("SIGTERM");
      assert.doesNotMatch(server.output(), /Uncaught|error:/);
      assert.equal(status.code, 0);
    });
  });
}

for (const workers of [1, 2]) {
  Deno.test(`a server (${workers} isolate(s)) stops within its shutdown grace though a client never reads what it was sent`, async () => {
    await withChildServer(workers, [], async (server) => {
      assert.equal((await http(server.url, "POST", "/jobs", { id: "big" })).status, 201);
      // 18 MB of history: a replay to a client that does not read is cut at its budget,
      // and the bytes and the close it was sent stay in the connection.
      await publishLarge(server.url, "big", 300);
      const { hostname, port } = new URL(server.url);
      const connection = await Deno.connect({ hostname, port: Number(port) });
      try {
        await connection.write(new TextEncoder().encode(
          `GET /jobs/big/events?since=0 HTTP/1.1\r\nHost: ${hostname}\r\n` +
            "Accept: text/event-stream\r\n\r\n",
        ));
        await waitFor(
          async () => (await http(server.url, "GET", "/stats")).json.connections.closing === 1,
          10_000,
          "the stream cut, its client not reading",
        );
        // Bounded so that a server that waits for the client forever fails here instead of
        // holding the suite: the grace is 5 s, and the launcher of two isolates adds 5 more.
        let timer: number | undefined;
        const status = await Promise.race([
          server.stop("SIGTERM"),
          new Promise<undefined>((resolve) => (timer = setTimeout(resolve, 30_000))),
        ]);
        clearTimeout(timer);
        assert.ok(status !== undefined, "the server still runs 30 s after SIGTERM");
        assert.equal(status.code, 0, server.output());
      } finally {
        connection.close();
      }
    });
  });
}
