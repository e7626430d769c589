/**
 * The benchmark's load client, run as its own process by `scripts/bench.ts` so that its
 * CPU is never counted as the server's. It runs one scenario against one server and
 * prints one JSON line with the result. Every wait is bounded: it stops by itself.
 *
 *   deno run -A scripts/bench_client.ts '<spec JSON>'
 *
 * @module
 */
import { cpuSeconds, rssBytes } from "./_proc.ts";
import { haveWrk, Http1Connection, requestBytes } from "./_http1.ts";

/**
 * The server under test. `nchan` is nginx with the nchan module: it relays message bodies
 * as they are, so this client writes the envelopes (and their sequences) itself.
 */
export interface Target {
  kind: "jobwire" | "reference" | "nchan";
  url: string;
  token?: string;
  /** Root of the server's process tree, for CPU and memory. */
  pid: number;
}

/** A scenario to run. */
export type Scenario =
  | {
    scenario: "fanout";
    transport: "ws" | "sse";
    jobs: number;
    subs: number;
    events: number;
    batch: number;
    concurrency: number;
    /** jobwire's WebSockets with `batch=1` (several envelopes a message, one per line). */
    lines?: boolean;
  }
  | { scenario: "latency"; subs: number; rate: number; seconds: number }
  | { scenario: "publish"; batch: number; concurrency: number; seconds: number }
  | { scenario: "replay"; counts: number[]; repeats: number }
  | { scenario: "idle"; connections: number };

/** Most time any phase may take before the client gives up, in milliseconds. */
const PHASE_TIMEOUT_MS = 120_000;

const spec = JSON.parse(Deno.args[0] ?? "{}") as { target: Target } & Scenario;
const target = spec.target;
const headers: Record<string, string> = { "content-type": "application/json" };
if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The `sequence` of an envelope, without parsing the whole message (-1 for session messages). */
function sequenceOf(text: string): number {
  const at = text.indexOf('"sequence":');
  if (at === -1) return -1;
  let n = 0;
  let i = at + 11;
  let code = text.charCodeAt(i);
  if (code < 48 || code > 57) return -1;
  while (code >= 48 && code <= 57) {
    n = n * 10 + code - 48;
    code = text.charCodeAt(++i);
  }
  return n;
}

/** The publish time `t` carried in an event's data. */
function sentAt(text: string): number {
  const at = text.indexOf('"t":');
  return at === -1 ? NaN : parseFloat(text.slice(at + 4, at + 30));
}

function wsUrl(job: string, since?: number, lines = false): string {
  const base = target.url.replace(/^http/, "ws");
  if (target.kind !== "jobwire") return `${base}/ws?job=${job}`;
  const query = new URLSearchParams({ token: target.token ?? "" });
  if (since !== undefined) query.set("since", String(since));
  if (lines) query.set("batch", "1");
  return `${base}/ws/jobs/${job}?${query}`;
}

function sseRequest(job: string, since?: number): [string, RequestInit] {
  if (target.kind === "reference") return [`${target.url}/sse?job=${job}`, {}];
  if (target.kind === "nchan") {
    return [`${target.url}/sse?job=${job}`, { headers: { accept: "text/event-stream" } }];
  }
  const query = since === undefined ? "" : `?since=${since}`;
  return [`${target.url}/jobs/${job}/events${query}`, {
    headers: {
      accept: "text/event-stream",
      ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
    },
  }];
}

async function createJob(id: string): Promise<void> {
  if (target.kind !== "jobwire") return;
  const reply = await fetch(`${target.url}/jobs`, {
    method: "POST",
    headers,
    body: JSON.stringify({ id }),
  });
  if (reply.status !== 201) throw new Error(`create ${id}: ${reply.status} ${await reply.text()}`);
}

async function publish(job: string, events: { type: string; data: unknown }[]): Promise<void> {
  if (target.kind === "nchan") return await publishToNchan(job, events);
  const url = target.kind === "reference"
    ? `${target.url}/publish?job=${job}`
    : `${target.url}/jobs/${job}/events`;
  const body = JSON.stringify(events.length === 1 ? events[0] : { events });
  const reply = await fetch(url, { method: "POST", headers, body });
  if (reply.status !== 201) {
    throw new Error(`publish ${job}: ${reply.status} ${await reply.text()}`);
  }
  await reply.body?.cancel();
}

/** Per job: the last sequence written and the chain of its publishes (nchan only). */
const nchanJobs = new Map<string, { sequence: number; chain: Promise<void> }>();

/**
 * nchan takes one message per request and relays its body as it is, so each event is its
 * own request carrying an envelope this client numbers. A job's publishes go one after the
 * other (concurrent ones could arrive in another order than they were numbered); publishes
 * to different jobs still overlap. nchan answers 201, or 202 when nobody is subscribed.
 */
function publishToNchan(job: string, events: { type: string; data: unknown }[]): Promise<void> {
  const entry = nchanJobs.get(job) ?? { sequence: 0, chain: Promise.resolve() };
  nchanJobs.set(job, entry);
  const done = entry.chain.then(async () => {
    for (const event of events) {
      const body = JSON.stringify({
        type: event.type,
        job_id: job,
        sequence: ++entry.sequence,
        timestamp: new Date().toISOString(),
        data: event.data,
      });
      const reply = await fetch(`${target.url}/publish?job=${job}`, { method: "POST", body });
      await reply.body?.cancel();
      if (reply.status !== 201 && reply.status !== 202) {
        throw new Error(`publish ${job}: ${reply.status}`);
      }
    }
  });
  entry.chain = done.catch(() => {});
  return done;
}

/** Correctness of what one subscriber received. */
class Tally {
  last = 0;
  received = 0;
  missing = 0;
  duplicated = 0;
  outOfOrder = 0;
  see(sequence: number): void {
    if (sequence < 0) return;
    this.received++;
    if (sequence === this.last + 1) this.last = sequence;
    else if (sequence === this.last) this.duplicated++;
    else if (sequence < this.last) this.outOfOrder++;
    else {
      this.missing += sequence - this.last - 1;
      this.last = sequence;
    }
  }
}

interface Subscriber {
  tally: Tally;
  close(): void;
}

/**
 * Opens a WebSocket subscriber; resolves once its first (connection) message arrived, or
 * for nchan, which sends none, once it is open.
 */
function openWs(
  job: string,
  onMessage: (text: string, tally: Tally) => void,
  since?: number,
  lines = false,
): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const tally = new Tally();
    const socket = new WebSocket(wsUrl(job, since, lines));
    let ready = false;
    const timer = setTimeout(() => reject(new Error("websocket connect timed out")), 30_000);
    if (target.kind === "nchan") {
      socket.onopen = () => {
        ready = true;
        clearTimeout(timer);
        resolve({ tally, close: () => socket.close() });
      };
    }
    socket.onmessage = (e) => {
      const text = e.data as string;
      if (!ready) {
        ready = true;
        clearTimeout(timer);
        resolve({ tally, close: () => socket.close() });
      }
      if (!lines) onMessage(text, tally);
      else for (const line of text.split("\n")) onMessage(line, tally);
    };
    socket.onerror = () => reject(new Error("websocket failed"));
  });
}

/**
 * Opens an SSE subscriber over streamed fetch; resolves once the first bytes arrived (the
 * connection event, or nchan's `: hi` comment).
 */
async function openSse(
  job: string,
  onMessage: (text: string, tally: Tally) => void,
): Promise<Subscriber> {
  const tally = new Tally();
  const abort = new AbortController();
  const [url, init] = sseRequest(job);
  const response = await fetch(url, { ...init, signal: abort.signal });
  if (response.status !== 200) throw new Error(`sse ${response.status}`);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let carry = "";
  const first = await reader.read();
  const pump = async (chunk: string | undefined) => {
    while (chunk !== undefined) {
      carry += chunk;
      let end: number;
      while ((end = carry.indexOf("\n\n")) !== -1) {
        const frame = carry.slice(0, end);
        carry = carry.slice(end + 2);
        const data = frame.indexOf("data: ");
        if (data !== -1) onMessage(frame.slice(data + 6), tally);
      }
      const next = await reader.read().catch(() => ({ done: true, value: undefined }));
      chunk = next.done ? undefined : next.value;
    }
  };
  pump(first.done ? undefined : first.value);
  return { tally, close: () => abort.abort() };
}

async function openMany<T>(count: number, open: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  const width = 100;
  for (let start = 0; start < count; start += width) {
    await Promise.all(
      Array.from({ length: Math.min(width, count - start) }, async (_, k) => {
        out[start + k] = await open(start + k);
      }),
    );
  }
  return out;
}

async function waitUntil(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(2);
  }
}

/**
 * Share of the stream connections held by jobwire's busiest isolate (from `/stats`):
 * `deno serve --parallel` can put most of a burst of connections on one isolate, which moves
 * the figures between runs. Nothing for the other servers or a single isolate.
 */
async function busiestIsolateShare(): Promise<Record<string, number>> {
  if (target.kind !== "jobwire") return {};
  const reply = await fetch(`${target.url}/stats`, { headers });
  if (!reply.ok) {
    await reply.body?.cancel();
    return {};
  }
  const stats = await reply.json() as { per_isolate?: { connections: number }[] };
  const counts = (stats.per_isolate ?? []).map((isolate) => isolate.connections);
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.length > 1 && total > 0
    ? { busiest_isolate_share: Math.max(...counts) / total }
    : {};
}

async function fanout(s: Extract<Scenario, { scenario: "fanout" }>) {
  const jobs = Array.from(
    { length: s.jobs },
    (_, i) => `fan-${crypto.randomUUID().slice(0, 8)}-${i}`,
  );
  for (const job of jobs) await createJob(job);
  const onMessage = (text: string, tally: Tally) => tally.see(sequenceOf(text));
  const subscribers = await openMany(s.jobs * s.subs, (i) => {
    const job = jobs[i % s.jobs]!;
    return s.transport === "ws"
      ? openWs(job, onMessage, undefined, s.lines === true && target.kind === "jobwire")
      : openSse(job, onMessage);
  });
  await sleep(300);
  const split = await busiestIsolateShare();
  // Publishes `count` events to every job, numbered after `first`, and waits until every
  // subscriber has them.
  const round = async (first: number, count: number) => {
    const requests: { job: string; events: { type: string; data: unknown }[] }[] = [];
    for (let n = 0; n < count; n += s.batch) {
      for (const job of jobs) {
        const size = Math.min(s.batch, count - n);
        requests.push({
          job,
          events: Array.from(
            { length: size },
            (_, k) => ({ type: "bench", data: { n: first + n + k } }),
          ),
        });
      }
    }
    let next = 0;
    await Promise.all(Array.from({ length: s.concurrency }, async () => {
      while (next < requests.length) {
        const request = requests[next++]!;
        await publish(request.job, request.events);
      }
    }));
    await waitUntil(
      () => subscribers.every((sub) => sub.tally.last >= first + count),
      "fan-out deliveries",
    );
  };
  // Steady state: a first round of a fifth of the events (compilation, first buffers on
  // every connection) is not measured.
  const warm = Math.max(s.batch, Math.round(s.events / 5 / s.batch) * s.batch);
  await round(0, warm);
  const before = subscribers.reduce((n, sub) => n + sub.tally.received, 0);
  const cpu0 = cpuSeconds(target.pid);
  const t0 = performance.now();
  await round(warm, s.events);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(target.pid) - cpu0;
  const deliveries = subscribers.reduce((n, sub) => n + sub.tally.received, 0) - before;
  for (const sub of subscribers) sub.close();
  return {
    deliveries,
    seconds: elapsed,
    deliveries_per_second: deliveries / elapsed,
    server_cpu_seconds: cpu,
    server_us_per_delivery: (cpu * 1e6) / deliveries,
    ...split,
    ...correctness(subscribers, warm + s.events),
  };
}

function correctness(subscribers: Subscriber[], expected: number) {
  let missing = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  for (const { tally } of subscribers) {
    missing += tally.missing + Math.max(0, expected - tally.last);
    duplicated += tally.duplicated;
    outOfOrder += tally.outOfOrder;
  }
  return { missing, duplicated, out_of_order: outOfOrder };
}

async function latency(s: Extract<Scenario, { scenario: "latency" }>) {
  const job = `lat-${crypto.randomUUID().slice(0, 8)}`;
  await createJob(job);
  const samples: number[] = [];
  let measuring = false;
  const onMessage = (text: string, tally: Tally) => {
    const sequence = sequenceOf(text);
    tally.see(sequence);
    if (measuring && sequence > 0) samples.push(now() - sentAt(text));
  };
  const subscribers = await openMany(s.subs, () => openWs(job, onMessage));
  await sleep(300);
  const split = await busiestIsolateShare();
  // Publishes `count` events at the steady rate, numbered from `first`.
  const steady = async (first: number, count: number) => {
    const start = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const due = start + (i * 1000) / s.rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      inflight.push(publish(job, [{ type: "bench", data: { n: first + i, t: now() } }]));
      if (inflight.length > 64) await inflight.shift();
    }
    await Promise.all(inflight);
    await waitUntil(
      () => subscribers.every((sub) => sub.tally.last >= first + count),
      "latency deliveries",
    );
  };
  // Steady state: the first second (new connections, first compilations) is not measured.
  const warm = s.rate;
  await steady(0, warm);
  const total = Math.round(s.rate * s.seconds);
  const cpu0 = cpuSeconds(target.pid);
  measuring = true;
  await steady(warm, total);
  const cpu = cpuSeconds(target.pid) - cpu0;
  measuring = false;
  for (const sub of subscribers) sub.close();
  samples.sort((a, b) => a - b);
  const at = (q: number) =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? NaN;
  return {
    deliveries: samples.length,
    deliveries_per_second: s.rate * s.subs,
    latency_ms_p50: at(0.5),
    latency_ms_p99: at(0.99),
    latency_ms_max: samples.at(-1) ?? NaN,
    server_cpu_seconds: cpu,
    ...split,
    ...correctness(subscribers, warm + total),
  };
}

async function publishThroughput(s: Extract<Scenario, { scenario: "publish" }>) {
  const jobs = Array.from(
    { length: s.concurrency },
    (_, i) => `pub-${crypto.randomUUID().slice(0, 8)}-${i}`,
  );
  for (const job of jobs) await createJob(job);
  const events = Array.from({ length: s.batch }, (_, k) => ({ type: "bench", data: { n: k } }));
  const body = JSON.stringify(events.length === 1 ? events[0] : { events });
  if (haveWrk()) return await publishWithWrk(s, jobs, body);
  return await publishWithHttp1(s, jobs, body);
}

/**
 * The same load as {@link publishWithWrk} from this process: `concurrency` keep-alive
 * connections, one request in flight on each, round-robin over the jobs.
 */
async function publishWithHttp1(
  s: Extract<Scenario, { scenario: "publish" }>,
  jobs: string[],
  body: string,
) {
  const requestHeaders = { ...headers };
  const prebuilt = jobs.map((job) =>
    requestBytes("POST", `${target.url}/jobs/${job}/events`, body, requestHeaders)
  );
  const connections = await Promise.all(jobs.map(() => Http1Connection.open(target.url)));
  let requests = 0;
  let failed = 0;
  const cpu0 = cpuSeconds(target.pid);
  const t0 = performance.now();
  const end = t0 + s.seconds * 1000;
  try {
    await Promise.all(connections.map(async (connection) => {
      while (performance.now() < end) {
        const status = await connection.send(prebuilt[requests % prebuilt.length]!);
        requests++;
        if (status < 200 || status > 299) failed++;
      }
    }));
  } finally {
    for (const connection of connections) connection.close();
  }
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(target.pid) - cpu0;
  return {
    requests_per_second: requests / elapsed,
    events_per_second: (requests * s.batch) / elapsed,
    server_cpu_seconds: cpu,
    server_us_per_event: (cpu * 1e6) / (requests * s.batch),
    failed_requests: failed,
  };
}

/** The same load from `wrk` (one thread, `concurrency` connections, round-robin over jobs). */
async function publishWithWrk(
  s: Extract<Scenario, { scenario: "publish" }>,
  jobs: string[],
  body: string,
) {
  const script = await Deno.makeTempFile({ suffix: ".lua" });
  const lua = (text: string) => JSON.stringify(text);
  await Deno.writeTextFile(
    script,
    `local jobs = {${jobs.map(lua).join(",")}}
local n = 0
local headers = {["Content-Type"] = "application/json", ["Authorization"] = ${
      lua(`Bearer ${target.token ?? ""}`)
    }}
local body = ${lua(body)}
request = function()
  n = n + 1
  return wrk.format("POST", "/jobs/" .. jobs[(n % #jobs) + 1] .. "/events", headers, body)
end
`,
  );
  const cpu0 = cpuSeconds(target.pid);
  const output = await new Deno.Command("wrk", {
    args: ["-t1", `-c${s.concurrency}`, `-d${s.seconds}s`, "-s", script, target.url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const cpu = cpuSeconds(target.pid) - cpu0;
  await Deno.remove(script);
  const text = new TextDecoder().decode(output.stdout);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  const total = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
  const failed = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  return {
    requests_per_second: rate,
    events_per_second: rate * s.batch,
    server_cpu_seconds: cpu,
    server_us_per_event: (cpu * 1e6) / (total * s.batch),
    failed_requests: failed,
  };
}

/**
 * Milliseconds from opening a raw TCP connection with a WebSocket handshake to reading
 * `marker` in the frames: a bare socket reader, so the figure is the server's, not the
 * time a full WebSocket client spends dispatching thousands of message events.
 */
async function rawWebSocketUntil(url: string, marker: string): Promise<number> {
  const target = new URL(url);
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await conn.write(new TextEncoder().encode(
    `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  ));
  const decoder = new TextDecoder("latin1");
  const buffer = new Uint8Array(256 * 1024);
  let tail = "";
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("connection closed before the marker");
      const text = tail + decoder.decode(buffer.subarray(0, n));
      if (text.includes(marker)) return performance.now() - t0;
      tail = text.slice(-marker.length);
    }
    throw new Error("timed out");
  } finally {
    conn.close();
  }
}

async function replay(s: Extract<Scenario, { scenario: "replay" }>) {
  const job = `rep-${crypto.randomUUID().slice(0, 8)}`;
  await createJob(job);
  const last = Math.max(...s.counts);
  for (let n = 0; n < last; n += 1000) {
    await publish(
      job,
      Array.from(
        { length: Math.min(1000, last - n) },
        (_, k) => ({ type: "bench", data: { n: n + k } }),
      ),
    );
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const out: Record<string, number> = {};
  for (const count of [0, ...s.counts]) {
    const ws: number[] = [];
    const wsLines: number[] = [];
    const sse: number[] = [];
    // The last replayed event, or for a replay of nothing the connection message.
    const marker = count === 0 ? '"type":"connection"' : `"sequence":${last},`;
    for (let r = 0; r < s.repeats; r++) {
      ws.push(await rawWebSocketUntil(wsUrl(job, last - count), marker));
      wsLines.push(await rawWebSocketUntil(wsUrl(job, last - count, true), marker));
      const t1 = performance.now();
      const [url, init] = sseRequest(job, last - count);
      const response = await fetch(url, init);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      const sseMarker = count === 0 ? "event: connection" : `id: ${last}\n`;
      while (!text.includes(sseMarker)) {
        const chunk = await reader.read();
        if (chunk.done) break;
        text = text.slice(-64) + chunk.value;
      }
      sse.push(performance.now() - t1);
      await reader.cancel();
    }
    out[`ws_${count}_ms`] = median(ws);
    out[`ws_batch_${count}_ms`] = median(wsLines);
    out[`sse_${count}_ms`] = median(sse);
  }
  return out;
}

async function idle(s: Extract<Scenario, { scenario: "idle" }>) {
  const job = `idle-${crypto.randomUUID().slice(0, 8)}`;
  await createJob(job);
  // Warm up the server's connection path first, so start-up allocations are not counted.
  const warm = await openMany(100, () => openWs(job, () => {}));
  for (const sub of warm) sub.close();
  await sleep(1500);
  const rss0 = rssBytes(target.pid);
  const subscribers = await openMany(s.connections, () => openWs(job, () => {}));
  await sleep(2000);
  const rss1 = rssBytes(target.pid);
  for (const sub of subscribers) sub.close();
  return {
    connections: s.connections,
    rss_before_bytes: rss0,
    rss_after_bytes: rss1,
    rss_per_connection_bytes: (rss1 - rss0) / s.connections,
  };
}

let result: unknown;
switch (spec.scenario) {
  case "fanout":
    result = await fanout(spec);
    break;
  case "latency":
    result = await latency(spec);
    break;
  case "publish":
    result = await publishThroughput(spec);
    break;
  case "replay":
    result = await replay(spec);
    break;
  case "idle":
    result = await idle(spec);
    break;
}
console.log(JSON.stringify(result));
Deno.exit(0);
