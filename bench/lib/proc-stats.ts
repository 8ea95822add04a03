// What a process tree costs, read from /proc: CPU time (utime + stime of every process in
// the tree, all threads included) and peak RSS (VmHWM, summed: nginx master + workers, a node
// cluster primary + workers). Linux only; elsewhere every figure is null.

import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Fields after the "(comm)" of /proc/PID/stat; comm may contain spaces and parentheses. */
function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** The pid and every descendant, found through the ppid of each /proc entry. */
export function processTree(root: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const fields = statFields(pid);
    if (!fields) continue;
    // After comm: state (0), ppid (1).
    const ppid = Number(fields[1]);
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    tree.push(pid);
    for (const child of children.get(pid) ?? []) queue.push(child);
  }
  return tree;
}

/** utime + stime of one process in seconds, or null if it is gone. */
export function cpuSeconds(pid: number): number | null {
  const fields = statFields(pid);
  if (!fields) return null;
  // utime and stime are fields 14 and 15 of the line (man 5 proc); the list after comm starts
  // at field 3 (state), so field N is at index N - 3.
  return (Number(fields[14 - 3]) + Number(fields[15 - 3])) / clockTicks();
}

/** CPU seconds per pid of a tree: sampled before and after a run, subtracted per pid. */
export function sampleCpu(pids: readonly number[]): Map<number, number> {
  const sample = new Map<number, number>();
  for (const pid of pids) {
    const s = cpuSeconds(pid);
    if (s !== null) sample.set(pid, s);
  }
  return sample;
}

/** CPU used between two samples; a process born in between counts from zero. */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, s] of after) total += s - (before.get(pid) ?? 0);
  return total;
}

/** Sum of VmHWM (peak resident set) over the pids, in KiB; null when none could be read. */
export function peakRssKiB(pids: readonly number[]): number | null {
  return statusKiB(pids, 'VmHWM');
}

/** Sum of VmRSS (resident set now) over the pids, in KiB; null when none could be read. */
export function currentRssKiB(pids: readonly number[]): number | null {
  return statusKiB(pids, 'VmRSS');
}

function statusKiB(pids: readonly number[], field: 'VmHWM' | 'VmRSS'): number | null {
  const pattern = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm');
  let total = 0;
  let found = false;
  for (const pid of pids) {
    try {
      const match = pattern.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) {
        total += Number(match[1]);
        found = true;
      }
    } catch {
      // Gone.
    }
  }
  return found ? total : null;
}
