/**
 * How much `main.ts run` slows a chatty command: runs a child that prints LINES lines
 * (default 100,000), alone and under `run` against a real server (a child process,
 * `--no-auth`, a temp data dir), in two shapes — a burst (as fast as it can) and paced
 * (100,000 lines per second, in 1,000-line writes every 10 ms) — and reports wall
 * times, the child's own time from first to last write, and their ratios, once with the
 * server's default limits and once without its publish-rate limit.
 *
 *     deno task bench:run [LINES] [ROUNDS]
 *
 * @module
 */
const LINES = Number(Deno.args[0] ?? 100_000);
const ROUNDS = Number(Deno.args[1] ?? 3);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--allow-run",
];

const CHILD = `
const lines = Number(Deno.args[0]);
const paced = Deno.args[1] === "paced";
const encoder = new TextEncoder();
const start = performance.now();
for (let from = 0; from < lines; from += 1000) {
  let text = "";
  for (let i = from; i < Math.min(lines, from + 1000); i++) text += "line " + (i + 1) + " of the benchmark\\n";
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
  if (paced) await new Promise((r) => setTimeout(r, 10));
}
Deno.stderr.writeSync(encoder.encode("child-ms " + (performance.now() - start).toFixed(1) + "\\n"));
`;

async function startServer(
  dataDir: string,
  extra: string[],
): Promise<{ url: string; stop(): Promise<void> }> {
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...PERMISSIONS,
      MAIN,
      "--no-auth",
      "--port",
      "0",
      "--workers",
      "1",
      "--data-dir",
      dataDir,
      "--log-level",
      "error",
      ...extra,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/listening on (\S+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server did not start: ${text}`);
    text += value;
  }
  reader.releaseLock();
  server.stdout.cancel().catch(() => {});
  return {
    url: /listening on (\S+)/.exec(text)![1]!,
    async stop() {
      server.kill("SIGTERM");
      await server.status;
    },
  };
}

/** Runs argv with output piped and drained; wall ms, the child's own ms, stdout bytes. */
async function measure(
  argv: string[],
): Promise<{ wallMs: number; childMs: number; bytes: number }> {
  const start = performance.now();
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let bytes = 0;
  const drain = (async () => {
    for await (const chunk of child.stdout) bytes += chunk.length;
  })();
  const stderr = new Response(child.stderr).text();
  const status = await child.status;
  await drain;
  const wallMs = performance.now() - start;
  const err = await stderr;
  const childMs = Number(/child-ms ([\d.]+)/.exec(err)?.[1] ?? NaN);
  if (!status.success) throw new Error(`exit ${status.code}: ${err}`);
  return { wallMs, childMs, bytes };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const dir = await Deno.makeTempDir({ prefix: "jobwire-bench-run-" });
const childPath = `${dir}/child.js`;
await Deno.writeTextFile(childPath, CHILD);
console.log(`${LINES} lines, median of ${ROUNDS} rounds`);
try {
  // The publish-rate limit (10,000 events/s per principal) makes run wait for the server
  // before it can record the end of a burst; without it, only run's own work shows. Without
  // auth the principal is the client's address, and loopback is exempt by default: the
  // limited case counts it.
  for (
    const [label, extra] of [
      ["the publish-rate limit on loopback (--limits-exempt-ips none)", [
        "--limits-exempt-ips",
        "none",
      ]],
      ["default limits (loopback exempt)", []],
    ] as const
  ) {
    const server = await startServer(`${dir}/data-${extra.length}`, [...extra]);
    try {
      console.log(`\nserver with ${label}`);
      console.log("shape   alone wall  alone child  run wall  run child  child ratio  wall ratio");
      await compare(server.url);
    } finally {
      await server.stop();
    }
  }
  console.log(
    "\nchild: the child's own time from first to last write; wall: from spawn to exit (run's\n" +
      "includes its start-up and publishing what was still queued when the child exited).",
  );
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

async function compare(url: string): Promise<void> {
  for (const shape of ["burst", "paced"]) {
    const childArgv = [Deno.execPath(), "run", childPath, String(LINES), shape];
    const alone: { wallMs: number; childMs: number }[] = [];
    const viaRun: { wallMs: number; childMs: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const measuredAlone = await measure(childArgv);
      alone.push(measuredAlone);
      const runArgv = [
        Deno.execPath(),
        "run",
        ...PERMISSIONS,
        MAIN,
        "run",
        "--server",
        url,
        "--",
        ...childArgv,
      ];
      const measured = await measure(runArgv);
      if (measured.bytes !== measuredAlone.bytes) {
        throw new Error(`run passed ${measured.bytes} bytes, not ${measuredAlone.bytes}`);
      }
      viaRun.push(measured);
    }
    const a = {
      wall: median(alone.map((m) => m.wallMs)),
      child: median(alone.map((m) => m.childMs)),
    };
    const r = {
      wall: median(viaRun.map((m) => m.wallMs)),
      child: median(viaRun.map((m) => m.childMs)),
    };
    console.log(
      `${shape.padEnd(6)}  ${a.wall.toFixed(0).padStart(8)}ms  ${
        a.child.toFixed(0).padStart(9)
      }ms  ${r.wall.toFixed(0).padStart(6)}ms  ${r.child.toFixed(0).padStart(7)}ms  ${
        (r.child / a.child).toFixed(2).padStart(11)
      }  ${(r.wall / a.wall).toFixed(2).padStart(10)}`,
    );
  }
}
