// docs/behaviour.md, "Limits and bad input", on port 80: what a client gets for each kind of
// bad input. The answer comes from
// node:http's parser (llhttp, strict) through onClientError, or from checkRequest once a
// request was parsed; this file pins the result, whichever of the two gives it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { checkRequest } from '../../src/http/request-checks.ts';
import { get, startEdge } from '../helpers/edge-in-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';

function fake(over: Partial<Record<keyof IncomingMessage, unknown>> & { rawHeaders?: string[] }): IncomingMessage {
  const rawHeaders = over.rawHeaders ?? ['Host', 'opam.test'];
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i]!.toLowerCase()] ??= rawHeaders[i + 1]!;
  return { httpVersionMajor: 1, httpVersionMinor: 1, url: '/', headers, rawHeaders, ...over } as unknown as IncomingMessage;
}

test('checkRequest: origin-form and absolute-form targets, $host and the Host to send on', () => {
  assert.deepEqual(checkRequest(fake({ url: '/p?q', rawHeaders: ['Host', 'Opam.Test:8080'] })), {
    host: 'opam.test',
    hostHeader: 'Opam.Test:8080',
    path: '/p?q',
  });
  assert.deepEqual(checkRequest(fake({ url: 'http://Other.Test:81/p?q' })), { host: 'other.test', hostHeader: 'Other.Test:81', path: '/p?q' });
  assert.deepEqual(checkRequest(fake({ url: 'HTTPS://other.test' })), { host: 'other.test', hostHeader: 'other.test', path: '/' });
  assert.deepEqual(checkRequest(fake({ url: 'http://other.test?x' })), { host: 'other.test', hostHeader: 'other.test', path: '/?x' });
  // The authority replaces the Host header (RFC 9112 3.2.2), which must still be valid (3.2).
  assert.deepEqual(checkRequest(fake({ url: 'http://a.test/', rawHeaders: [] })), { error: 'BAD_HOST' });
  assert.deepEqual(checkRequest(fake({ url: 'http://a.test/', rawHeaders: ['Host', 'a b'] })), { error: 'BAD_HOST' });
});

test('checkRequest: the catalogue code for each refusal', () => {
  const code = (req: IncomingMessage) => ('error' in checkRequest(req) ? (checkRequest(req) as { error: string }).error : 'ok');
  assert.equal(code(fake({ rawHeaders: [] })), 'BAD_HOST');
  assert.equal(code(fake({ rawHeaders: ['Host', ''] })), 'BAD_HOST');
  assert.equal(code(fake({ rawHeaders: ['Host', 'a.test', 'host', 'a.test'] })), 'BAD_HOST');
  assert.equal(code(fake({ rawHeaders: ['Host', 'a_b c'] })), 'BAD_HOST');
  assert.equal(code(fake({ url: 'http://u@a.test/' })), 'BAD_HOST');
  assert.equal(code(fake({ url: 'http:///p' })), 'BAD_HOST');
  assert.equal(code(fake({ url: '*' })), 'BAD_REQUEST');
  assert.equal(code(fake({ url: 'ftp://a.test/' })), 'BAD_REQUEST');
  assert.equal(code(fake({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'gzip'] })), 'UNSUPPORTED_TRANSFER_ENCODING');
  assert.equal(code(fake({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'gzip, chunked'] })), 'UNSUPPORTED_TRANSFER_ENCODING');
  assert.equal(code(fake({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'Chunked'] })), 'ok');
  assert.equal(code(fake({ httpVersionMinor: 0, rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked'] })), 'BAD_FRAMING');
  assert.equal(code(fake({ httpVersionMajor: 0, httpVersionMinor: 9 })), 'HTTP_09');
  assert.equal(code(fake({ httpVersionMajor: 2, httpVersionMinor: 0 })), 'HTTP_VERSION_NOT_SUPPORTED');
  // An HTTP/2 request (it has a stream) takes :authority; HTTP/1 framing rules do not apply.
  const h2 = { httpVersionMajor: 2, httpVersionMinor: 0, url: '/x', stream: {}, headers: { ':authority': 'A.test:443' }, rawHeaders: [] };
  assert.deepEqual(checkRequest(h2 as unknown as IncomingMessage), { host: 'a.test', hostHeader: 'A.test:443', path: '/x' });
});

// [name, bytes, expected status or 'closed' (no answer at all)]
const ROWS: [string, string, number | 'closed'][] = [
  ['malformed request line (extra word)', 'GET / HTTP/1.1 x\r\nHost: opam.test\r\n\r\n', 400],
  ['malformed request line (space in target)', 'GET /a b HTTP/1.1\r\nHost: opam.test\r\n\r\n', 400],
  ['malformed request line (lower-case version)', 'GET / http/1.1\r\nHost: opam.test\r\n\r\n', 400],
  ['malformed method', 'G@T / HTTP/1.1\r\nHost: opam.test\r\n\r\n', 400],
  ['bare LF line ends', 'GET / HTTP/1.1\nHost: opam.test\n\n', 400],
  ['bare LF inside the headers', 'GET / HTTP/1.1\r\nHost: opam.test\nX: y\r\n\r\n', 400],
  ['bare CR', 'GET / HTTP/1.1\rHost: opam.test\r\r', 400],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: b\r\n  c\r\n\r\n', 400],
  ['space before colon', 'GET / HTTP/1.1\r\nHost: opam.test\r\nX-A : b\r\n\r\n', 400],
  ['space before colon in Host', 'GET / HTTP/1.1\r\nHost : opam.test\r\n\r\n', 400],
  ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: a\x00b\r\n\r\n', 400],
  ['NUL in the target', 'GET /a\x00b HTTP/1.1\r\nHost: opam.test\r\n\r\n', 400],
  ['control byte in a header value', 'GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: a\x01b\r\n\r\n', 400],
  ['header line without colon', 'GET / HTTP/1.1\r\nHost: opam.test\r\nXYZ\r\n\r\n', 400],
  ['Content-Length then Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['Transfer-Encoding then Content-Length', 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n', 400],
  ['duplicate differing Content-Length', 'POST / HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400],
  ['Content-Length list', 'POST / HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 3, 4\r\n\r\nabcd', 400],
  ['negative Content-Length', 'POST / HTTP/1.1\r\nHost: opam.test\r\nContent-Length: -1\r\n\r\n', 400],
  ['Transfer-Encoding gzip', 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
  ['Transfer-Encoding identity', 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: identity\r\n\r\n', 501],
  ['Transfer-Encoding gzip, chunked', 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501],
  ['Transfer-Encoding chunked twice', 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 501],
  ['Transfer-Encoding on HTTP/1.0', 'POST / HTTP/1.0\r\nHost: opam.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: opam.test\r\n\r\n', 505],
  ['HTTP/2.0 in an HTTP/1 request line', 'GET / HTTP/2.0\r\nHost: opam.test\r\n\r\n', 505],
  ['HTTP/2 preface on the plain port', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
  ['HTTP/0.9 request line followed by headers', 'GET /\r\nHost: opam.test\r\n\r\n', 'closed'],
  ['CONNECT', 'CONNECT opam.test:443 HTTP/1.1\r\nHost: opam.test:443\r\n\r\n', 405],
  ['asterisk-form', 'OPTIONS * HTTP/1.1\r\nHost: opam.test\r\n\r\n', 400],
];

test('limits-table rows on port 80: each bad request gets its answer and the connection is closed', async (t) => {
  const node = await startEdge(t);
  for (const [name, payload, expected] of ROWS) {
    const res = await rawRequest(node.port, payload, { quietMs: 3000 });
    assert.ok(res.closed, `${name}: the connection stayed open`);
    if (expected === 'closed') {
      assert.equal(res.text, '', `${name}: expected no answer, got ${JSON.stringify(res.text)}`);
    } else {
      assert.equal(res.status, expected, `${name}: ${JSON.stringify(res.text.split('\r\n')[0])}`);
      assert.match(res.text, /\r\nconnection: close\r\n/i, name);
      // One answer only: nothing after the first response (no second status line).
      assert.equal(res.text.match(/HTTP\/1\.1 \d{3}/g)!.length, 1, name);
    }
  }
  assert.equal((await get(node.port, '/')).status, 301, 'still serving');
});

test('a header block over max_header_size is 431', async (t) => {
  const node = await startEdge(t, { limits: { max_header_size: '4k' } });
  const fits = await rawRequest(node.port, `GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: ${'a'.repeat(3000)}\r\n\r\n`, { quietMs: 300 });
  assert.equal(fits.status, 301);
  for (const payload of [
    `GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: ${'a'.repeat(5000)}\r\n\r\n`,
    `GET / HTTP/1.1\r\nHost: opam.test\r\n${Array.from({ length: 100 }, (_, i) => `X-${i}: ${'b'.repeat(50)}\r\n`).join('')}\r\n`,
    `GET /${'c'.repeat(5000)} HTTP/1.1\r\nHost: opam.test\r\n\r\n`,
  ]) {
    const res = await rawRequest(node.port, payload, { quietMs: 3000 });
    assert.equal(res.status, 431);
    assert.ok(res.closed);
  }
});

test('headers not complete within header_timeout: 408 and closed within about a second of the limit', async (t) => {
  const node = await startEdge(t, { limits: { header_timeout: '1s' } });
  // Half the headers, then silence; a second client trickles bytes (slowloris).
  const [half, trickle] = await Promise.all([
    rawRequest(node.port, 'GET / HTTP/1.1\r\nHost: opam.test\r\n', { quietMs: 5000 }),
    rawRequest(node.port, ['GET / HTTP/1.1\r\n', 'Host: opam.test\r\n', 'X-A: 1\r\n', 'X-B: 2\r\n', 'X-C: 3\r\n', 'X-D: 4\r\n'], { quietMs: 5000, gapMs: 300 }),
  ]);
  for (const res of [half, trickle]) {
    assert.equal(res.status, 408);
    assert.ok(res.closed);
    assert.ok(res.ms >= 900 && res.ms < 2500, `closed after ${res.ms} ms`);
  }
  // A bare HTTP/0.9 request line waits for more, like any unfinished request: it is closed
  // by the same limit.
  const http09 = await rawRequest(node.port, 'GET /\r\n', { quietMs: 5000 });
  assert.ok(http09.closed && http09.ms < 2500);
});

test('random bytes: the connection is closed and the process keeps serving others', async (t) => {
  const node = await startEdge(t);
  const garbage = [
    Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
    Buffer.from('\x00\x00\x00\x00\x00\x00\x00\x00'),
    Buffer.from('asdkjh aslkdj\r\n\r\n'),
    Buffer.alloc(70_000, 0x41),
  ];
  for (let i = 0; i < 20; i++) garbage.push(Buffer.from(Array.from({ length: 64 }, (_, j) => (i * 131 + j * 197 + 7) % 256)));
  const results = await Promise.all(garbage.map((bytes) => rawRequest(node.port, bytes, { quietMs: 3000 })));
  for (const res of results) {
    assert.ok(res.closed);
    assert.ok(res.status === null || res.status === 400 || res.status === 431, String(res.status));
  }
  assert.equal((await get(node.port, '/still')).status, 301);
});

test('an idle keep-alive connection is closed once idle_timeout has passed', async (t) => {
  const node = await startEdge(t, { limits: { idle_timeout: '1s' } });
  const res = await rawRequest(node.port, 'GET / HTTP/1.1\r\nHost: opam.test\r\n\r\n', { quietMs: 5000 });
  assert.equal(res.status, 301);
  assert.match(res.text, /\r\nkeep-alive: timeout=\d+\r\n/i);
  assert.ok(res.closed);
  // Node adds keepAliveTimeoutBuffer (1 s) on the server side so that a client never reuses a
  // connection the server is closing: the close comes between 1 and 2 s.
  assert.ok(res.ms >= 900 && res.ms < 3500, `closed after ${res.ms} ms`);
});
