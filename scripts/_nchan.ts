/**
 * Where the benchmark finds nginx and its nchan module (Debian's `nginx` and
 * `libnginx-mod-nchan`), for `scripts/bench.ts` and its test, and how nginx is run in
 * the foreground for them and for the reverse proxy's test.
 *
 * @module
 */
import { join } from "node:path";

/** nginx's nchan module, as Debian's `libnginx-mod-nchan` installs it. */
export const NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/** Debian's nginx, which is outside the PATH of users other than root; else the PATH's. */
export const NGINX = (() => {
  try {
    Deno.statSync("/usr/sbin/nginx");
    return "/usr/sbin/nginx";
  } catch {
    return "nginx";
  }
})();

/** Whether nginx with the nchan module can run here. */
export function nchanInstalled(): boolean {
  try {
    Deno.statSync(NCHAN_MODULE);
    return new Deno.Command(NGINX, { args: ["-v"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Whether nginx itself can run here (with or without nchan). */
export function nginxInstalled(): boolean {
  try {
    return new Deno.Command(NGINX, { args: ["-v"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** A free TCP port on loopback (nginx takes no port 0 it would report back). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** nginx running in the foreground. */
export interface RunningNginx {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  pid: number;
  /** Stops nginx and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts nginx in the foreground on `dir` (its prefix; `nginx.conf` there, with `daemon
 * off`, its pid file and `error.log` inside) and waits until `url` answers `/healthz`.
 *
 * @throws {Error} with the end of nginx's error log when it does not answer within 10 s
 */
export async function runNginx(dir: string, url: string): Promise<RunningNginx> {
  const child = new Deno.Command(NGINX, {
    args: ["-p", dir, "-c", join(dir, "nginx.conf")],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.output().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const deadline = Date.now() + 10_000;
  while (true) {
    try {
      const reply = await fetch(`${url}/healthz`);
      await reply.body?.cancel();
      if (reply.ok) return { url, pid: child.pid, stop };
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      const log = await Deno.readTextFile(join(dir, "error.log")).catch(() => "");
      await stop();
      throw new Error(`nginx did not start: ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
