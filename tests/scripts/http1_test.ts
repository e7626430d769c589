/**
 * The bench's lean HTTP/1.1 client against a real `Deno.serve`: several requests on one
 * kept-alive connection, bodies with a length or in chunks, the status of each, and an
 * error when the server closes the connection.
 */
import assert from "node:assert/strict";
import { Http1Connection, requestBytes } from "../../scripts/_http1.ts";

Deno.test("the bench's HTTP/1.1 client reads each response whole on one connection", async () => {
  const seen: string[] = [];
  const clientPorts = new Set<number>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req, info) => {
      seen.push(`${req.method} ${new URL(req.url).pathname} ${await req.text()}`);
      clientPorts.add(info.remoteAddr.port);
      const path = new URL(req.url).pathname;
      if (path === "/chunked") {
        // A streamed body goes out in chunks (no content-length).
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("x".repeat(70_000)));
            controller.enqueue(new TextEncoder().encode("tail"));
            controller.close();
          },
        });
        return new Response(body, { status: 200 });
      }
      if (path === "/missing") return new Response("no such thing", { status: 404 });
      return new Response(JSON.stringify({ sequences: [seen.length] }), { status: 201 });
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const connection = await Http1Connection.open(url);
  try {
    const publish = requestBytes("POST", `${url}/jobs/a/events?x=1`, '{"type":"log"}', {
      "content-type": "application/json",
    });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push(await connection.send(publish));
    statuses.push(await connection.send(requestBytes("GET", `${url}/chunked`, "", {})));
    statuses.push(await connection.send(requestBytes("POST", `${url}/missing`, "é", {})));
    statuses.push(await connection.send(publish));
    assert.deepEqual(statuses, [201, 201, 201, 200, 404, 201]);
    assert.deepEqual(seen, [
      'POST /jobs/a/events {"type":"log"}',
      'POST /jobs/a/events {"type":"log"}',
      'POST /jobs/a/events {"type":"log"}',
      "GET /chunked ",
      "POST /missing é",
      'POST /jobs/a/events {"type":"log"}',
    ]);
    assert.equal(clientPorts.size, 1, "every request on the one kept-alive connection");
  } finally {
    connection.close();
    await server.shutdown();
  }
});

Deno.test("the bench's HTTP/1.1 client fails when the server closes the connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(1024));
    conn.close();
  })();
  const connection = await Http1Connection.open(`http://127.0.0.1:${listener.addr.port}`);
  try {
    await assert.rejects(
      connection.send(requestBytes("POST", "http://127.0.0.1/x", "{}", {})),
      /closed the connection/,
    );
  } finally {
    connection.close();
    await accepted;
    listener.close();
  }
});
