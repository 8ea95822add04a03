import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { HostMap, covers, isHostName, isHostPattern, isIpLiteral, normalizeHostName } from '../src/host-name.ts';
import { buildRoutes } from '../src/http/route.ts';
import { CertStore } from '../src/tls/cert-store.ts';
import { validateConfig } from '../src/config.ts';
import { bestCertificate } from '../src/acme/renewer.ts';
import { makeCert } from './helpers/certs.ts';
import { tempDir } from './helpers/edge-process.ts';

// [pattern, name, covered]: the one rule, as RFC 6125 6.4.3, nginx and Caddy have it.
const RULE: readonly (readonly [string, string, boolean])[] = [
  ['opam.ocaml.org', 'opam.ocaml.org', true],
  ['opam.ocaml.org', 'www.opam.ocaml.org', false],
  ['*.example.org', 'a.example.org', true],
  ['*.example.org', 'a-b_c.example.org', true],
  ['*.example.org', 'example.org', false], // not the bare parent
  ['*.example.org', 'a.b.example.org', false], // not two labels deep
  ['*.example.org', '.example.org', false],
  ['*.example.org', 'aexample.org', false],
  ['*.example.org', 'a.example.org.evil', false],
  ['*.Example.ORG', 'A.example.org', true], // case
  ['*.example.org', 'a.example.org.', true], // trailing dot
  ['opam.ocaml.org.', 'OPAM.ocaml.org', true],
  ['127.0.0.1', '127.0.0.1', true],
  ['[::1]', '[::1]', true],
  ['*.0.0.1', '10.0.0.1', false], // an IP literal is never covered by a wildcard
  ['*.2.3.4]', '[::ffff:1.2.3.4]', false],
];

test('covers: exact, one label, not two, not the parent, case, trailing dot, IP literals', () => {
  for (const [pattern, name, expected] of RULE) assert.equal(covers(pattern, name), expected, `${pattern} covers ${name}`);
});

test('HostMap.lookup agrees with covers on normalised names, in two Map gets', () => {
  for (const [pattern, name, expected] of RULE) {
    const map = new HostMap<string>();
    map.set(normalizeHostName(pattern), pattern);
    assert.equal(map.lookup(normalizeHostName(name)) === pattern, expected, `${pattern} -> ${name}`);
  }
  const map = new HostMap<number>();
  assert.ok(map.set('*.example.org', 1));
  assert.ok(map.set('exact.example.org', 2));
  assert.equal(map.set('*.0.0.1', 3), false, 'a wildcard that could only meet an IPv4 literal is not stored');
  assert.equal(map.lookup('exact.example.org'), 2, 'an exact name beats the wildcard');
  assert.equal(map.lookup('other.example.org'), 1);
  assert.equal(map.get('*.example.org'), 1);
  assert.equal(map.get('example.org'), null);
  assert.equal(map.lookup('a.b.example.org'), null);
  assert.equal(map.size, 2);
});

test('normalise: lower-case, one trailing dot removed', () => {
  assert.equal(normalizeHostName('OPAM.ocaml.org.'), 'opam.ocaml.org');
  assert.equal(normalizeHostName('*.Example.org'), '*.example.org');
  assert.equal(normalizeHostName('[::1]'), '[::1]');
  assert.equal(normalizeHostName('.'), '.');
});

test('host names and host patterns', () => {
  for (const ok of ['opam.ocaml.org', 'OPAM.ocaml.org', 'localhost', '127.0.0.1', '[::1]', 'a_b.test', 'x-1.y']) assert.ok(isHostName(ok), ok);
  for (const bad of ['', 'a..b', '.a', 'a.', '-a.b', 'a-.b', 'a b', 'a/b', '[:::::]', '[::1', `${'a'.repeat(64)}.b`, '*.a.b']) {
    assert.equal(isHostName(bad), false, bad);
  }
  assert.ok(isHostPattern('*.example.org'));
  assert.ok(isHostPattern('*.org'));
  for (const bad of ['*example.org', 'a.*.org', '*', '*.', '*.*.org', '*.[::1]', '*.0.0.1', '*.1']) assert.equal(isHostPattern(bad), false, bad);
  assert.ok(isIpLiteral('10.0.0.1') && isIpLiteral('[::1]'));
  assert.equal(isIpLiteral('::1'), false, 'a Host header brackets IPv6');
  assert.equal(isIpLiteral('a.test'), false);
});

// The bug of issue 15: `check` took "*.example.org" to cover "a.b.example.org" while the
// router and the TLS store did not. One table now goes through all four users of the rule.
test('config, routing, TLS and the ACME renewer agree on which names "*.example.org" covers', async (t) => {
  const dir = tempDir('opam-edge-host-name-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const wild = await makeCert({ names: ['*.example.org'], dir });
  const store = new CertStore({ unknownSni: 'reject' });
  store.setSource('file', 'file', [{ cert: wild.cert, key: wild.key, origin: wild.certPath }]);
  const routes = buildRoutes([{ hosts: ['*.example.org'] }], () => 'site');
  const table: readonly (readonly [string, boolean])[] = [
    ['a.example.org', true],
    ['www.example.org', true],
    ['example.org', false],
    ['a.b.example.org', false],
    ['x.y.z.example.org', false],
    ['a.example.com', false],
  ];
  for (const [name, expected] of table) {
    const routed = routes.lookup(name) !== null;
    const served = store.select(name) !== store.emptyContext;
    const renewerSees = bestCertificate(store.certificates(), name, Date.now()) !== null;
    const config = validateConfig({ acme: { names: [name] }, sites: [{ hosts: ['*.example.org'], upstream: 'http://a' }] }, 't');
    assert.deepEqual(
      { name, routed, served, renewerSees, accepted: config.ok },
      { name, routed: expected, served: expected, renewerSees: expected, accepted: expected },
    );
  }
});
