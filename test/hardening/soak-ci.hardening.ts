// The soak in short (60 s), so that CI runs it: the same traffic, certificate swaps and DNS
// changes as `npm run soak` (test/hardening/lib/soak.ts), with every limit asserted.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireTool } from '../helpers/tools.ts';
import { runSoak, soakRows } from './lib/soak.ts';
import { recordFigures } from './lib/figures.ts';
import { mib } from './lib/process-stats.ts';

test('soak (60 s): mixed TLS traffic with certificate swaps and DNS changes', { timeout: 240_000 }, async (t) => {
  if (!requireTool(t, 'pebble-challtestsrv', 'pebble')) return;
  const r = await runSoak({ durationMs: 60_000, warmupMs: 20_000, certEveryMs: 20_000, dnsEveryMs: 10_000, progress: (line) => t.diagnostic(line) });
  recordFigures('soak-ci', { title: 'Soak, short (60 s, in CI)', by: 'npm run test:hardening (soak-ci.hardening.ts)', rows: soakRows(r, 1), notes: [...r.errors.slice(0, 5), ...r.leftover.slice(0, 10).map((l) => `still open after the traffic: \`${l}\``)] });
  assert.equal(r.unexpected, 0, r.errors.join('\n'));
  assert.ok(r.requests > 100);
  assert.equal(r.certSwapsSeen, r.certSwaps, 'every new certificate was served');
  assert.ok(r.certSwaps >= 2 && r.dnsChanges >= 4);
  assert.ok(r.rssGrowth < 0.1, `RSS ${mib(r.warm.rss)} → ${mib(r.end.rss)} MiB`);
  // The 10-minute soak requires the exact baseline; in this short run a few connections of
  // the test's own clients may still be closing (the figures say which).
  assert.ok(r.after.fds <= r.start.fds + 8, `fds ${r.start.fds} → ${r.after.fds}: ${r.leftover.join(' | ')}`);
});
