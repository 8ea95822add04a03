// tuneHeap() changes how far V8 lets the old generation grow, at run time, and leaves an
// operator's own --heap-growing-percent alone. Observed from the peak heap of a child that
// keeps a steady live set and churns garbage.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HEAP_TS = fileURLToPath(new URL('../src/heap.ts', import.meta.url));

const CHURN = `
  if (process.env.TUNE) (await import(${JSON.stringify(HEAP_TS)})).tuneHeap();
  const live = [];
  for (let i = 0; i < 200000; i++) live.push({ i, s: 'k' + i });
  let max = 0;
  for (let round = 0; round < 300; round++) {
    const junk = [];
    for (let i = 0; i < 20000; i++) junk.push({ a: i, b: [i, i] });
    live[round % live.length] = junk.length;
    max = Math.max(max, process.memoryUsage().heapTotal);
  }
  process.stdout.write(String(max));
`;

function peakHeap(flags: string[], tune: boolean): number {
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', CHURN], {
    encoding: 'utf8',
    env: { ...process.env, TUNE: tune ? '1' : '' },
  });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

test('tuneHeap: the old generation grows less before a full collection; an explicit node flag wins', () => {
  const flags = ['--max-semi-space-size=2'];
  const v8Default = peakHeap(flags, false);
  const tuned = peakHeap(flags, true);
  const operators = peakHeap([...flags, '--heap-growing-percent=20'], true);
  assert.ok(tuned < v8Default * 0.8, `peak heap tuned ${tuned} vs V8's default ${v8Default}`);
  assert.ok(operators < tuned * 0.85, `the operator's 20 % (${operators}) was overridden (tuned: ${tuned})`);
});
