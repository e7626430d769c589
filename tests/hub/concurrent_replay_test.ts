/**
 * The gap-free replay proof: several publishers commit concurrently while subscribers
 * join at random points over every transport; each subscriber must see one contiguous
 * run of sequences, from where its replay starts to the last event, with no gap,
 * duplicate or reordering.
 */
import assert from "node:assert/strict";
import { createJob, http, type Msg, StreamClient, WsClient } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";

/** A small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PUBLISHERS = 4;
const REQUESTS_PER_PUBLISHER = 40;
const SUBSCRIBERS = 24;

interface Follower {
  transport: string;
  since: number | null;
  /** Sequences received after the connection message, in arrival order. */
  sequences: () => number[];
  connection: () => Promise<Msg>;
  close(): Promise<void>;
}

async function follow(
  base: string,
  jobId: string,
  transport: number,
  since: number | null,
): Promise<Follower> {
  const query = since === null ? "" : `?since=${since}`;
  if (transport === 0) {
    const ws = await WsClient.connect(`${base}/ws/jobs/${jobId}${query}`);
    return {
      transport: "websocket",
      since,
      sequences: () => ws.messages.filter((m) => m.sequence !== null).map((m) => m.sequence),
      connection: () => ws.next((m) => m.type === "connection"),
      close: () => ws.close(),
    };
  }
  const kind = transport === 1 ? "sse" : "ndjson";
  const stream = await StreamClient.open(`${base}/jobs/${jobId}/events${query}`, kind);
  const body = (m: Msg) => (kind === "sse" ? m.json : m);
  return {
    transport: kind,
    since,
    sequences: () =>
      stream.messages.map(body).filter((m) => m.sequence !== null).map((m) => m.sequence),
    connection: async () => body(await stream.next((m) => body(m).type === "connection")),
    close: () => stream.close(),
  };
}

Deno.test("subscribers joining during concurrent publishing each see one contiguous run", async () => {
  const seed = Number(Deno.env.get("JOBWIRE_TEST_SEED") ?? Date.now() % 1_000_000);
  const rand = random(seed);
  await withServer({ "replay-window": 50 }, async (server) => {
    const jobId = await createJob(server.url, { kind: "race" });
    let committed = 0;
    const publishers = Array.from({ length: PUBLISHERS }, async (_, p) => {
      for (let i = 0; i < REQUESTS_PER_PUBLISHER; i++) {
        const batch = 1 + Math.floor(rand() * 3);
        const events = Array.from({ length: batch }, (_, j) => ({
          type: "log",
          data: { line: `p${p} r${i} e${j}` },
        }));
        const reply = await http(server.url, "POST", `/jobs/${jobId}/events`, { events });
        assert.equal(reply.status, 201, reply.text);
        committed += batch;
        if (rand() < 0.3) await new Promise((r) => setTimeout(r, rand() * 3));
      }
    });
    const followers: Follower[] = [];
    const joining = (async () => {
      for (let s = 0; s < SUBSCRIBERS; s++) {
        await new Promise((r) => setTimeout(r, rand() * 15));
        const roll = rand();
        const since = roll < 0.3 ? null : roll < 0.5 ? 0 : Math.floor(rand() * (committed + 5));
        followers.push(await follow(server.url, jobId, s % 3, since));
      }
    })();
    await Promise.all([...publishers, joining]);
    const total = committed;
    try {
      for (const follower of followers) {
        const connection = await follower.connection();
        const replay = connection.data.replay;
        const first = replay.from ?? connection.data.last_sequence + 1;
        if (first <= total) await waitForLast(follower, total);
        const seqs = follower.sequences();
        const context = `seed ${seed}, ${follower.transport}, since ${follower.since}, replay ${
          JSON.stringify(replay)
        }`;
        if (follower.since !== null && follower.since <= connection.data.last_sequence) {
          assert.equal(first, follower.since + 1, context);
        }
        assert.deepEqual(
          seqs,
          Array.from({ length: total - first + 1 }, (_, i) => first + i),
          context,
        );
      }
    } finally {
      await Promise.all(followers.map((f) => f.close()));
    }
    const page = await http(server.url, "GET", `/jobs/${jobId}/events?since=0&limit=1000`);
    assert.equal(page.json.events.length, total);
    assert.equal(page.json.last_sequence, total);
  });
});

async function waitForLast(follower: Follower, total: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (follower.sequences().at(-1) === total) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${follower.transport} stopped at ${follower.sequences().at(-1)} of ${total}`);
}
