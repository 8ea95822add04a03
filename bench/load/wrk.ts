// HTTP/1.1 keep-alive load with wrk (Debian's wrk): C, one thread, epoll; about a third
// faster than autocannon here, so it saturates later (PERF-NOTES: 28k against 22k req/s on
// the bare origin). It runs under timed-run.ts (its own CPU time); latency percentiles come
// from its --latency distribution. It connects to 127.0.0.1 (so the TLS server name is that
// address: every target serves its one certificate for it) and sends Host: bench.test.

import type { LoadResult, LoadSpec } from './protocol.ts';
import { runTimed } from './timed-run.ts';

export type WrkSpec = LoadSpec & { wrk: string; cpus: string | null };

function args(spec: WrkSpec, durationS: number): string[] {
  return [
    '-t1',
    `-c${spec.connections}`,
    // wrk's time units stop at seconds (s, m, h): whole seconds, at least one.
    `-d${Math.max(1, Math.round(durationS))}s`,
    '--latency',
    '-H',
    `Host: ${spec.host}`,
    `${spec.tls ? 'https' : 'http'}://127.0.0.1:${spec.port}${spec.path}`,
  ];
}

const UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const BYTES: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** wrk's "5.12ms" / "812.00us" / "1.20s" in ms. */
function ms(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  return m ? Number(m[1]) * UNITS[m[2]!]! : 0;
}

/** Parses wrk's report (with --latency). */
export function parseWrk(out: string, wallS: number): LoadResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB) read/.exec(out);
  const requests = total ? Number(total[1]) : 0;
  const durationS = total ? (Number(total[2]) * UNITS[total[3]!]!) / 1000 : wallS;
  const bytes = total ? Number(total[4]) * BYTES[total[5]!]! : 0;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests,
    durationS,
    rps: durationS > 0 ? requests / durationS : 0,
    p50: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
    bytesPerS: durationS > 0 ? bytes / durationS : 0,
    errors: socket ? Number(socket[1]) + Number(socket[2]) + Number(socket[3]) + Number(socket[4]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

export async function wrkWarmup(spec: WrkSpec): Promise<void> {
  if (spec.warmupS > 0) await runTimed('wrk', spec.wrk, args(spec, spec.warmupS), spec.cpus, spec.warmupS + 30);
}

/** The measured run. `begin`/`end` bracket it for the proxy's CPU samples. */
export async function wrkRun(spec: WrkSpec, begin: () => void, end: () => void): Promise<{ result: LoadResult; loadCpuS: number | null }> {
  begin();
  const started = performance.now();
  const { out, cpuS } = await runTimed('wrk', spec.wrk, args(spec, spec.durationS), spec.cpus, spec.durationS + 30);
  const wall = (performance.now() - started) / 1000;
  end();
  return { result: parseWrk(out, wall), loadCpuS: cpuS };
}
