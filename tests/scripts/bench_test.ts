/**
 * `deno task bench` at its quick sizes, end to end: real servers (jobwire as `deno task
 * start` runs it, the reference, and nchan when nginx and its module are installed), a
 * load client in its own process, and the JSON line it prints. It checks what each server
 * delivered and that nothing was lost, never how fast.
 */
import assert from "node:assert/strict";
import { nchanInstalled } from "../../scripts/_nchan.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCENARIOS = ["ws_fanout_1x1000x200", "sse_fanout_1x1000x200", "idle_rss_10k"];
/** Measured on jobwire alone. */
const JOBWIRE_ONLY = ["publish_single"];

Deno.test({
  name: "the quick bench drives every server with the same load and counts nothing missing",
  // The bench's children (servers, nginx, the load client) end before it returns.
  sanitizeResources: false,
  async fn() {
    const nchan = nchanInstalled();
    if (!nchan) {
      console.warn(
        "nchan is not installed (apt-get install -y nginx libnginx-mod-nchan): " +
          "the bench is checked against the reference only.",
      );
    }
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "--cwd",
        ROOT,
        "bench",
        "--quick",
        "--runs",
        "1",
        "--workers",
        "2",
        "--only",
        [...SCENARIOS, ...JOBWIRE_ONLY].join(","),
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr.slice(-3000));
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assert.equal(report.nchan, nchan);
    assert.match(
      stdout,
      nchan ? /\| reference \| nchan \| jobwire \|/ : /\| reference \| jobwire \|/,
    );
    const servers = nchan ? ["reference", "nchan", "jobwire"] : ["reference", "jobwire"];
    for (const name of SCENARIOS) {
      for (const server of servers) {
        const figures = report.scenarios[name]?.[server];
        assert.ok(figures, `${name} on ${server}: ${JSON.stringify(report.scenarios[name])}`);
        if (name === "idle_rss_10k") {
          assert.equal(figures.connections, 500);
          assert.ok(figures.rss_per_connection_bytes > 0, `${server}: ${JSON.stringify(figures)}`);
        } else {
          // 100 subscribers × 50 events at the quick sizes, all counted in order.
          assert.equal(figures.deliveries, 5000, `${name} on ${server}`);
          assert.equal(figures.missing, 0, `${name} on ${server}`);
          assert.equal(figures.duplicated, 0, `${name} on ${server}`);
          assert.equal(figures.out_of_order, 0, `${name} on ${server}`);
          assert.ok(Number.isFinite(figures.server_cpu_seconds), `${name} on ${server}`);
        }
      }
      assert.ok(report.scenarios[name].ratio, `${name}: ratio to the reference`);
      if (nchan) assert.ok(report.scenarios[name].ratio_nchan, `${name}: ratio to nchan`);
    }
    // Publishes come from wrk when it is installed, else from the bench's own client.
    const publishes = report.scenarios.publish_single?.jobwire;
    assert.ok(["wrk", "http1"].includes(report.publish_client), report.publish_client);
    assert.ok(publishes?.requests_per_second > 0, JSON.stringify(publishes));
    assert.equal(publishes.failed_requests, 0);
  },
});
