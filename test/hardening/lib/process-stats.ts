// What the hardening tests measure of a running opam-edge child: RSS and open file
// descriptors from /proc, and the V8 heap after a full GC through the memory probe.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EdgeProcess } from '../../helpers/edge-process.ts';

export const PROBE = fileURLToPath(new URL('./memory-probe.ts', import.meta.url));

/** Environment for startEdgeProcess: the memory probe preloaded, gc() exposed. */
export function probeEnv(): Record<string, string> {
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc --import=${PROBE}`.trim() };
}

export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What the open fds are: "socket: 12, pipe: 3, file: 4, anon_inode:[eventpoll]: 1". */
export function fdKinds(pid: number): string {
  const kinds = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '?';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const kind = target.startsWith('/') ? 'file' : target.replace(/:\[\d+\]$/, '');
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return [...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ');
}

export type MemorySample = { rss: number; heapUsed: number; fds: number };

/** Full GC in the child, then its heap, RSS and fds. */
export async function sample(edge: EdgeProcess, timeoutMs = 5000): Promise<MemorySample> {
  const pid = edge.child.pid!;
  const since = Date.now();
  const before = edge.events.length;
  edge.signal('SIGUSR2');
  const event = await edge.waitForEvent((e) => e.event === 'memory_probe' && Number(e.at) >= since && edge.events.indexOf(e) >= before, timeoutMs);
  return { rss: rssBytes(pid), heapUsed: Number(event.heap_used), fds: openFds(pid) };
}

export const MiB = 1024 * 1024;
export const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
