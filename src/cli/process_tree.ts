/**
 * Signals for a command and what it started. A shell script stopped by a signal leaves
 * the programs it was running behind (they keep its output pipes, and go on working), so
 * signals meant to end a command reach its descendants too.
 *
 * @module
 */

/**
 * The processes `root` started, directly or not, from the process table (`ps -A -o pid=
 * -o ppid=`, POSIX: Linux with procps, macOS, the BSDs). None when `ps` cannot be run.
 */
export async function descendantsOf(root: number): Promise<number[]> {
  let table: string;
  try {
    const out = await new Deno.Command("ps", {
      args: ["-A", "-o", "pid=", "-o", "ppid="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return [];
    table = new TextDecoder().decode(out.stdout);
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const line of table.split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (!Number.isInteger(pid) || !Number.isInteger(ppid)) continue;
    const siblings = children.get(ppid!);
    if (siblings === undefined) children.set(ppid!, [pid!]);
    else siblings.push(pid!);
  }
  const found: number[] = [];
  for (let queue = [root]; queue.length > 0;) {
    const next: number[] = [];
    for (const pid of queue) {
      for (const child of children.get(pid) ?? []) {
        found.push(child);
        next.push(child);
      }
    }
    queue = next;
  }
  return found;
}

/**
 * Sends `signal` to `child`, then to every process it started: listed before the first
 * signal, so those it orphans by exiting are reached too.
 */
export async function signalTree(
  child: Deno.ChildProcess,
  signal: Deno.Signal,
): Promise<number[]> {
  const descendants = await descendantsOf(child.pid);
  try {
    child.kill(signal);
  } catch {
    // It has just exited.
  }
  signalAll(descendants, signal);
  return descendants;
}

/** Sends `signal` to each of `pids` that still runs. */
export function signalAll(pids: readonly number[], signal: Deno.Signal): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, signal);
    } catch {
      // Exited meanwhile.
    }
  }
}

/** Those of `pids` that still run (not exited, nor exited and waiting to be reaped). */
export async function stillRunning(pids: readonly number[]): Promise<number[]> {
  if (pids.length === 0) return [];
  try {
    const out = await new Deno.Command("ps", {
      args: ["-o", "pid=", "-o", "stat=", "-p", pids.join(",")],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const running: number[] = [];
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const [pid, stat = ""] = line.trim().split(/\s+/);
      if (pid !== undefined && pid !== "" && !stat.startsWith("Z")) running.push(Number(pid));
    }
    return running;
  } catch {
    return [];
  }
}
