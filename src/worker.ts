/**
 * The module `deno serve --parallel` runs once per isolate (see `src/cluster.ts`, which
 * starts it). Each isolate builds its own server core on the shared SQLite database and
 * joins the others on a `BroadcastChannel`; the resolved configuration arrives in
 * `JOBWIRE_WORKER_CONFIG`.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { createCore, type ServerCore, SHUTDOWN_GRACE_MS } from "./server.ts";
import { log } from "./log.ts";
import { startupFailure } from "./startup_errors.ts";
import { WORKER_CLUSTER_ENV, WORKER_CONFIG_ENV, WORKER_LAUNCHER_ENV } from "./cluster.ts";

const raw = Deno.env.get(WORKER_CONFIG_ENV);
if (raw === undefined) {
  throw new TypeError(`${WORKER_CONFIG_ENV} is not set: start jobwire with main.ts`);
}
const config = JSON.parse(raw) as Config;

/** Wait past the shutdown grace before the process exits with connections still open, in ms. */
const EXIT_MARGIN_MS = 3000;

// Listening before the core exists: a SIGTERM that arrives while it is being built is kept
// and acted on once it is, instead of finding no listener and leaving this isolate running.
const life: { core?: ServerCore; stopRequested: boolean; stopping: boolean } = {
  stopRequested: false,
  stopping: false,
};
const stop = () => {
  life.stopRequested = true;
  const core = life.core;
  if (life.stopping || core === undefined) return;
  life.stopping = true;
  // deno serve stops accepting and lets open requests finish; this isolate closes its
  // streams with 1001 first, then waits for requests in flight before closing the database.
  core.closeStreams();
  const deadline = Date.now() + SHUTDOWN_GRACE_MS;
  const wait = setInterval(() => {
    if (core.inflight > 0 && Date.now() < deadline) return;
    clearInterval(wait);
    core.close();
    log("debug", "isolate stopped");
    // deno serve ends once every connection has, and a client that never reads what it was
    // sent would keep this process running for good. A moment past the grace (when every
    // isolate has closed its database) what is left goes with the process; a timer that
    // does not hold the process lets it end by itself first whenever it can.
    const exit = setTimeout(
      () => Deno.exit(0),
      Math.max(0, deadline - Date.now()) + EXIT_MARGIN_MS,
    );
    Deno.unrefTimer(exit);
  }, 20);
};
// Only SIGTERM: it is the signal on which deno serve itself stops accepting and drains. The
// launcher turns Ctrl-C into SIGTERM for this process group.
Deno.addSignalListener("SIGTERM", stop);

// Started in a process group of its own, this process must not outlive its launcher. Its pid
// comes from the launcher itself: one killed before this line ran would otherwise leave the
// parent already gone (pid 1) taken for the launcher, and this process serving for good.
const launcher = Number(Deno.env.get(WORKER_LAUNCHER_ENV) ?? Deno.ppid);
const watchdog = setInterval(() => {
  if (Deno.ppid === launcher) return;
  log("warn", "the launcher is gone: stopping");
  clearInterval(watchdog);
  Deno.kill(Deno.pid, "SIGTERM");
}, 1000);
Deno.unrefTimer(watchdog);
const cluster = Deno.env.get(WORKER_CLUSTER_ENV);
let built: ServerCore;
try {
  built = await createCore(config, {
    cluster: cluster ?? "jobwire",
    // Started by the launcher (which names the cluster), which checkpoints for every isolate.
    launcherCheckpoints: cluster !== undefined,
  });
} catch (error) {
  // What the machine refused (a disk that filled since the launcher's checks) is one line,
  // as the launcher's own refusals are; the launcher then says the isolates did not start.
  const failure = startupFailure(error);
  if (failure === undefined) throw error;
  console.error(`jobwire: ${failure}`);
  Deno.exit(1);
}
life.core = built;
if (life.stopRequested) stop();

export default { fetch: built.handler } satisfies Deno.ServeDefaultExport;
