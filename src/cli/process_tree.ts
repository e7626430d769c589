/**
 * Signals for a command and what it started. A shell script stopped by a signal leaves
 * the programs it was running behind (they keep its output pipes, and go on working), so
 * signals meant to end a command reach its descendants too. Processes are told apart by
 * their id and start time, so that an id the system gave to another process since is
 * never signalled.
 *
 * @module
 */

/** A process, as `ps` shows it: its id and when it started (as `ps` prints it). */
export interface Proc {
  pid: number;
  started: string;
}

const LINE = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.+?)\s*$/;

/** `ps` output of `pid`, `ppid`, `stat` and `lstart` for `args`; empty when it cannot run. */
async function table(args: string[]): Promise<{ proc: Proc; ppid: number; stat: string }[]> {
  try {
    const out = await new Deno.Command("ps", {
      args: [...args, "-o", "pid=", "-o", "ppid=", "-o", "stat=", "-o", "lstart="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      env: { LC_ALL: "C" },
    }).output();
    const rows = [];
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const match = LINE.exec(line);
      if (match === null) continue;
      rows.push({
        proc: { pid: Number(match[1]), started: match[4]! },
        ppid: Number(match[2]),
        stat: match[3]!,
      });
    }
    return rows;
  } catch {
    return [];
  }
}

/**
 * The processes `root` started, directly or not, from the process table (`ps`, POSIX:
 * Linux with procps, macOS, the BSDs). None when `ps` cannot be run.
 */
export async function descendantsOf(root: number): Promise<Proc[]> {
  const children = new Map<number, Proc[]>();
  for (const { proc, ppid } of await table(["-A"])) {
    const siblings = children.get(ppid);
    if (siblings === undefined) children.set(ppid, [proc]);
    else siblings.push(proc);
  }
  const found: Proc[] = [];
  for (let queue = [root]; queue.length > 0;) {
    const next: number[] = [];
    for (const pid of queue) {
      for (const child of children.get(pid) ?? []) {
        found.push(child);
        next.push(child.pid);
      }
    }
    queue = next;
  }
  return found;
}

/**
 * Sends `signal` to `child`, then to every process it started: listed before the first
 * signal, so those it orphans by exiting are reached too. Returns those processes.
 */
export async function signalTree(child: Deno.ChildProcess, signal: Deno.Signal): Promise<Proc[]> {
  const descendants = await descendantsOf(child.pid);
  try {
    child.kill(signal);
  } catch {
    // It has just exited.
  }
  signalAll(descendants, signal);
  return descendants;
}

/** Sends `signal` to each of `procs` (checked to be those processes just before). */
export function signalAll(procs: readonly Proc[], signal: Deno.Signal): void {
  for (const { pid } of procs) {
    try {
      Deno.kill(pid, signal);
    } catch {
      // Exited meanwhile.
    }
  }
}

/**
 * Those of `procs` that still run: the same process (same id and start time), not exited
 * nor exited and waiting to be reaped.
 */
export async function stillRunning(procs: readonly Proc[]): Promise<Proc[]> {
  if (procs.length === 0) return [];
  const now = new Map(
    (await table(["-p", procs.map((p) => p.pid).join(",")]))
      .filter((row) => !row.stat.startsWith("Z"))
      .map((row) => [row.proc.pid, row.proc.started]),
  );
  return procs.filter((p) => now.get(p.pid) === p.started);
}

/**
 * Waits until each of `procs` has ended, or `deadline` (epoch ms) passes: then those left
 * get SIGKILL. Returns how many did.
 */
export async function killLeftAt(procs: readonly Proc[], deadline: number): Promise<number> {
  for (let left = await stillRunning(procs); left.length > 0;) {
    if (Date.now() >= deadline) {
      signalAll(left, "SIGKILL");
      return left.length;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    left = await stillRunning(left);
  }
  return 0;
}
