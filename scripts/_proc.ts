/**
 * Reading a process tree's CPU time and memory from /proc (Linux), for the benchmark's
 * server-side figures. The server may be several processes (jobwire's launcher and its
 * `deno serve --parallel` child), so figures are summed over the tree.
 *
 * @module
 */

/** Clock ticks per second of /proc/<pid>/stat times (CLK_TCK, 100 on Linux). */
export const CLOCK_TICKS = 100;

function readStat(pid: number): string[] | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces; everything after its ")" splits cleanly.
    const close = text.lastIndexOf(")");
    return [
      String(pid),
      text.slice(text.indexOf("(") + 1, close),
      ...text.slice(close + 2).split(" "),
    ];
  } catch {
    return undefined;
  }
}

/** `root` and every process descended from it. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readStat(Number(entry.name));
    if (stat === undefined) continue;
    const parent = Number(stat[3]);
    const list = children.get(parent) ?? [];
    list.push(Number(entry.name));
    children.set(parent, list);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** CPU seconds (user + system) used so far by `root` and its descendants. */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    const stat = readStat(pid);
    if (stat !== undefined) ticks += Number(stat[13]) + Number(stat[14]);
  }
  return ticks / CLOCK_TICKS;
}

/** Resident memory in bytes of `root` and its descendants. */
export function rssBytes(root: number): number {
  let kib = 0;
  for (const pid of processTree(root)) {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
      if (match !== null) kib += Number(match[1]);
    } catch {
      // Exited meanwhile.
    }
  }
  return kib * 1024;
}
