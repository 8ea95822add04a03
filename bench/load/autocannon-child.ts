// The autocannon load generator, alone in its own process (and on its own CPU when pinned),
// driven through its programmatic API. One change to autocannon: it appends every response
// body to a string (for its body checks, unused here), which caps it near 50 MB/s and makes
// 10 MiB bodies crawl; that append is turned into a no-op, bytes are still counted.

import { createRequire } from 'node:module';
import { serveOneRun } from './protocol.ts';
import type { LoadResult, LoadSpec } from './protocol.ts';

type AutocannonResult = {
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  throughput: { average: number; total: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
};
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

const require = createRequire(import.meta.url);
const autocannon = require('autocannon') as Autocannon;
const queue = require('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: { addBody: (data: unknown) => void } };
queue.prototype.addBody = () => {};

function options(spec: LoadSpec, durationS: number): Record<string, unknown> {
  return {
    url: `${spec.tls ? 'https' : 'http'}://127.0.0.1:${spec.port}${spec.path}`,
    headers: { host: spec.host },
    servername: spec.host,
    connections: spec.connections,
    pipelining: 1,
    duration: durationS,
    timeout: 10,
  };
}

async function warmup(spec: LoadSpec): Promise<void> {
  if (spec.warmupS > 0) await autocannon(options(spec, spec.warmupS));
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const started = performance.now();
  const res = await autocannon(options(spec, spec.durationS));
  const durationS = (performance.now() - started) / 1000;
  return {
    requests: res.requests.total,
    durationS,
    rps: res.requests.total / durationS,
    p50: res.latency.p50,
    p99: res.latency.p99,
    bytesPerS: res.throughput.total / durationS,
    // autocannon counts timeouts among its errors.
    errors: res.errors,
    non2xx: res.non2xx,
  };
}

serveOneRun(run, warmup);
