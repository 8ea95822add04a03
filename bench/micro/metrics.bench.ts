// Micro-benchmark of what recording metrics adds to each request: the gateway's onRequest
// hook (site cells, code class, histogram bucket, upstream error kind), the handshake hook,
// and, for comparison, prom-client's own labelled counter + histogram, which hash their
// labels on every call. Also one scrape of a process with a few sites. Prints ns per call;
// asserts nothing (speed is never a pass/fail criterion here).
//   node bench/micro/metrics.bench.ts

import { Counter, Histogram, Registry } from 'prom-client';
import { EdgeMetrics } from '../../src/admin/metrics.ts';
import type { RequestMetrics } from '../../src/http/gateway.ts';

function bench(name: string, fn: (i: number) => void, iterations = 2_000_000): void {
  for (let i = 0; i < 50_000; i++) fn(i);
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  console.log(`${name.padEnd(52)} ${ns.toFixed(1).padStart(7)} ns/op`);
}

const sites = ['opam.ocaml.org', 'opam-4.ocaml.org', 'staging.opam.ocaml.org'];
// What the gateway hands over: mostly 200s, some 304/404, a few upstream failures.
const samples: RequestMetrics[] = [];
for (let i = 0; i < 1024; i++) {
  const status = i % 97 === 0 ? 502 : i % 13 === 0 ? 404 : i % 7 === 0 ? 304 : 200;
  samples.push({
    site: sites[i % sites.length]!,
    status,
    proto: i % 3 === 0 ? 'h2' : 'http/1.1',
    durationMs: i % 50,
    error: status === 502 ? 'UPSTREAM_REFUSED' : null,
  });
}

const metrics = new EdgeMetrics({ role: 'node' });
bench('EdgeMetrics.request (the onRequest hook)', (i) => metrics.request(samples[i & 1023]!));
bench('EdgeMetrics.handshake', (i) => metrics.handshake((i & 7) === 0));
bench('  baseline: the loop and a call that does nothing', (i) => noop(samples[i & 1023]!));

const registry = new Registry();
const counter = new Counter({ name: 'c_total', help: 'h', labelNames: ['site', 'code_class', 'proto'], registers: [registry] });
const histogram = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['site'], registers: [registry] });
const CLASSES = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'];
bench('prom-client: counter.inc + histogram.observe (labels)', (i) => {
  const m = samples[i & 1023]!;
  counter.inc({ site: m.site!, code_class: CLASSES[(m.status / 100) | 0]!, proto: m.proto });
  histogram.observe({ site: m.site! }, m.durationMs / 1000);
}, 500_000);

const scrapeStart = process.hrtime.bigint();
let length = 0;
for (let i = 0; i < 50; i++) length = (await metrics.text()).length;
console.log(`${'one scrape (text, 3 sites + process metrics)'.padEnd(52)} ${(Number(process.hrtime.bigint() - scrapeStart) / 50 / 1000).toFixed(0).padStart(7)} us (${length} bytes)`);

function noop(_m: RequestMetrics): void {}
