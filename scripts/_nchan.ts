/**
 * Where the benchmark finds nginx and its nchan module (Debian's `nginx` and
 * `libnginx-mod-nchan`), for `scripts/bench.ts` and its test.
 *
 * @module
 */

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
