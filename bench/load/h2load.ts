// HTTP/2 load with h2load (Debian's nghttp2-client): C, one thread, fast enough not to be the
// limit where a node:http2 client would be. It runs under timed-run.ts (its own CPU time);
// per-request latencies come from its --log-file (microseconds), percentiles are computed here.
// It also drives the fixed-rate runs of every protocol (`--h1` for HTTP/1.1): `--rps` paces
// each connection evenly (a timer per client), where autocannon's rate sends each second's
// budget in one burst, and wrk has no rate at all.

import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runTimed } from './timed-run.ts';
import type { LoadResult, LoadSpec } from './protocol.ts';

export type H2Spec = LoadSpec & {
  streams: number;
  h2load: string;
  cpus: string | null;
  dir: string;
  /** HTTP/1.1 instead of h2 (fixed-rate runs of the http/https scenarios). */
  h1?: boolean;
  /** Requests per second per connection (h2load --rps); unset: as fast as it can. */
  rps?: number;
};

/** Fraction of nginx-as-deployed's req/s offered in the fixed-rate runs. */
export const FIXED_RATE_FRACTION = 0.5;

/**
 * The fixed rate for a scenario: `fraction` of the reference req/s, spread over the
 * connections as whole requests per second per connection (h2load's --rps), at least one.
 * `offered` is what that adds up to.
 */
export function fixedRate(referenceRps: number, connections: number, fraction = FIXED_RATE_FRACTION): { perConnection: number; offered: number } {
  const perConnection = Math.max(1, Math.round((referenceRps * fraction) / connections));
  return { perConnection, offered: perConnection * connections };
}

function args(spec: H2Spec, durationS: number, logFile: string | null): string[] {
  return [
    '-D',
    // h2load takes whole seconds, or a number with a unit.
    `${Math.max(1, Math.round(durationS * 1000))}ms`,
    '-c',
    String(spec.connections),
    '-m',
    String(spec.streams),
    '-t',
    '1',
    `--connect-to=127.0.0.1:${spec.port}`,
    ...(spec.h1 ? ['--h1'] : []),
    ...(spec.rps ? [`--rps=${spec.rps}`] : []),
    ...(logFile ? [`--log-file=${logFile}`] : []),
    `${spec.tls ? 'https' : 'http'}://${spec.host}:${spec.port}${spec.path}`,
  ];
}

function runOnce(spec: H2Spec, durationS: number, logFile: string | null): Promise<{ out: string; cpuS: number | null }> {
  return runTimed('h2load', spec.h2load, args(spec, durationS, logFile), spec.cpus, durationS + 30);
}

export async function h2Warmup(spec: H2Spec): Promise<void> {
  if (spec.warmupS > 0) await runOnce(spec, spec.warmupS, null);
}

/** The measured run. `begin`/`end` bracket it for the proxy's CPU samples. */
export async function h2Run(spec: H2Spec, begin: () => void, end: () => void): Promise<{ result: LoadResult; loadCpuS: number | null }> {
  const logFile = join(spec.dir, `h2load-${process.pid}-${Date.now()}.log`);
  begin();
  const started = performance.now();
  const { out, cpuS } = await runOnce(spec, spec.durationS, logFile);
  const wall = (performance.now() - started) / 1000;
  end();
  const latencies: number[] = [];
  try {
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      const [, status, us] = line.split('\t');
      if (status !== undefined && us !== undefined && Number(status) > 0) latencies.push(Number(us) / 1000);
    }
  } finally {
    rmSync(logFile, { force: true });
  }
  latencies.sort((a, b) => a - b);
  const pick = (q: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! : 0);
  const finished = /finished in ([\d.]+)(m?s)/.exec(out);
  const durationS = finished ? Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1) : wall;
  const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const traffic = /traffic: [\d.]+\w* \((\d+)\) total/.exec(out);
  const bytes = traffic ? Number(traffic[1]) : 0;
  const done = counts ? Number(counts[3]) : latencies.length;
  const result: LoadResult = {
    requests: done,
    durationS,
    rps: done / durationS,
    p50: pick(0.5),
    p99: pick(0.99),
    bytesPerS: bytes / durationS,
    // "failed" also counts 4xx/5xx answers; errors here are transport failures only.
    errors: counts ? Number(counts[6]) + Number(counts[7]) : 0,
    non2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0,
  };
  return { result, loadCpuS: cpuS };
}
