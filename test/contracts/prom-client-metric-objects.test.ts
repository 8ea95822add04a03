// src/admin/metrics.ts registers plain objects ({ name, help, type, aggregator, get, reset }) as
// metrics: prom-client's Registry and AggregatorRegistry only read those fields today, but
// its typings want its own classes, so this is an internal contract.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Metric } from 'prom-client';
import { assertPinned } from './pinned.ts';

const RELIES = 'src/admin/metrics.ts relies on it';

test('prom-client is pinned exactly (it is handed metric objects of our own)', () => {
  assertPinned('prom-client', `plain metric objects: ${RELIES}`);
});

test('prom-client internal: a plain { name, help, type, aggregator, get } object is a metric', async () => {
  const registry = new Registry();
  const metric = {
    name: 'contract_total', help: 'A plain object.', type: 'counter', aggregator: 'sum',
    get: async () => ({ name: 'contract_total', help: 'A plain object.', type: 'counter', aggregator: 'sum', values: [{ labels: { site: 'a' }, value: 3 }] }),
    reset() {},
  };
  registry.registerMetric(metric as unknown as Metric);
  const text = await registry.metrics();
  assert.match(text, /^contract_total\{site="a"\} 3$/m, `prom-client internal \`Registry\` no longer formats plain metric objects: ${RELIES}`);
  const json = await registry.getMetricsAsJSON();
  const aggregated = await AggregatorRegistry.aggregate([json, json]).metrics();
  assert.match(aggregated, /^contract_total\{site="a"\} 6$/m, `prom-client internal \`AggregatorRegistry.aggregate\` no longer sums plain metric objects: ${RELIES}`);
});
