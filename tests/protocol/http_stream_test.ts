import assert from "node:assert/strict";
import { createJob, http, logEvent, publish, StreamClient } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";
import { serveHttpStream } from "../../src/protocol/http_stream.ts";
import { codecFor } from "../../src/protocol/codec.ts";
import type { Session, SessionContext } from "../../src/protocol/session.ts";
import { Sessions } from "../../src/protocol/sessions.ts";

const isEvent = (m: { json: { sequence: number | null } }) => m.json.sequence !== null;

Deno.test("SSE stream frames events with id, event and data, after retry and a comment", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent("one"));
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events`, "sse");
    try {
      assert.equal(sse.response.headers.get("content-type"), "text/event-stream; charset=utf-8");
      assert.equal(sse.response.headers.get("x-accel-buffering"), "no");
      assert.match(sse.response.headers.get("cache-control") ?? "", /no-cache/);
      const connection = await sse.next();
      assert.equal(connection.event, "connection");
      // The place its replay starts after: where an EventSource resumes if cut before it.
      assert.equal(connection.id, "0");
      assert.equal(connection.json.data.last_sequence, 1);
      const first = await sse.next();
      assert.deepEqual([first.id, first.event, first.json.sequence], ["1", "log", 1]);
      await publish(server.url, id, { type: "progress", data: { progress: 10 } });
      const live = await sse.next();
      assert.deepEqual([live.id, live.event, live.json.data.percentage], ["2", "progress", "10%"]);
      assert.ok(sse.raw.startsWith("retry: "), "retry comes first");
      assert.deepEqual(sse.retries.length, 1);
      assert.ok(sse.comments >= 1);
    } finally {
      await sse.close();
    }
  });
});

Deno.test("SSE resumes after Last-Event-ID, which wins over since", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2), logEvent(3), logEvent(4), logEvent(5));
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events?since=1`, "sse", {
      "last-event-id": "3",
    });
    try {
      const connection = await sse.next();
      assert.equal(connection.json.data.replay.since, 3);
      const events = [await sse.next(), await sse.next()];
      assert.deepEqual(events.map((e) => e.id), ["4", "5"]);
    } finally {
      await sse.close();
    }
  });
});

Deno.test("SSE truncation signal travels inside the stream", async () => {
  await withServer({ "max-events-per-job": 3 }, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1), logEvent(2), logEvent(3), logEvent(4), logEvent(5));
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events`, "sse", {
      "last-event-id": "0",
    });
    try {
      const connection = await sse.next();
      assert.deepEqual(connection.json.data.replay.truncated, true);
      assert.deepEqual(connection.json.data.replay.first_available, 3);
      assert.equal((await sse.next()).id, "3");
    } finally {
      await sse.close();
    }
  });
});

Deno.test("SSE with close_on_finish ends after the terminal status; a reconnect after the end gets 204", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events?close_on_finish=1`, "sse");
    await sse.next((m) => m.event === "connection");
    await http(server.url, "POST", `/jobs/${id}/start`);
    await http(server.url, "POST", `/jobs/${id}/cancel`, { reason: "user asked" });
    await sse.done;
    const events = sse.messages.filter(isEvent);
    assert.deepEqual(events.map((m) => m.json.data.status), ["running", "cancelled"]);
    const again = await fetch(`${server.url}/jobs/${id}/events?close_on_finish=1`, {
      headers: { accept: "text/event-stream", "last-event-id": "2" },
    });
    assert.equal(again.status, 204);
    await again.body?.cancel();
    // Past the end (the id's job was made again since, or a bad id): the stream tells so.
    const past = await StreamClient.open(
      `${server.url}/jobs/${id}/events?close_on_finish=1`,
      "sse",
      {
        "last-event-id": "9",
      },
    );
    const greeting = await past.next((m) => m.event === "connection");
    assert.equal(greeting.json.data.replay.truncated, true);
    await past.done;
  });
});

Deno.test("SSE for an unknown job answers 404 before streaming", async () => {
  await withServer({}, async (server) => {
    const error = await StreamClient.open(`${server.url}/jobs/nope/events`, "sse").catch((e) => e);
    assert.equal(error.status, 404);
    assert.equal(JSON.parse(error.text).error.code, "job_not_found");
  });
});

Deno.test("browser-style EventSource follows a job and resumes by itself", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    const source = new EventSource(`${server.url}/jobs/${id}/events?since=0`);
    try {
      const seen: number[] = [];
      const got = new Promise<void>((resolve, reject) => {
        source.addEventListener("log", (e) => {
          seen.push(JSON.parse((e as MessageEvent).data).sequence);
          if (seen.length === 2) resolve();
        });
        source.onerror = () => {
          if (source.readyState === EventSource.CLOSED) reject(new Error("EventSource closed"));
        };
      });
      await new Promise((r) => source.addEventListener("connection", r, { once: true }));
      await publish(server.url, id, logEvent(2));
      await got;
      assert.deepEqual(seen, [1, 2]);
    } finally {
      source.close();
    }
  });
});

Deno.test("NDJSON stream sends one envelope per line, selected by Accept or format", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    await publish(server.url, id, logEvent(1));
    const byAccept = await StreamClient.open(`${server.url}/jobs/${id}/events`, "ndjson");
    const byFormat = await StreamClient.open(
      `${server.url}/jobs/${id}/events?format=ndjson&since=0`,
      "ndjson",
      {
        accept: "text/event-stream",
      },
    );
    try {
      assert.equal(
        byAccept.response.headers.get("content-type"),
        "application/x-ndjson; charset=utf-8",
      );
      for (const stream of [byAccept, byFormat]) {
        const connection = await stream.next();
        assert.equal(connection.type, "connection");
        assert.equal((await stream.next()).sequence, 1);
      }
      await publish(server.url, id, logEvent(2));
      assert.equal((await byAccept.next()).sequence, 2);
      assert.equal((await byFormat.next()).sequence, 2);
    } finally {
      await byAccept.close();
      await byFormat.close();
    }
  });
});

Deno.test("NDJSON snapshot format streams flat snapshots", async () => {
  await withServer({}, async (server) => {
    const id = await createJob(server.url);
    const stream = await StreamClient.open(
      `${server.url}/jobs/${id}/events?format=snapshot`,
      "ndjson",
    );
    try {
      const first = await stream.next();
      assert.equal(first.job_id, id);
      assert.equal(first.status, "pending");
      await publish(server.url, id, { type: "status", data: { status: "queued" } });
      assert.equal((await stream.next()).status, "queued");
    } finally {
      await stream.close();
    }
  });
});

Deno.test("multi-job SSE ids carry every job's position and resume them all", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    const url = `${server.url}/events?jobs=${a},${b}&since=0`;
    const sse = await StreamClient.open(url, "sse");
    let lastId: string;
    try {
      assert.equal((await sse.next()).event, "connection");
      await publish(server.url, a, logEvent("a1"));
      await publish(server.url, b, logEvent("b1"));
      await publish(server.url, a, logEvent("a2"));
      const events = await sse.until((m) => m.json.sequence === 2);
      const ids = events.filter(isEvent).map((m) => m.id);
      assert.deepEqual(ids, ["1,0", "1,1", "2,1"]);
      lastId = ids.at(-1)!;
    } finally {
      await sse.close();
    }
    await publish(server.url, b, logEvent("b2"));
    await publish(server.url, a, logEvent("a3"));
    const resumed = await StreamClient.open(url, "sse", { "last-event-id": lastId });
    try {
      const events = await resumed.until((m) => m.json.job_id === b && m.json.sequence === 2);
      const replayed = events.filter(isEvent).map((m) =>
        `${m.json.job_id === a ? "a" : "b"}${m.json.sequence}`
      );
      assert.deepEqual(replayed, ["a3", "b2"]);
    } finally {
      await resumed.close();
    }
  });
});

Deno.test("multi-job SSE ids name each job's since until its replay, so a resume sends nothing twice", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, a, logEvent("a1"), logEvent("a2"), logEvent("a3"));
    await publish(server.url, b, ...[1, 2, 3, 4, 5].map((n) => logEvent(`b${n}`)));
    // The client has every event of b, none of a.
    const url = `${server.url}/events?jobs=${a},${b}&since=${a}:0,${b}:5`;
    const sse = await StreamClient.open(url, "sse");
    let firstId: string;
    try {
      const events = (await sse.until((m) => m.json?.sequence === 3)).filter(isEvent);
      assert.deepEqual(events.map((m) => m.id), ["1,5", "2,5", "3,5"]);
      firstId = events[0]!.id!;
    } finally {
      await sse.close();
    }
    // Resuming from the first event: a's rest, and nothing of b again.
    await publish(server.url, b, logEvent("b6"));
    const resumed = await StreamClient.open(url, "sse", { "last-event-id": firstId });
    try {
      const events = await resumed.until((m) => m.json?.job_id === b && m.json.sequence === 6);
      assert.deepEqual(
        events.filter(isEvent).map((m) => `${m.json.job_id === a ? "a" : "b"}${m.json.sequence}`),
        ["a2", "a3", "b6"],
      );
    } finally {
      await resumed.close();
    }
  });
});

Deno.test("/events with all=1 streams every visible job; without jobs or all it is a 422", async () => {
  await withServer({}, async (server) => {
    const bad = await http(server.url, "GET", "/events");
    assert.equal(bad.status, 422);
    const sse = await StreamClient.open(`${server.url}/events?all=1`, "sse");
    try {
      assert.equal((await sse.next()).event, "connection");
      const id = await createJob(server.url);
      const created = await sse.next();
      assert.equal(created.event, "created");
      assert.equal(created.json.job_id, id);
      await publish(server.url, id, logEvent(1));
      const event = await sse.next();
      assert.deepEqual([event.event, event.id, event.json.job_id], ["log", "1", id]);
    } finally {
      await sse.close();
    }
  });
});

Deno.test("SSE sends heartbeat events and comment pings", async () => {
  await withServer({ heartbeat: "100ms" }, async (server) => {
    const id = await createJob(server.url);
    const sse = await StreamClient.open(`${server.url}/jobs/${id}/events`, "sse");
    try {
      const beat = await sse.next((m) => m.event === "heartbeat", 3000);
      assert.equal(beat.json.data.last_sequence, 0);
      assert.ok(sse.comments >= 2, "initial comment plus ping comments");
    } finally {
      await sse.close();
    }
  });
});

/** A session context with no server behind it (no hub: nothing to subscribe to). */
function bareContext(overrides: Partial<SessionContext> = {}): SessionContext {
  return {
    hub: undefined as unknown as SessionContext["hub"],
    job: () => undefined,
    visible: () => true,
    limits: { highWater: 1 << 20, maxQueued: 1000 },
    onBacklog: () => {},
    onClose: () => {},
    onEnded: () => {},
    window: 100,
    expiresAt: null,
    ...overrides,
  };
}

Deno.test("an HTTP stream hands a reader that fell behind everything that gathered as one chunk", async () => {
  const context = bareContext();
  let session!: Session;
  const response = serveHttpStream(
    codecFor("ndjson", "envelope"),
    context,
    { closeOnFinish: false, single: true },
    (s) => session = s,
  );
  const reader = response.body!.getReader();
  const text = async () => new TextDecoder().decode((await reader.read()).value);
  // Nothing was asked for yet: the three lines wait and leave together.
  for (const n of [1, 2, 3]) session.outbox.push(`{"n":${n}}\n`);
  assert.equal(await text(), '{"n":1}\n{"n":2}\n{"n":3}\n');
  // A reader already waiting gets a line at once.
  const next = text();
  session.outbox.push('{"n":4}\n');
  assert.equal(await next, '{"n":4}\n');
  session.close(1000, "done");
  assert.equal((await reader.read()).done, true);
});

Deno.test("a stream opened after the server ended every stream for a shutdown ends at once, told why", async () => {
  const sessions = new Sessions(0);
  let ended = 0;
  const context = bareContext({
    onClose: (s) => sessions.remove(s),
    onEnded: () => ended++,
  });
  sessions.closeAll(1001, "server shutting down");
  let session!: Session;
  const response = serveHttpStream(
    codecFor("ndjson", "envelope"),
    context,
    { closeOnFinish: false, single: true },
    (s) => {
      session = s;
      // A WebSocket whose upgrade was under way opens now, and its stream asks to be added.
      sessions.add(s);
    },
  );
  assert.equal(session.closed, true);
  assert.equal(sessions.size, 0);
  const body = await response.text();
  const last = JSON.parse(body.trim().split("\n").at(-1)!);
  assert.equal(last.type, "error");
  assert.equal(last.data.code, "shutting_down");
  assert.equal(last.data.close_code, 1001);
  assert.equal(ended, 1);
  sessions.stop();
});

Deno.test("a multi-job SSE stream resumes after one of its jobs was deleted, telling of that job", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    await publish(server.url, a, logEvent("a1"));
    await publish(server.url, b, logEvent("b1"));
    assert.equal((await http(server.url, "DELETE", `/jobs/${a}`)).status, 200);
    await publish(server.url, b, logEvent("b2"));
    const url = `${server.url}/events?jobs=${a},${b}&since=0`;
    // As an EventSource reconnects: the same URL and its last id.
    const resumed = await StreamClient.open(url, "sse", { "last-event-id": "1,1" });
    try {
      const gone = await resumed.next((m) => m.event === "error");
      assert.equal(gone.json.job_id, a);
      assert.equal(gone.json.data.code, "job_gone");
      const next = await resumed.next((m) => isEvent(m));
      assert.equal(next.json.job_id, b);
      assert.equal(next.json.sequence, 2);
    } finally {
      await resumed.close();
    }
    // With none of its jobs left, the stream is refused as before.
    assert.equal((await http(server.url, "DELETE", `/jobs/${b}`)).status, 200);
    const none = await fetch(url, { headers: { accept: "text/event-stream" } });
    assert.equal(none.status, 410);
    await none.body?.cancel();
  });
});

/**
 * Follows an SSE URL as a browser's EventSource does: reads each stream to its end, keeps
 * the last `id:` it saw, and reconnects with it as `Last-Event-ID` until told 204.
 *
 * @returns how many streams it opened before the 204, or `attempts` + 1 if it never stopped
 */
async function eventSourceStreams(url: string, attempts = 4): Promise<number> {
  let lastId = "";
  for (let opened = 0; opened < attempts; opened++) {
    const reply = await fetch(url, {
      headers: {
        accept: "text/event-stream",
        ...(lastId === "" ? {} : { "last-event-id": lastId }),
      },
    });
    if (reply.status === 204) return opened;
    const text = await reply.text();
    assert.equal(reply.status, 200, text);
    for (const line of text.split("\n")) {
      if (line.startsWith("id:")) lastId = line.slice(3).trim();
    }
  }
  return attempts + 1;
}

Deno.test("an EventSource stops after a finished job's stream, whatever the stream was asked for", async () => {
  await withServer({}, async (server) => {
    const a = await createJob(server.url);
    const b = await createJob(server.url);
    for (const id of [a, b]) {
      await publish(server.url, id, { type: "status", data: { status: "running" } }, logEvent("x"));
      await http(server.url, "POST", `/jobs/${id}/complete`, {});
    }
    const cases = [
      `/jobs/${a}/events?close_on_finish=1`,
      `/jobs/${a}/events?since=3&close_on_finish=1`,
      `/jobs/${a}/events?since=0&close_on_finish=1`,
      `/jobs/${a}/events?format=snapshot&close_on_finish=1`,
      `/events?jobs=${a},${b}&close_on_finish=1`,
      `/events?jobs=${a}&close_on_finish=1`,
    ];
    for (const path of cases) {
      // One stream with what there is to tell, then 204.
      assert.equal(await eventSourceStreams(`${server.url}${path}`), 1, path);
    }
  });
});
