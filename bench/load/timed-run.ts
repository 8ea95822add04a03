// A C load generator (h2load, wrk) run once in its own process group under bash, whose
// `times` gives the generator's own CPU time (user + system of bash's children).

import { startProcess } from '../lib/processes.ts';

/** Runs `command args` under `bash -c '...; times'`; returns its stdout and its CPU seconds. */
export async function runTimed(name: string, command: string, args: string[], cpus: string | null, limitS: number): Promise<{ out: string; cpuS: number | null }> {
  const script = 'cmd="$1"; shift; "$cmd" "$@"; rc=$?; echo "--times--"; times; exit $rc';
  const proc = startProcess(name, 'bash', ['-c', script, 'bash', command, ...args], { cpus });
  let out = '';
  proc.child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  const timer = setTimeout(() => void proc.stop(1000), limitS * 1000);
  const { code } = await proc.exited;
  clearTimeout(timer);
  await proc.stop(0);
  if (code !== 0) throw new Error(`${name} exited with ${code}: ${proc.tail().split('\n').slice(-3).join(' | ')}`);
  // `times` prints the shell's user/sys, then its children's: "0m1.234s 0m0.567s".
  const lines = out.slice(out.indexOf('--times--')).split('\n');
  const child = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines[2] ?? '');
  const cpuS = child ? Number(child[1]) * 60 + Number(child[2]) + Number(child[3]) * 60 + Number(child[4]) : null;
  return { out, cpuS };
}
