/**
 * The benchmark's yardstick: the thinnest `Deno.serve` broadcaster a team would write by
 * hand. No persistence, no auth, no replay, no validation beyond JSON.parse; sequences
 * in memory. Same envelope and framing as jobwire, so clients cannot tell them apart.
 *
 *   deno run --allow-net scripts/reference_server.ts --port 8090
 *
 * Routes: `GET /ws?job=ID` (WebSocket), `GET /sse?job=ID` (SSE), `POST /publish?job=ID`
 * with one `{type, data}` or `{events: [...]}`.
 *
 * @module
 */

const port = Number(Deno.args[Deno.args.indexOf("--port") + 1] ?? 8090);
const utf8 = new TextEncoder();

interface Job {
  sequence: number;
  sockets: Set<WebSocket>;
  streams: Set<ReadableStreamDefaultController<Uint8Array>>;
}

const jobs = new Map<string, Job>();

function job(id: string): Job {
  let entry = jobs.get(id);
  if (entry === undefined) {
    entry = { sequence: 0, sockets: new Set(), streams: new Set() };
    jobs.set(id, entry);
  }
  return entry;
}

function broadcast(id: string, type: string, data: unknown): void {
  const entry = job(id);
  const sequence = ++entry.sequence;
  const envelope = JSON.stringify({
    type,
    job_id: id,
    sequence,
    timestamp: new Date().toISOString(),
    data,
  });
  for (const socket of entry.sockets) {
    if (socket.readyState === WebSocket.OPEN) socket.send(envelope);
  }
  if (entry.streams.size > 0) {
    const frame = utf8.encode(`id: ${sequence}\nevent: ${type}\ndata: ${envelope}\n\n`);
    for (const controller of entry.streams) controller.enqueue(frame);
  }
}

Deno.serve({
  port,
  hostname: "127.0.0.1",
  onListen: ({ port }) => console.log(`reference listening on http://127.0.0.1:${port}`),
}, async (request) => {
  const url = new URL(request.url);
  const id = url.searchParams.get("job") ?? "default";
  if (url.pathname === "/ws") {
    const { socket, response } = Deno.upgradeWebSocket(request);
    const entry = job(id);
    socket.onopen = () => {
      entry.sockets.add(socket);
      socket.send(JSON.stringify({ type: "connection", job_id: id, sequence: null, data: {} }));
    };
    socket.onclose = () => entry.sockets.delete(socket);
    return response;
  }
  if (url.pathname === "/sse") {
    const entry = job(id);
    let self: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller;
        entry.streams.add(controller);
        controller.enqueue(
          utf8.encode(`event: connection\ndata: {"type":"connection","sequence":null}\n\n`),
        );
      },
      cancel() {
        entry.streams.delete(self);
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }
  if (url.pathname === "/publish" && request.method === "POST") {
    const body = await request.json();
    const events = Array.isArray(body.events) ? body.events : [body];
    const first = job(id).sequence + 1;
    for (const event of events) broadcast(id, event.type, event.data);
    return Response.json({ sequences: events.map((_: unknown, i: number) => first + i) }, {
      status: 201,
    });
  }
  if (url.pathname === "/healthz") return new Response("ok");
  return new Response("not found", { status: 404 });
});
