// The one error writer: every catalogue code that is an HTTP answer renders the same way on
// an HTTP/1 response, an h2 stream and a raw socket, on both ports.

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, get as httpGet } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ERRORS } from '../../src/errors.ts';
import type { ErrorCode } from '../../src/errors.ts';
import { reasonOf, sendError, sendSocketError } from '../../src/http/error-response.ts';
import { startEdge } from '../helpers/edge-in-process.ts';
import { startFront } from '../helpers/front.ts';
import { h2Session } from '../helpers/clients.ts';
import { rawRequest } from '../helpers/raw-http.ts';

const HSTS = 'max-age=31536000';
/** Codes that are answers (444 and 499 are only logged; status 0 is control plane). */
const ANSWERED = (Object.keys(ERRORS) as ErrorCode[]).filter((code) => ERRORS[code].status >= 400 && ERRORS[code].status !== 444 && ERRORS[code].status !== 499);

function listen(t: TestContext, server: ReturnType<typeof createServer> | ReturnType<typeof createNetServer>): Promise<number> {
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function fetchOnce(port: number, path: string): Promise<{ status: number; message: string; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet({ port, host: '127.0.0.1', path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, message: res.statusMessage!, headers: res.headers, body }));
    }).on('error', reject);
  });
}

function assertRendered(code: ErrorCode, id: string, r: { status: number; headers: IncomingHttpHeaders; body: string }): void {
  const { status, message } = ERRORS[code];
  assert.equal(r.status, status, code);
  assert.equal(r.body, `${status} ${message}\nrequest id: ${id}\n`, code);
  assert.equal(r.headers['x-request-id'], id, code);
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8', code);
  assert.equal(r.headers['cache-control'], 'no-store', code);
  assert.equal(r.headers['strict-transport-security'], HSTS, code);
}

test('every answered catalogue code renders itself on an HTTP/1 response: status, reason, body with the request id, X-Request-Id, HSTS', async (t) => {
  const port = await listen(
    t,
    createServer((req, res) => {
      const code = req.url!.slice(1) as ErrorCode;
      sendError(res, code, `id-${code}`, { head: false, hsts: HSTS, close: true });
    }),
  );
  for (const code of ANSWERED) {
    const r = await fetchOnce(port, `/${code}`);
    assertRendered(code, `id-${code}`, r);
    assert.equal(r.message, reasonOf(code));
    assert.equal(r.headers.connection, 'close', code);
  }
});

test('every answered catalogue code renders itself on a raw socket, the same bytes as on a response, then the socket closes', async (t) => {
  let next: ErrorCode = 'BAD_REQUEST';
  const port = await listen(
    t,
    createNetServer((socket) => {
      socket.on('error', () => {});
      sendSocketError(socket, next, `raw-${next}`, HSTS);
    }),
  );
  for (const code of ANSWERED) {
    next = code;
    const r = await rawRequest(port, '', { quietMs: 2000 });
    assert.ok(r.closed, code);
    const [head, body] = r.text.split('\r\n\r\n') as [string, string];
    const [statusLine, ...fields] = head.split('\r\n');
    assert.equal(statusLine, `HTTP/1.1 ${ERRORS[code].status} ${reasonOf(code)}`);
    const headers = Object.fromEntries(fields.map((f) => [f.slice(0, f.indexOf(':')).toLowerCase(), f.slice(f.indexOf(':') + 2)]));
    assert.equal(headers['content-length'], String(body.length));
    assert.equal(headers.connection, 'close');
    assertRendered(code, `raw-${code}`, { status: ERRORS[code].status, headers, body });
  }
});

test('port 80 error answers (400, 404) carry a request id in the body, X-Request-Id and the access log, and no HSTS', async (t) => {
  const node = await startEdge(t, { tls: { hsts: HSTS }, access_log_format: 'json' });
  const notFound = await rawRequest(node.port, 'GET /.well-known/acme-challenge/ HTTP/1.1\r\nHost: opam.test\r\nConnection: close\r\n\r\n', { quietMs: 2000 });
  assert.equal(notFound.status, 404);
  const id = /request id: ([0-9a-f]+)\n/.exec(notFound.text)?.[1];
  assert.ok(id, notFound.text);
  assert.match(notFound.text, new RegExp(`\r\nX-Request-Id: ${id}\r\n`, 'i'));
  assert.doesNotMatch(notFound.text, /strict-transport-security/i);
  const badHost = await rawRequest(node.port, 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', { quietMs: 2000 });
  assert.equal(badHost.status, 400);
  assert.ok(badHost.closed);
  assert.match(badHost.text, /request id: [0-9a-f]+\n$/);
  const lines = (await node.accessLines()).map((l) => JSON.parse(l) as { status: number; request_id: string | null });
  assert.ok(lines.some((l) => l.status === 404 && l.request_id === id), JSON.stringify(lines));
});

test('a request the parser refuses and a CONNECT (raw socket, no request yet) are answered with a generated request id', async (t) => {
  const node = await startEdge(t);
  const garbage = await rawRequest(node.port, 'GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: a\0b\r\n\r\n', { quietMs: 2000 });
  assert.equal(garbage.status, 400);
  assert.ok(garbage.closed);
  const id = /\r\nX-Request-Id: ([0-9a-f]+)\r\n/.exec(garbage.text)?.[1];
  assert.ok(id, garbage.text);
  assert.ok(garbage.text.endsWith(`request id: ${id}\n`), garbage.text);
  const connect = await rawRequest(node.port, 'CONNECT opam.test:443 HTTP/1.1\r\nHost: opam.test:443\r\n\r\n', { quietMs: 2000 });
  assert.equal(connect.status, 405);
  assert.match(connect.text, /request id: [0-9a-f]+\n$/);
});

test('h2: CONNECT and an unknown Expect are answered by the one writer, with a request id', async (t) => {
  const origin = 'http://127.0.0.1:9';
  const front = await startFront({ sites: [{ hosts: ['opam.test'], upstream: origin }] });
  t.after(() => front.close());
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  const ask = (headers: Record<string, string>) =>
    new Promise<{ status: number; id: unknown; body: string }>((resolve, reject) => {
      const stream = session.request(headers);
      let body = '';
      let h: Record<string, unknown> = {};
      stream.setEncoding('latin1');
      stream.on('response', (r) => (h = r));
      stream.on('data', (c: string) => (body += c));
      stream.on('end', () => resolve({ status: Number(h[':status']), id: h['x-request-id'], body }));
      stream.on('error', reject);
    });
  const connect = await ask({ ':method': 'CONNECT', ':authority': 'opam.test:443' });
  assert.equal(connect.status, 405);
  assert.match(String(connect.id), /^[0-9a-f]{20}$/);
  assert.equal(connect.body, `405 ${ERRORS.METHOD_NOT_ALLOWED.message}\nrequest id: ${connect.id}\n`);
  const expect = await ask({ ':method': 'GET', ':path': '/', ':authority': 'opam.test', expect: 'something-else' });
  assert.equal(expect.status, 417);
  assert.match(expect.body, new RegExp(`request id: ${expect.id}\n$`));
});

test('an Upgrade refused before its tunnel (421, 502) is answered on the raw socket with the request id and HSTS', async (t) => {
  const front = await startFront({ tls: { hsts: HSTS }, sites: [{ hosts: ['down.test'], upstream: 'http://127.0.0.1:1' }] });
  t.after(() => front.close());
  const upgrade = (host: string) => `GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  for (const [host, status] of [['nowhere.test', 421], ['down.test', 502]] as const) {
    const r = await rawRequest(front.h1Port, upgrade(host), { tls: { servername: 'opam.test' }, quietMs: 2000 });
    assert.equal(r.status, status, r.text);
    assert.ok(r.closed);
    assert.match(r.text, new RegExp(`\r\nStrict-Transport-Security: ${HSTS}\r\n`));
    const id = /\r\nX-Request-Id: ([0-9a-f]+)\r\n/.exec(r.text)?.[1];
    assert.ok(id && r.text.endsWith(`request id: ${id}\n`), r.text);
    assert.ok(front.access.records.some((rec) => rec.requestId === id && rec.status === status));
  }
});
