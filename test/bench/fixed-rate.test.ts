// The fixed-rate runs: the rate offered (half of nginx-seed's req/s, as whole requests per
// second per connection), their p99 and its ratio to nginx-seed's in the summary, and the
// report's columns and matrix.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixedRate } from '../../bench/load/h2load.ts';
import { estimateSeconds, parseOptions } from '../../bench/lib/options.ts';
import type { Options } from '../../bench/lib/options.ts';
import { summarize } from '../../bench/report/results.ts';
import type { Results, RunRecord } from '../../bench/report/results.ts';
import { renderMarkdown } from '../../bench/report/table.ts';

test('fixedRate: half the reference, whole requests per connection, at least one', () => {
  assert.deepEqual(fixedRate(12_000, 50), { perConnection: 120, offered: 6000 });
  assert.deepEqual(fixedRate(12_345, 10), { perConnection: 617, offered: 6170 });
  assert.deepEqual(fixedRate(30, 50), { perConnection: 1, offered: 50 });
  assert.deepEqual(fixedRate(1000, 10, 0.25), { perConnection: 25, offered: 250 });
});

const capacity = (target: RunRecord['target'], rps: number, p99: number): RunRecord => ({
  workers: 1, round: 1, scenario: 'https-1k', target, status: 'ok', rps, p50_ms: 1, p99_ms: p99, mb_per_s: 1, cpu_us_per_req: 100,
});
const atRate = (target: RunRecord['target'], p99: number, rps = 6000): RunRecord => ({
  ...capacity(target, rps, p99), phase: 'fixed-rate', offered_rps: 6000, p50_ms: 0.5, errors: 0, non2xx: 0,
});

test('summarize: fixed-rate runs land in at_rate, with their p99 ratio to nginx-seed, and leave the capacity medians alone', () => {
  const runs = [capacity('nginx-seed', 12_000, 10), capacity('opam-edge', 8000, 20), atRate('nginx-seed', 2), atRate('opam-edge', 3, 5000)];
  const { summary } = summarize(runs, false);
  assert.equal(summary.length, 2, 'no extra rows for the fixed-rate runs');
  const edge = summary.find((s) => s.target === 'opam-edge')!;
  assert.equal(edge.rps, 8000);
  assert.equal(edge.p99_ms, 20);
  assert.equal(edge.vs_seed?.p99, 2);
  assert.deepEqual(edge.at_rate, { status: 'ok', offered_rps: 6000, rps: 5000, p50_ms: 0.5, p99_ms: 3, cpu_us_per_req: 100, errors: 0 });
  assert.equal(edge.vs_seed?.p99_at_rate, 1.5);
  assert.equal(summary.find((s) => s.target === 'nginx-seed')!.vs_seed?.p99_at_rate, 1);
});

test('summarize: a fixed-rate run that could not happen keeps its reason, and no ratio is made of it', () => {
  const skipped: RunRecord = { workers: 1, round: 1, scenario: 'https-1k', target: 'opam-edge', status: 'not-available', reason: 'no rate', phase: 'fixed-rate' };
  const { summary } = summarize([capacity('nginx-seed', 12_000, 10), capacity('opam-edge', 8000, 20), atRate('nginx-seed', 2), skipped], false);
  const edge = summary.find((s) => s.target === 'opam-edge')!;
  assert.deepEqual(edge.at_rate, { status: 'not-available', reason: 'no rate' });
  assert.equal(edge.vs_seed?.p99_at_rate, null);
});

test('the report: rate, p99 at that rate and its ratio in the table; a matrix naming the rate per scenario', () => {
  const runs = [capacity('nginx-seed', 12_000, 10), capacity('opam-edge', 8000, 20), atRate('nginx-seed', 2), atRate('opam-edge', 3, 5000)];
  const { summary, flags } = summarize(runs, false);
  const results = {
    schema: 'opam-edge-bench/1', date: '2026-12-04T10:00:00.000Z', stamp: 'x', quick: true, elapsed_s: 1,
    options: { rounds: 1, duration_s: 1, warmup_s: 0, workers: [1], targets: ['nginx-seed', 'opam-edge'], scenarios: ['https-1k'] },
    machine: { cpus: 2, model: 'cpu', kernel: 'Linux', memory_gib: 4, node: 'v24' }, tools: {}, pinning: {},
    scenarios: [{ id: 'https-1k', title: 't', driver: 'wrk', connections: 50 }],
    targets: [{ id: 'nginx-seed', label: 'nginx-seed', description: {} }, { id: 'opam-edge', label: 'opam-edge', description: {} }],
    notes: [], runs, summary, flags,
  } as Results;
  const md = renderMarkdown(results, null);
  assert.match(md, /\| rate req\/s \| p99 ms @ rate \| p99 @ rate x seed \|/);
  // opam-edge did 5000 of the 6000 offered: the cell says so.
  assert.match(md, /\| 6000 \(did 5000\) \| 3\.0 \| 1\.50x \|/);
  assert.match(md, /\| 6000 \| 2\.0 \| 1\.00x \|/);
  assert.match(md, /\*\*p99 latency at a fixed rate/);
  assert.match(md, /\| https-1k @ 6000 req\/s \| 2\.0 \(1\.00x \/ -\) \| 3\.0 \(1\.50x \/ -\) \|/);
});

test('the estimate counts one fixed-rate run per target and scenario, none for tls-new-conn', () => {
  const base = parseOptions(['--quick', '--targets', 'origin,opam-edge', '--scenarios', 'https-1k']) as Options;
  const withNewConn = parseOptions(['--quick', '--targets', 'origin,opam-edge', '--scenarios', 'https-1k,tls-new-conn']) as Options;
  const perRun = base.warmupS + base.durationS + 0.6;
  // https-1k: 1 round + 1 fixed-rate run; tls-new-conn: 1 round only.
  assert.ok(Math.abs(estimateSeconds(withNewConn) - estimateSeconds(base) - 2 * perRun) <= 1);
  assert.ok(Math.abs(estimateSeconds(base) - (2 * 2 * perRun + 8 + 5)) <= 1);
});
