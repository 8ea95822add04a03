// Micro-benchmark of the per-request header work of the proxy. Prints ns per call; asserts
// nothing (speed is never a pass/fail criterion here).
//   node bench/micro/forward-headers.bench.ts

import { filterResponseHeaders, forwardRequestHeaders } from '../../src/http/forward-headers.ts';

const browser = [
  'Host', 'opam.ocaml.org',
  'User-Agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  'Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'Accept-Language', 'en-GB,en;q=0.5',
  'Accept-Encoding', 'gzip, deflate, br, zstd',
  'Connection', 'keep-alive',
  'Cookie', 'a=1; b=2',
  'Upgrade-Insecure-Requests', '1',
  'Sec-Fetch-Dest', 'document',
  'Sec-Fetch-Mode', 'navigate',
  'If-None-Match', '"5e1-62a0c1b2"',
];
const opamClient = ['Host', 'opam.ocaml.org', 'User-Agent', 'opam/2.3.0', 'Accept', '*/*'];
const h2 = [':method', 'GET', ':path', '/index.tar.gz', ':authority', 'opam.ocaml.org', ':scheme', 'https', 'user-agent', 'curl/8.5.0', 'accept', '*/*'];
const hostile = ['Host', 'opam.ocaml.org', 'Connection', 'x-forwarded-for, x-real-ip, keep-alive', 'X-Forwarded-For', '203.0.113.1', 'X-Real-IP', '1.1.1.1', 'Keep-Alive', '300'];

function bench(name: string, fn: () => unknown, iterations = 500_000): void {
  for (let i = 0; i < 20_000; i++) fn();
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += (fn() as unknown[]).length ?? 1;
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  console.log(`${name.padEnd(42)} ${ns.toFixed(0).padStart(6)} ns/op${sink < 0 ? '!' : ''}`);
}

const options = { hostHeader: 'opam.ocaml.org', clientIp: '192.0.2.7', h2: false };
bench('forwardRequestHeaders: opam client (3)', () => forwardRequestHeaders(opamClient, options));
bench('forwardRequestHeaders: browser (12)', () => forwardRequestHeaders(browser, options));
bench('forwardRequestHeaders: h2 curl', () => forwardRequestHeaders(h2, { ...options, h2: true }));
bench('forwardRequestHeaders: hostile Connection', () => forwardRequestHeaders(hostile, options));
// Built key by key, as undici's parser builds the object it hands to onResponseStart.
const typicalResponse: [string, string][] = [
  ['content-type', 'application/gzip'],
  ['content-length', '1234'],
  ['date', 'Thu, 26 Nov 2026 09:00:00 GMT'],
  ['etag', '"abc"'],
  ['last-modified', 'Thu, 26 Nov 2026 08:00:00 GMT'],
  ['connection', 'keep-alive'],
  ['keep-alive', 'timeout=5'],
];
bench('filterResponseHeaders: typical (parse + filter)', () => {
  const headers: Record<string, string> = {};
  for (const [k, v] of typicalResponse) headers[k] = v;
  return Object.keys(filterResponseHeaders(headers));
});
bench('  baseline: parse only', () => {
  const headers: Record<string, string> = {};
  for (const [k, v] of typicalResponse) headers[k] = v;
  return Object.keys(headers);
});
