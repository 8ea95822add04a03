// The wrk load generator's report parser, --loadgen, and the report's headline order and
// load-bound marks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk } from '../../bench/load/wrk.ts';
import { parseOptions } from '../../bench/lib/options.ts';
import { summarize } from '../../bench/report/results.ts';
import type { RunRecord } from '../../bench/report/results.ts';

const WRK_OUT = `Running 2s test @ https://127.0.0.1:4443/1k
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.52ms  613.12us  12.01ms   90.12%
    Req/Sec    19.90k     1.01k   21.13k    80.00%
  Latency Distribution
     50%    2.41ms
     75%    2.70ms
     90%    3.04ms
     99%  812.00us
  39612 requests in 2.00s, 48.42MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  19806.00
Transfer/sec:     24.21MB
`;

test('parseWrk: requests, duration, percentiles in ms whatever the unit, bytes, errors and non-2xx', () => {
  const r = parseWrk(WRK_OUT, 2.1);
  assert.equal(r.requests, 39612);
  assert.equal(r.durationS, 2);
  assert.equal(r.rps, 19806);
  assert.equal(r.p50, 2.41);
  assert.equal(r.p99, 0.812);
  assert.equal(Math.round(r.bytesPerS), Math.round((48.42 * 1024 * 1024) / 2));
  assert.equal(r.errors, 3);
  assert.equal(r.non2xx, 3);
});

test('--loadgen: wrk or autocannon, auto by default, anything else refused', () => {
  assert.equal((parseOptions([]) as { loadgen: string }).loadgen, 'auto');
  assert.equal((parseOptions(['--loadgen', 'autocannon']) as { loadgen: string }).loadgen, 'autocannon');
  assert.equal((parseOptions(['--loadgen=wrk']) as { loadgen: string }).loadgen, 'wrk');
  assert.match((parseOptions(['--loadgen', 'ab']) as { error: string }).error, /wrk or autocannon/);
});

test('a cell is load-bound when the origin alone, or the load generator, used 90% of a CPU', () => {
  const run = (target: RunRecord['target'], load: number, origin: number): RunRecord => ({
    workers: 1, round: 1, scenario: 'https-1k', target, status: 'ok', rps: 1000, p99_ms: 1, cpu_us_per_req: 100, load_cpu: load, origin_cpu: origin,
  });
  // Not sharing a CPU: each side on its own.
  const { summary } = summarize([run('opam-edge', 0.5, 0.95), run('nginx-seed', 0.95, 0.1), run('caddy', 0.5, 0.3)], false);
  const bound = (t: string) => summary.find((s) => s.target === t)!.load_saturated;
  assert.equal(bound('opam-edge'), true);
  assert.equal(bound('nginx-seed'), true);
  assert.equal(bound('caddy'), false);
  assert.equal(summary.find((s) => s.target === 'opam-edge')!.origin_cpu, 0.95);
});

test('the report leads with the proxy CPU per request, and marks load-bound req/s', async () => {
  const { renderMarkdown, renderText } = await import('../../bench/report/table.ts');
  const runs: RunRecord[] = [
    { workers: 1, round: 1, scenario: 'https-1k', target: 'opam-edge', status: 'ok', rps: 1000, p50_ms: 1, p99_ms: 2, mb_per_s: 1, cpu_us_per_req: 150, load_cpu: 0.97, origin_cpu: 0.2 },
  ];
  const { summary, flags } = summarize(runs, false);
  const results = {
    schema: 'opam-edge-bench/1', date: '2026-12-05T10:00:00.000Z', stamp: 'x', quick: true, elapsed_s: 1,
    options: { rounds: 1, duration_s: 1, warmup_s: 0, workers: [1], targets: ['opam-edge'], scenarios: ['https-1k'] },
    machine: { cpus: 2, model: 'cpu', kernel: 'Linux', memory_gib: 4, node: 'v24' }, tools: {}, pinning: {},
    scenarios: [{ id: 'https-1k', title: 't', driver: 'wrk', connections: 50 }],
    targets: [{ id: 'opam-edge', label: 'opam-edge', description: {} }], notes: [], runs, summary, flags,
  } as Parameters<typeof renderMarkdown>[0];
  const md = renderMarkdown(results, null);
  assert.ok(md.indexOf('**proxy CPU per request, us**') < md.indexOf('**requests/s**'), 'CPU per request is the first matrix');
  assert.match(md, /\| 1000 \(- \/ -\) load-bound \|/);
  assert.match(md, /\| 1000 load-bound \[1\] \|/);
  const header = renderText(results).split('\n').find((l) => l.startsWith('scenario'))!;
  assert.ok(header.indexOf('CPU us/req') < header.indexOf('req/s '), header);
});
