// Parse errors and CONNECT on the listeners: the status picked from llhttp's code, the
// answer written by the one error writer, the connection closed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clientErrorCode } from '../../src/http/client-errors.ts';
import { startEdge } from '../helpers/edge-in-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';

test("llhttp's errors map to the catalogue (reason decides where one code covers two cases)", () => {
  assert.equal(clientErrorCode({ code: 'HPE_HEADER_OVERFLOW' }), 'HEADERS_TOO_LARGE');
  assert.equal(clientErrorCode({ code: 'ERR_HTTP_REQUEST_TIMEOUT' }), 'REQUEST_TIMEOUT');
  assert.equal(clientErrorCode({ code: 'HPE_INVALID_TRANSFER_ENCODING', reason: "Transfer-Encoding can't be present with Content-Length" }), 'BAD_FRAMING');
  assert.equal(clientErrorCode({ code: 'HPE_INVALID_TRANSFER_ENCODING', reason: 'Invalid `Transfer-Encoding` header value' }), 'UNSUPPORTED_TRANSFER_ENCODING');
  assert.equal(clientErrorCode({ code: 'HPE_INVALID_CONTENT_LENGTH' }), 'BAD_FRAMING');
  assert.equal(clientErrorCode({ code: 'HPE_UNEXPECTED_CONTENT_LENGTH' }), 'BAD_FRAMING');
  assert.equal(clientErrorCode({ code: 'HPE_INVALID_CHUNK_SIZE' }), 'BAD_FRAMING');
  assert.equal(clientErrorCode({ code: 'HPE_INVALID_VERSION', reason: 'Invalid HTTP version' }), 'HTTP_VERSION_NOT_SUPPORTED');
  assert.equal(clientErrorCode({ code: 'HPE_INVALID_VERSION', reason: 'Expected CRLF after version' }), 'BAD_REQUEST');
  assert.equal(clientErrorCode({ code: 'HPE_INVALID_METHOD' }), 'BAD_REQUEST');
  assert.equal(clientErrorCode({}), 'BAD_REQUEST');
});

test('a parse error behind a request still being answered: that answer is sent whole, then the 400, then the connection closes', async (t) => {
  // A peer that takes 300 ms, so the challenge answer is pending when the garbage arrives.
  const peer = createServer((req, res) => setTimeout(() => res.end(`${req.url!.split('/').pop()}.slow`), 300));
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => peer.close(() => r())));
  const node = await startEdge(t, { challenges: { peers: [`http://127.0.0.1:${(peer.address() as AddressInfo).port}`] } });
  const res = await rawRequest(node.port, 'GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: opam.test\r\n\r\n\x00\x01garbage\r\n\r\n', { quietMs: 2000 });
  assert.equal(res.status, 200);
  const [first, second] = res.text.split(/(?=HTTP\/1\.1 )/);
  assert.ok(first!.endsWith('\r\n\r\ntok.slow'), JSON.stringify(res.text));
  assert.match(second ?? '', /^HTTP\/1\.1 400 /, 'the pipelined garbage is answered after it (as nginx does)');
  assert.equal(res.text.match(/HTTP\/1\.1/g)!.length, 2);
  assert.ok(res.closed);
});
