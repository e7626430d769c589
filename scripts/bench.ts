/**
 * `deno task bench`: measures jobwire against `scripts/reference_server.ts` (a bare
 * `Deno.serve` broadcaster with no persistence and no auth) under the same load, in the
 * same run, and prints a table and one JSON line. Figures are medians of `--runs` runs
 * (default 3); each scenario gets a fresh server and a load client in its own process.
 * When nginx and its nchan module are installed (Debian: `apt-get install nginx
 * libnginx-mod-nchan`), nchan gets the same load too, with as many worker processes as
 * jobwire has isolates, and its figures are printed beside the others (`--no-nchan` skips
 * it). The targets stay ratios to the reference.
 *
 *   deno task bench [--runs 3] [--workers N] [--quick] [--only ws_fanout_1x1000x200,…]
 *                   [--no-nchan]
 *
 * The main figure is server µs per delivery: the server's CPU time (its process tree,
 * from /proc) divided by deliveries, which stays meaningful when the load client
 * saturates a core.
 *
 * @module
 */
import { SignJWT } from "jose";
import { join } from "node:path";
import type { Scenario, Target } from "./bench_client.ts";
import { freePort, NCHAN_MODULE, nchanInstalled, runNginx } from "./_nchan.ts";
import { haveWrk } from "./_http1.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SECRET = "bench-secret-bench-secret-0123456789";

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i === -1 ? undefined : Deno.args[i + 1];
}

const runs = Number(flag("runs") ?? 3);
const workers = Number(flag("workers") ?? Math.max(1, navigator.hardwareConcurrency || 1));
const quick = Deno.args.includes("--quick");
const only = flag("only")?.split(",");

/** nchan is measured when installed, unless turned off. */
const withNchan = !Deno.args.includes("--no-nchan") && nchanInstalled();

interface Case {
  name: string;
  spec: Scenario;
  /** Measured on jobwire only (persistence or replay, which the reference lacks). */
  jobwireOnly?: boolean;
}

const CASES: Case[] = quick
  ? [
    {
      name: "ws_fanout_1x1000x200",
      spec: {
        scenario: "fanout",
        transport: "ws",
        jobs: 1,
        subs: 100,
        events: 50,
        batch: 1,
        concurrency: 4,
      },
    },
    {
      name: "ws_fanout_100x10x100",
      spec: {
        scenario: "fanout",
        transport: "ws",
        jobs: 10,
        subs: 5,
        events: 20,
        batch: 10,
        concurrency: 8,
      },
    },
    {
      name: "sse_fanout_1x1000x200",
      spec: {
        scenario: "fanout",
        transport: "sse",
        jobs: 1,
        subs: 100,
        events: 50,
        batch: 1,
        concurrency: 4,
      },
    },
    { name: "latency_20k", spec: { scenario: "latency", subs: 20, rate: 100, seconds: 1 } },
    {
      name: "publish_single",
      jobwireOnly: true,
      spec: { scenario: "publish", batch: 1, concurrency: 8, seconds: 1 },
    },
    {
      name: "publish_batch100",
      jobwireOnly: true,
      spec: { scenario: "publish", batch: 100, concurrency: 4, seconds: 1 },
    },
    {
      name: "replay",
      jobwireOnly: true,
      spec: { scenario: "replay", counts: [100, 1000], repeats: 3 },
    },
    { name: "idle_rss_10k", spec: { scenario: "idle", connections: 500 } },
  ]
  : [
    {
      name: "ws_fanout_1x1000x200",
      spec: {
        scenario: "fanout",
        transport: "ws",
        jobs: 1,
        subs: 1000,
        events: 200,
        batch: 1,
        concurrency: 4,
      },
    },
    {
      name: "ws_fanout_100x10x100",
      spec: {
        scenario: "fanout",
        transport: "ws",
        jobs: 100,
        subs: 10,
        events: 100,
        batch: 10,
        concurrency: 8,
      },
    },
    {
      name: "sse_fanout_1x1000x200",
      spec: {
        scenario: "fanout",
        transport: "sse",
        jobs: 1,
        subs: 1000,
        events: 200,
        batch: 1,
        concurrency: 4,
      },
    },
    { name: "latency_20k", spec: { scenario: "latency", subs: 100, rate: 200, seconds: 5 } },
    {
      name: "publish_single",
      jobwireOnly: true,
      spec: { scenario: "publish", batch: 1, concurrency: 64, seconds: 4 },
    },
    {
      name: "publish_batch100",
      jobwireOnly: true,
      spec: { scenario: "publish", batch: 100, concurrency: 16, seconds: 4 },
    },
    {
      name: "replay",
      jobwireOnly: true,
      spec: { scenario: "replay", counts: [100, 10000], repeats: 5 },
    },
    { name: "idle_rss_10k", spec: { scenario: "idle", connections: 10000 } },
  ];

/**
 * WS 100 × 10 × 100 again with `batch=1`, after the plain one. jobwire only: the reference
 * and nchan cannot batch, so the plain scenario's reference figure is its yardstick.
 */
function withBatched(cases: Case[]): Case[] {
  return cases.flatMap((c) =>
    c.name !== "ws_fanout_100x10x100" || c.spec.scenario !== "fanout" ? [c] : [c, {
      name: `${c.name}_batch`,
      jobwireOnly: true,
      spec: { ...c.spec, lines: true },
    }]
  );
}

const selected = withBatched(CASES).filter((c) => only === undefined || only.includes(c.name));

function progress(message: string): void {
  console.error(`[bench] ${message}`);
}

interface Server {
  target: Target;
  stop(): Promise<void>;
}

async function readUntil(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpExecArray> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const match = pattern.exec(text);
    if (match !== null) {
      // Keep draining in the background so the server never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* discard */ }
      })().catch(() => {});
      return match;
    }
    const chunk = await reader.read();
    if (chunk.done) break;
    text += chunk.value;
  }
  throw new Error(`server did not start: ${text.slice(-2000)}`);
}

/**
 * nginx in the foreground (its master process is the tree's root, one worker process per
 * jobwire isolate) with nchan's publisher and subscribers on the reference's routes. Its
 * defaults otherwise: messages kept in shared memory, the newest 10 per channel.
 */
async function startNchan(): Promise<Server> {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-bench-nchan-" });
  const port = freePort();
  await Deno.writeTextFile(
    join(dir, "nginx.conf"),
    `load_module ${NCHAN_MODULE};
daemon off;
master_process on;
worker_processes ${workers};
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${join(dir, "body")};
  server {
    listen 127.0.0.1:${port};
    location = /healthz { return 200 "ok"; }
    location = /publish { nchan_publisher; nchan_channel_id $arg_job; }
    location = /ws { nchan_subscriber websocket; nchan_channel_id $arg_job; }
    location = /sse { nchan_subscriber eventsource; nchan_channel_id $arg_job; }
  }
}
`,
  );
  const nginx = await runNginx(dir, `http://127.0.0.1:${port}`);
  return { target: { kind: "nchan", url: nginx.url, pid: nginx.pid }, stop: nginx.stop };
}

async function startServer(kind: Target["kind"]): Promise<Server> {
  if (kind === "nchan") return await startNchan();
  let dataDir: string | undefined;
  let args: string[];
  if (kind === "reference") {
    args = ["run", "--allow-net", join(ROOT, "scripts/reference_server.ts"), "--port", "0"];
  } else {
    dataDir = await Deno.makeTempDir({ prefix: "jobwire-bench-" });
    // Started as users start it, so its flags (V8, permissions) and limits are the task's:
    // the load comes from loopback with an admin token, which the default limits let through.
    args = [
      "task",
      "--cwd",
      ROOT,
      "start",
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--workers",
      String(workers),
      "--log-level",
      "warn",
    ];
  }
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1", JOBWIRE_JWT_SECRET: SECRET },
  }).spawn();
  const match = await readUntil(child.stdout, /listening on (http:\/\/[\d.:]+)/, 60_000);
  const token = kind === "jobwire"
    ? await new SignJWT({ scope: "admin" }).setProtectedHeader({ alg: "HS256" }).setSubject("bench")
      .setExpirationTime("2h").sign(new TextEncoder().encode(SECRET))
    : undefined;
  return {
    target: { kind, url: match[1]!, pid: child.pid, ...(token === undefined ? {} : { token }) },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      if (dataDir !== undefined) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

async function runClient(target: Target, spec: Scenario): Promise<Record<string, number>> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "scripts/bench_client.ts"), JSON.stringify({ ...spec, target })],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (output.code !== 0) {
    throw new Error(`load client failed: ${new TextDecoder().decode(output.stderr).slice(-2000)}`);
  }
  return JSON.parse(text.split("\n").at(-1)!);
}

function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

const results: Record<string, Record<string, Record<string, number[]>>> = {};

if (!withNchan && !Deno.args.includes("--no-nchan")) {
  progress("nchan not installed (apt-get install nginx libnginx-mod-nchan): measuring without it");
}
// wrk spends a fraction of the built-in client's CPU, which on two cores is the server's.
const publishClient = haveWrk() ? "wrk" : "http1";
if (publishClient === "http1" && selected.some((c) => c.spec.scenario === "publish")) {
  progress("wrk not installed (apt-get install wrk): publishes come from the built-in client");
}
const servers: Target["kind"][] = withNchan
  ? ["reference", "nchan", "jobwire"]
  : ["reference", "jobwire"];

for (let run = 1; run <= runs; run++) {
  for (const c of selected) {
    for (const kind of c.jobwireOnly ? ["jobwire" as const] : servers) {
      progress(`run ${run}/${runs}: ${c.name} on ${kind}`);
      const server = await startServer(kind);
      try {
        const figures = await runClient(server.target, c.spec);
        const bucket = ((results[c.name] ??= {})[kind] ??= {});
        for (const [key, value] of Object.entries(figures)) (bucket[key] ??= []).push(value);
      } finally {
        await server.stop();
      }
    }
  }
}

const summary: Record<string, Record<string, Record<string, number>>> = {};
for (const [name, byKind] of Object.entries(results)) {
  summary[name] = {};
  for (const [kind, fields] of Object.entries(byKind)) {
    summary[name][kind] = Object.fromEntries(
      Object.entries(fields).map(([k, v]) => [k, median(v)]),
    );
  }
  const jw = summary[name].jobwire;
  // jobwire's figures over the reference's (the targets) and over nchan's.
  for (const [key, other] of [["ratio", "reference"], ["ratio_nchan", "nchan"]] as const) {
    const base = summary[name][other];
    if (base === undefined || jw === undefined) continue;
    summary[name][key] = Object.fromEntries(
      Object.keys(jw).filter((k) =>
        typeof base[k] === "number" && base[k] !== 0 &&
        !/missing|duplicated|out_of_order|busiest_isolate_share/.test(k)
      )
        .map((k) => [k, jw[k]! / base[k]!]),
    );
  }
}

interface TargetCheck {
  name: string;
  value: number;
  limit: string;
  pass: boolean;
}

const checks: TargetCheck[] = [];
const check = (name: string, value: number | undefined, op: "<=" | ">=" | "<", limit: number) => {
  if (value === undefined || Number.isNaN(value)) return;
  const pass = op === "<=" ? value <= limit : op === ">=" ? value >= limit : value < limit;
  checks.push({ name, value, limit: `${op} ${limit}`, pass });
};
const ratio = (name: string, figure: string) => summary[name]?.ratio?.[figure];
const jobwire = (name: string, figure: string) => summary[name]?.jobwire?.[figure];
const TARGETS: [string, number | undefined, "<=" | ">=" | "<", number][] = [
  [
    "ws fan-out 1x1000x200: µs/delivery ratio",
    ratio("ws_fanout_1x1000x200", "server_us_per_delivery"),
    "<=",
    1.25,
  ],
  [
    "ws fan-out 100x10x100: µs/delivery ratio",
    ratio("ws_fanout_100x10x100", "server_us_per_delivery"),
    "<=",
    1.25,
  ],
  [
    "sse fan-out 1x1000x200: µs/delivery ratio",
    ratio("sse_fanout_1x1000x200", "server_us_per_delivery"),
    "<=",
    1.25,
  ],
  ["latency p99 ratio at 20,000 deliveries/s", ratio("latency_20k", "latency_ms_p99"), "<=", 1.25],
  [
    "idle RSS per WebSocket ratio",
    ratio("idle_rss_10k", "rss_per_connection_bytes"),
    "<=",
    1.2,
  ],
  [
    "durable publish, batches of 100: events/s",
    jobwire("publish_batch100", "events_per_second"),
    ">=",
    50_000,
  ],
  [
    "durable publish, single events: requests/s",
    jobwire("publish_single", "requests_per_second"),
    ">=",
    10_000,
  ],
  ["replay of 100 events over WebSocket: ms", jobwire("replay", "ws_100_ms"), "<", 5],
  ["replay of 10,000 events over WebSocket: ms", jobwire("replay", "ws_10000_ms"), "<", 50],
  // The same with batch=1, what the client library asks for: jobwire's CPU per delivery over
  // the reference's in the plain scenario (the reference has no batching).
  [
    "ws fan-out 100x10x100 with batch=1: µs/delivery ratio",
    jobwire("ws_fanout_100x10x100_batch", "server_us_per_delivery")! /
    summary["ws_fanout_100x10x100"]?.reference?.server_us_per_delivery!,
    "<=",
    1.25,
  ],
  [
    "replay of 10,000 events over WebSocket with batch=1: ms",
    jobwire("replay", "ws_batch_10000_ms"),
    "<",
    50,
  ],
];
for (const [name, value, op, limit] of TARGETS) check(name, value, op, limit);
let wrong = 0;
for (const byKind of Object.values(summary)) {
  for (const kind of ["jobwire", "reference"]) {
    const f = byKind[kind];
    if (f !== undefined) wrong += (f.missing ?? 0) + (f.duplicated ?? 0) + (f.out_of_order ?? 0);
  }
}
checks.push({
  name: "missing + duplicated + out-of-order (all scenarios)",
  value: wrong,
  limit: "= 0",
  pass: wrong === 0,
});

const fmt = (n: number | undefined) =>
  n === undefined || Number.isNaN(n)
    ? "-"
    : Math.abs(n) >= 100
    ? Math.round(n).toLocaleString("en-US")
    : n.toFixed(2);
const lines: string[] = [];
lines.push(
  `jobwire benchmark: ${runs} run(s), medians; jobwire with ${workers} isolate(s)${
    withNchan ? `, nchan with ${workers} worker process(es)` : ""
  }; publishes from ${publishClient === "wrk" ? "wrk" : "the built-in HTTP/1.1 client"}; ${
    quick ? "QUICK sizes" : "full sizes"
  }`,
);
lines.push("");
if (withNchan) {
  lines.push("| scenario | figure | reference | nchan | jobwire | ratio | vs nchan |");
  lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
} else {
  lines.push("| scenario | figure | reference | jobwire | ratio |");
  lines.push("| --- | --- | ---: | ---: | ---: |");
}
for (const [name, byKind] of Object.entries(summary)) {
  const keys = new Set(
    [byKind.reference, byKind.nchan, byKind.jobwire].flatMap((f) => Object.keys(f ?? {})),
  );
  for (const key of keys) {
    const cells = withNchan
      ? [byKind.reference, byKind.nchan, byKind.jobwire, byKind.ratio, byKind.ratio_nchan]
      : [byKind.reference, byKind.jobwire, byKind.ratio];
    lines.push(`| ${name} | ${key} | ${cells.map((f) => fmt(f?.[key])).join(" | ")} |`);
  }
}
lines.push("");
lines.push("| target | value | limit | |");
lines.push("| --- | ---: | --- | --- |");
for (const c of checks) {
  lines.push(`| ${c.name} | ${fmt(c.value)} | ${c.limit} | ${c.pass ? "pass" : "MISS"} |`);
}
console.log(lines.join("\n"));
console.log(
  JSON.stringify({
    runs,
    workers,
    quick,
    nchan: withNchan,
    publish_client: publishClient,
    scenarios: summary,
    targets: checks,
  }),
);
