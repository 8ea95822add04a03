import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../src/config.ts';

const minimal = `sites:\n  - hosts: ["opam.ocaml.org"]\n    upstream: "http://opam_live:80"\n`;

test('a minimal config gets every default of SPEC section 2', () => {
  const result = parseConfig(minimal, 'test.yaml');
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  const c = result.config;
  assert.deepEqual(c.listen.http.map((l) => l.text), ['[::]:80']);
  assert.deepEqual(c.listen.https.map((l) => l.text), ['[::]:443']);
  assert.equal(c.workers, 1);
  assert.equal(c.resolver.valid, 15_000);
  assert.equal(c.limits.max_header_size, 16 * 1024);
  assert.equal(c.limits.idle_timeout, 75_000);
  assert.equal(c.tls.unknown_sni, 'reject');
  assert.equal(c.sites[0]!.upstream.host, 'opam_live');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.sites[0]));
});

test('every problem is reported with its key path and line', () => {
  const text = `listen:\n  http: ["[::]:99999"]\nresolver:\n  valid: soon\nbogus: 1\nsites:\n  - hosts: ["a.test"]\n    upstream: "ftp://x"\n  - hosts: ["a.test"]\n    upstream: "http://b"\n`;
  const result = parseConfig(text, 'test.yaml');
  assert.equal(result.ok, false);
  const errors = !result.ok ? result.errors : [];
  assert.ok(errors.some((e) => e.startsWith('listen.http[0] (line 2): port 99999 is out of range')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('resolver.valid (line 4): invalid duration')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('bogus (line 5): unknown key')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('sites[0].upstream (line 8)')), errors.join('\n'));
});
