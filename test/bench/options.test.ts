// Where the bench writes: dated runs beside the committed results, the copy of the last run
// in the git-ignored reports/ folder (every run rewrites it), both in one folder with --out.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LATEST, DEFAULT_OUT, parseOptions } from '../../bench/lib/options.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('by default dated results go to bench/results/ and latest.* to reports/bench/', () => {
  const options = parseOptions([]);
  assert.ok(!('error' in options) && !('help' in options));
  assert.equal(options.out, DEFAULT_OUT);
  assert.equal(DEFAULT_OUT, `${ROOT}bench/results/`);
  assert.equal(options.latest, `${ROOT}reports/bench/`);
  assert.equal(DEFAULT_LATEST, options.latest);
});

test('--out DIR puts the dated results and latest.* in DIR', () => {
  const options = parseOptions(['--out', '/tmp/bench-out']);
  assert.ok(!('error' in options) && !('help' in options));
  assert.equal(options.out, '/tmp/bench-out');
  assert.equal(options.latest, '/tmp/bench-out');
});
