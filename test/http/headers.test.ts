import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientAddress, hostFieldCount, hostWithoutPort, requestId } from '../../src/http/headers.ts';

test('Host -> $host: lower-cased, port and trailing dot removed, IPv6 brackets kept', () => {
  const cases: [string, string][] = [
    ['opam.ocaml.org', 'opam.ocaml.org'],
    ['OPAM.Ocaml.ORG', 'opam.ocaml.org'],
    ['Opam.ocaml.org:8080', 'opam.ocaml.org'],
    ['opam.ocaml.org.', 'opam.ocaml.org'],
    ['opam.ocaml.org.:80', 'opam.ocaml.org'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]', '[::1]'],
    ['[::1]:8443', '[::1]'],
    ['[2001:DB8::1]:80', '[2001:db8::1]'],
    ['[::ffff:192.0.2.1]', '[::ffff:192.0.2.1]'],
    ['under_score.test', 'under_score.test'],
    ['localhost', 'localhost'],
  ];
  for (const [input, expected] of cases) assert.equal(hostWithoutPort(input), expected, input);
});

test('a missing, empty or malformed Host is refused (null)', () => {
  const bad = [
    undefined,
    '',
    ':80',
    '.',
    '.a.test',
    'a..test',
    'a b',
    'a/b',
    'a\\b',
    'a@b',
    'a%2eb',
    'a:',
    'a:80:80',
    'a:99999',
    'a:8o',
    'a:123456',
    '[::1',
    '[::1]x',
    '[::1]:',
    '[:::::]',
    '[zz::1]',
    '[]',
    'a\x00b',
    'ä.test',
    'a'.repeat(261),
  ];
  for (const value of bad) assert.equal(hostWithoutPort(value), null, JSON.stringify(value));
});

test('Host fields are counted across raw headers, whatever their case', () => {
  assert.equal(hostFieldCount(['Host', 'a', 'Accept', '*/*']), 1);
  assert.equal(hostFieldCount(['host', 'a', 'HOST', 'b']), 2);
  assert.equal(hostFieldCount(['X-Host', 'a', 'Hosts', 'b']), 0);
});

test('client addresses: IPv4-mapped IPv6 is written as plain IPv4', () => {
  assert.equal(clientAddress('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(clientAddress('192.0.2.1'), '192.0.2.1');
  assert.equal(clientAddress('::1'), '::1');
  assert.equal(clientAddress('::ffff:1'), '::ffff:1');
  assert.equal(clientAddress(undefined), '-');
});

test('request ids are unique and share a per-process prefix', () => {
  const a = requestId();
  const b = requestId();
  assert.notEqual(a, b);
  assert.match(a, /^[0-9a-f]{20}$/);
  assert.equal(a.slice(0, 12), b.slice(0, 12));
});
