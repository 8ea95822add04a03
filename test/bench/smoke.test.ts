// The bench starts, runs one short scenario (origin + nginx-best, plain HTTP, 1 KiB, 1 s) and
// writes a valid result file. Speed is not checked: only that the harness works end to end
// and stops its servers. Needs nginx: skips loudly without it, fails under CI.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findTools } from '../../bench/lib/tools.ts';
import { SCHEMA } from '../../bench/report/results.ts';
import type { Results } from '../../bench/report/results.ts';

const RUN = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
const LIMIT_MS = 90_000;

test('bench: one short scenario writes a valid result file and stops its servers', { timeout: LIMIT_MS + 15_000 }, async (t) => {
  if (!findTools().nginx) {
    const message = 'nginx is not installed (apt-get install nginx-light): the bench smoke test cannot run';
    if (process.env.CI) assert.fail(message);
    process.stderr.write(`\n*** SKIPPED: ${message} ***\n\n`);
    t.skip(message);
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'opam-edge-bench-smoke-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));

  const child = spawn(
    process.execPath,
    [RUN, '--targets', 'origin,nginx-best', '--scenarios', 'http-1k', '--rounds', '1', '--duration', '1', '--warmup', '0', '--workers', '1', '--no-install', '--out', out],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  // SIGTERM lets the bench stop its servers; SIGKILL only if it does not.
  const term = setTimeout(() => child.kill('SIGTERM'), LIMIT_MS);
  const kill = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS + 10_000);
  t.after(() => {
    clearTimeout(term);
    clearTimeout(kill);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0, `bench exited with ${code}:\n${output}`);

  const files = readdirSync(out);
  const stamp = files.find((f) => /^\d{4}-\d{2}-\d{2}-\d{4}\.json$/.test(f));
  assert.ok(stamp, `no <date>.json in ${files.join(', ')}`);
  for (const f of ['latest.json', 'latest.md', 'latest.svg', stamp.replace('.json', '.md'), stamp.replace('.json', '.svg')]) {
    assert.ok(existsSync(join(out, f)), `${f} is missing`);
  }

  const results = JSON.parse(readFileSync(join(out, stamp), 'utf8')) as Results;
  assert.equal(results.schema, SCHEMA);
  assert.deepEqual(results.options.targets, ['origin', 'nginx-best']);
  assert.equal(results.runs.filter((r) => r.phase !== 'fixed-rate').length, 2);
  // No nginx-seed in this run, so no rate to offer: the fixed-rate runs say why instead.
  const fixed = results.runs.filter((r) => r.phase === 'fixed-rate');
  assert.equal(fixed.length, 2);
  for (const r of fixed) assert.match(`${r.status}: ${r.reason}`, /^not-available: nginx-seed was not measured/);
  for (const target of ['origin', 'nginx-best'] as const) {
    const row = results.summary.find((s) => s.target === target && s.scenario === 'http-1k');
    assert.ok(row, `no summary row for ${target}`);
    assert.equal(row.status, 'ok', `${target}: ${row.reason}`);
    assert.equal(typeof row.rps, 'number');
    assert.equal(typeof row.p99_ms, 'number');
    const run = results.runs.find((r) => r.target === target)!;
    assert.ok((run.requests ?? 0) > 0, `${target} completed no request`);
  }
  const best = results.summary.find((s) => s.target === 'nginx-best')!;
  assert.equal(best.vs_best?.rps, 1, 'nginx-best is its own reference');

  const markdown = readFileSync(join(out, 'latest.md'), 'utf8');
  // CPU per request is the headline figure of every row (issue 16).
  assert.match(markdown, /\| scenario \| target \| CPU us\/req \| CPU x seed \| CPU x best \| req\/s \|/);
  assert.match(markdown, /!\[.*\]\(latest\.svg\)/);
  const svg = readFileSync(join(out, 'latest.svg'), 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);

  // Nothing left behind: the work directory is gone and no process still runs from it.
  const work = /working in (\S+)/.exec(output)?.[1];
  assert.ok(work, 'the bench did not say where it worked');
  assert.ok(!existsSync(work), `${work} was not removed`);
  const survivors = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(work);
      } catch {
        return false;
      }
    });
  assert.deepEqual(survivors, [], `processes of the run still running: ${survivors.join(', ')}`);
});
