// Micro-benchmark of the per-request site lookup (http/route.ts over host-name.ts): an exact
// hit, a wildcard hit and a miss. Prints ns per call; asserts nothing.
//   node bench/micro/host-lookup.bench.ts

import { buildRoutes } from '../../src/http/route.ts';

const sites = [
  { hosts: ['opam.ocaml.org', 'opam-4.ocaml.org', 'opam-5.ocaml.org'] },
  { hosts: ['*.example.org', 'staging.ocaml.org'] },
  { hosts: ['[::1]', '127.0.0.1'] },
];
const routes = buildRoutes(sites, (_site, index) => index);

function bench(name: string, host: string, iterations = 5_000_000): void {
  let sink = 0;
  for (let i = 0; i < 50_000; i++) sink += routes.lookup(host) ?? 1;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += routes.lookup(host) ?? 1;
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  console.log(`${name.padEnd(28)} ${ns.toFixed(1).padStart(6)} ns/op${sink < 0 ? '!' : ''}`);
}

bench('exact hit', 'opam.ocaml.org');
bench('wildcard hit', 'www.example.org');
bench('miss (two labels deep)', 'a.b.example.org');
bench('miss (IPv4 literal)', '10.0.0.1');
