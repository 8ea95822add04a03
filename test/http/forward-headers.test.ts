import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionTokens, filterResponseHeaders, forwardRequestHeaders, responseHeaderList } from '../../src/http/forward-headers.ts';

const base = { hostHeader: 'opam.ocaml.org', clientIp: '192.0.2.7', h2: false };

function asMap(flat: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) {
    const k = flat[i]!.toLowerCase();
    m.set(k, [...(m.get(k) ?? []), flat[i + 1]!]);
  }
  return m;
}

test('hop-by-hop request headers are removed, end-to-end ones kept with their case', () => {
  const out = forwardRequestHeaders(
    ['Host', 'opam.ocaml.org', 'Connection', 'keep-alive, Upgrade', 'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Trailer', 'X-T',
      'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Connection', 'keep-alive', 'HTTP2-Settings', 'AAA', 'Accept', '*/*', 'User-Agent', 'curl/8'],
    base,
  );
  const m = asMap(out);
  for (const h of ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'http2-settings']) {
    assert.equal(m.has(h), false, h);
  }
  assert.deepEqual(out.slice(0, 4), ['Accept', '*/*', 'User-Agent', 'curl/8']);
  assert.deepEqual(m.get('host'), ['opam.ocaml.org']);
});

test('Connection: x-forwarded-for drops the client\'s header, never opam-edge\'s own', () => {
  const out = asMap(forwardRequestHeaders(['Connection', 'X-Forwarded-For, x-real-ip,Foo', 'X-Forwarded-For', '203.0.113.9', 'Foo', 'bar', 'X-Real-IP', '1.1.1.1'], base));
  assert.deepEqual(out.get('x-forwarded-for'), ['192.0.2.7']);
  assert.deepEqual(out.get('x-real-ip'), ['192.0.2.7']);
  assert.equal(out.has('foo'), false);
});

test('X-Forwarded-For is appended to (every field of) the incoming one; Proto, Host, Real-IP are ours', () => {
  const out = asMap(
    forwardRequestHeaders(
      ['X-Forwarded-For', '203.0.113.9', 'x-forwarded-for', '198.51.100.1, 10.0.0.1', 'X-Forwarded-Proto', 'http', 'X-Forwarded-Host', 'evil', 'Host', 'opam.ocaml.org:8443'],
      { ...base, hostHeader: 'opam.ocaml.org:8443' },
    ),
  );
  assert.deepEqual(out.get('x-forwarded-for'), ['203.0.113.9, 198.51.100.1, 10.0.0.1, 192.0.2.7']);
  assert.deepEqual(out.get('x-forwarded-proto'), ['https']);
  assert.deepEqual(out.get('x-forwarded-host'), ['opam.ocaml.org:8443']);
  assert.deepEqual(out.get('host'), ['opam.ocaml.org:8443']);
  assert.deepEqual(out.get('x-real-ip'), ['192.0.2.7']);
});

test('h2: pseudo-headers dropped, Host from :authority, cookies joined into one field', () => {
  const out = asMap(
    forwardRequestHeaders([':method', 'GET', ':path', '/', ':authority', 'opam.ocaml.org', ':scheme', 'https', 'cookie', 'a=1', 'cookie', 'b=2', 'te', 'trailers'], {
      ...base,
      h2: true,
    }),
  );
  assert.deepEqual([...out.keys()].filter((k) => k.startsWith(':')), []);
  assert.deepEqual(out.get('cookie'), ['a=1; b=2']);
  assert.deepEqual(out.get('host'), ['opam.ocaml.org']);
  assert.equal(out.has('te'), false);
});

test('Expect is not forwarded (opam-edge answers 100-continue itself)', () => {
  assert.equal(asMap(forwardRequestHeaders(['Expect', '100-continue'], base)).has('expect'), false);
});

test('upgrade mode keeps Upgrade and sends Connection: upgrade, still dropping named headers', () => {
  const out = asMap(forwardRequestHeaders(['Connection', 'Upgrade, X-Secret', 'Upgrade', 'websocket', 'X-Secret', 's', 'Sec-WebSocket-Key', 'k'], { ...base, upgrade: true }));
  assert.deepEqual(out.get('connection'), ['upgrade']);
  assert.deepEqual(out.get('upgrade'), ['websocket']);
  assert.equal(out.has('x-secret'), false);
  assert.deepEqual(out.get('sec-websocket-key'), ['k']);
});

test('connectionTokens trims and lower-cases', () => {
  assert.deepEqual(connectionTokens(' Keep-Alive ,\tX-Foo,, close', []), ['keep-alive', 'x-foo', 'close']);
});

test('response headers: hop-by-hop and Connection-named removed, the rest untouched', () => {
  const out = filterResponseHeaders({
    connection: 'keep-alive, x-internal',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    trailer: 'x-sum',
    upgrade: 'h2c',
    'proxy-connection': 'close',
    te: 'trailers',
    'x-internal': 'secret',
    'set-cookie': ['a=1', 'b=2'],
    'content-type': 'text/plain',
  });
  assert.deepEqual(out, { 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain' });
});

test('response header list (HTTP/1.1 writeHead): hop-by-hop and Connection-named removed, HSTS replaced, repeated fields kept', () => {
  const headers = {
    connection: 'keep-alive, x-internal',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    'proxy-connection': 'close',
    'x-internal': 'secret',
    'strict-transport-security': 'max-age=1',
    'set-cookie': ['a=1', 'b=2'],
    'content-type': 'text/plain',
  };
  assert.deepEqual(responseHeaderList(headers, 'max-age=63072000'), [
    'set-cookie', ['a=1', 'b=2'], 'content-type', 'text/plain', 'strict-transport-security', 'max-age=63072000',
  ]);
  // Without an HSTS policy the upstream's passes as it is.
  assert.deepEqual(responseHeaderList({ 'strict-transport-security': 'max-age=1', connection: 'close' }, null), ['strict-transport-security', 'max-age=1']);
});
