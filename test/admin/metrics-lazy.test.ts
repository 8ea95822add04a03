// prom-client is loaded by the first EdgeMetrics only: a process without `admin` never loads
// it (idle RSS of dist/cli.js without admin: 88.2 -> 87.0 MiB, bench/README.md).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const METRICS = fileURLToPath(new URL('../../src/admin/metrics.ts', import.meta.url));

test('metrics.ts loads prom-client on the first EdgeMetrics, not on import', () => {
  const script = `
    import { createRequire } from 'node:module';
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/prom-client/'));
    const { EdgeMetrics } = await import(${JSON.stringify(METRICS)});
    const before = loaded();
    new EdgeMetrics({ role: 'worker' });
    console.log(JSON.stringify({ before, after: loaded() }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), { before: false, after: true });
});

test('CONTENT_TYPE is prom-client\'s own', async () => {
  const { CONTENT_TYPE } = await import('../../src/admin/metrics.ts');
  const { Registry } = await import('prom-client');
  assert.equal(CONTENT_TYPE, Registry.PROMETHEUS_CONTENT_TYPE);
});
