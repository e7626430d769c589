/**
 * The launcher's supervision of the isolates' process, with stand-in processes whose ends
 * the test decides: isolates that keep ending are started again after a growing wait, and
 * a stop asked for during that wait ends it at once.
 */
import assert from "node:assert/strict";
import { type Isolates, supervise } from "../../src/cluster.ts";

/** Isolates that end with `code` as soon as they are started. */
function crashing(code: number): Isolates {
  return {
    cluster: "stand-in",
    pid: 0,
    exited: Promise.resolve(code),
    ended: () => true,
    stop() {},
    kill() {},
  };
}

Deno.test({
  name: "a stop asked for while the launcher waits to start crashing isolates again ends the wait",
  // The supervisor's health watch keeps a timer of its own, which lets the process exit.
  sanitizeOps: false,
  async fn() {
    let started = 0;
    const supervisor = supervise(
      crashing(1),
      () => {
        started++;
        return crashing(1);
      },
      "http://127.0.0.1:9/healthz",
      2,
    );
    // Five ends are started again at once, then waits of 1, 2 and 4 s: the eighth start's
    // end begins the 4 s wait.
    while (started < 7) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const asked = Date.now();
    supervisor.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      supervisor.exited,
      new Promise((resolve) => timer = setTimeout(() => resolve("still waiting"), 2_500)),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, 0, `stopped after ${Date.now() - asked} ms`);
    assert.equal(started, 7, "nothing is started once a stop was asked for");
  },
});
