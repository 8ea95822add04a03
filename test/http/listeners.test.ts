import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import { clientErrorCode, ListenerGroup } from '../../src/http/listeners.ts';
import { silentLog } from '../../src/log.ts';
import { parseListen } from '../../src/units.ts';
import type { ListenAddress } from '../../src/units.ts';
import { get, recordingLog, startEdge } from '../helpers/edge-in-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';

const address = (text: string) => parseListen(text) as ListenAddress;

function refused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

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

test('[::] binds one dual-stack socket; a named address binds what it resolves to', async (t) => {
  const group = new ListenerGroup('http', silentLog, { reusePort: false }, () => createServer((_req, res) => res.end('ok')));
  t.after(() => group.stopAccepting());
  await (await group.sync([address('[::]:0'), address('localhost:0')]))();
  const [dual, named] = group.listeners;
  assert.match(dual!.bound, /^\[::\]:\d+$/);
  assert.equal(await refused(dual!.port, '127.0.0.1'), false);
  assert.equal(await refused(dual!.port, '::1'), false);
  assert.ok(named!.port > 0);
});

test('a listener that cannot be bound: start fails with LISTEN_FAILED and what it had bound is released', async (t) => {
  const blocker = createNetServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const busy = (blocker.address() as AddressInfo).port;
  const free = createNetServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const freePort = (free.address() as AddressInfo).port;
  await new Promise<void>((r) => free.close(() => r()));
  const config = validateConfig(
    { listen: { http: [`127.0.0.1:${freePort}`, `127.0.0.1:${busy}`], https: [] }, access_log: 'off', sites: [{ hosts: ['a.test'], upstream: 'http://a' }] },
    'test',
  );
  assert.ok(config.ok);
  await assert.rejects(Edge.start(config.config, { log: silentLog }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'LISTEN_FAILED');
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${busy}: EADDRINUSE`));
    return true;
  });
  assert.equal(await refused(freePort), true);
});

test('reload moves listeners: new addresses bound, removed ones closed, kept ones keep their socket', async (t) => {
  const { log, events } = recordingLog();
  const make = (http: string[]) => {
    const r = validateConfig({ listen: { http, https: [] }, access_log: 'off', sites: [{ hosts: ['a.test'], upstream: 'http://a' }] }, 'test');
    assert.ok(r.ok);
    return r.config;
  };
  const edge = await Edge.start(make(['127.0.0.1:0', '[::1]:0']), { log });
  t.after(() => edge.stop(500));
  const [v4, v6] = edge.ports.http;
  await edge.reload(make(['[::1]:0', '127.0.0.2:0']));
  assert.equal(edge.ports.http.length, 2);
  assert.equal(edge.ports.http[0], v6);
  assert.equal(await refused(v4!), true);
  assert.equal((await get(edge.ports.http[1]!, '/', { address: '127.0.0.2', host: 'a.test' })).status, 301);
  assert.equal((await get(v6!, '/', { address: '::1', host: 'a.test' })).status, 301);
  assert.ok(events.some((e) => e.event === 'listener_closed' && e.fields.address === '127.0.0.1:0'));
  // A reload whose address cannot be bound is refused as a whole: nothing changes.
  const blocker = createNetServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const before = edge.addresses.http;
  const problems = await edge.reload(make(['127.0.0.3:0', `127.0.0.1:${(blocker.address() as AddressInfo).port}`]));
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^listen\.http\[1\]: .*EADDRINUSE/);
  assert.deepEqual(edge.addresses.http, before);
});

test('stop: idle keep-alive connections close at once, a request in flight finishes, new connections are refused', async (t) => {
  const peer = createServer((req, res) => setTimeout(() => res.end(`${req.url!.split('/').pop()}.slow`), 500));
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => peer.close(() => r())));
  const node = await startEdge(t, { challenges: { peers: [`http://127.0.0.1:${(peer.address() as AddressInfo).port}`] } });
  // An idle kept-alive connection: one answered request, then nothing.
  const idle = connect({ host: '127.0.0.1', port: node.port });
  const idleClosed = new Promise<void>((r) => idle.once('close', () => r()));
  idle.on('error', () => {});
  idle.write('GET / HTTP/1.1\r\nHost: opam.test\r\n\r\n');
  await new Promise((r) => idle.once('data', r));
  const slow = get(node.port, '/.well-known/acme-challenge/tok');
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  const stopped = node.edge.stop(30_000);
  await idleClosed;
  assert.equal(await refused(node.port), true);
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.body, 'tok.slow');
  assert.equal(res.headers.connection, 'close');
  await stopped;
  assert.ok(Date.now() - started < 5000);
});

test('reload applies new limits to the next connections on listeners that stay', async (t) => {
  const make = (limits: Record<string, string>) => {
    const r = validateConfig({ listen: { http: ['127.0.0.1:0'], https: [] }, access_log: 'off', limits, sites: [{ hosts: ['a.test'], upstream: 'http://a' }] }, 'test');
    assert.ok(r.ok);
    return r.config;
  };
  const edge = await Edge.start(make({ max_header_size: '16k' }), { log: silentLog });
  t.after(() => edge.stop(500));
  const port = edge.ports.http[0]!;
  const big = `GET / HTTP/1.1\r\nHost: a.test\r\nX-A: ${'a'.repeat(6000)}\r\n\r\n`;
  assert.equal((await rawRequest(port, big, { quietMs: 300 })).status, 301);
  await edge.reload(make({ max_header_size: '4k', header_timeout: '1s' }));
  assert.equal(edge.ports.http[0], port);
  assert.equal((await rawRequest(port, big, { quietMs: 2000 })).status, 431);
  const slow = await rawRequest(port, 'GET / HTTP/1.1\r\n', { quietMs: 5000 });
  assert.equal(slow.status, 408);
  assert.ok(slow.ms < 2500, `${slow.ms} ms`);
});

test('stop: what is still open when the grace period ends is cut, and the stop says so', async (t) => {
  const node = await startEdge(t);
  // A client that sent half a request and went quiet (header_timeout is 60 s by default).
  const half = connect({ host: '127.0.0.1', port: node.port });
  half.on('error', () => {});
  const halfClosed = new Promise<void>((r) => half.once('close', () => r()));
  await new Promise((r) => half.once('connect', r));
  half.write('GET / HTTP/1.1\r\nHost: opam.test\r\n');
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  await node.edge.stop(300);
  await halfClosed;
  assert.ok(Date.now() - started < 3000);
  assert.ok(node.events.some((e) => e.event === 'stop_forced' && e.fields.connections === 1));
  assert.ok(node.events.some((e) => e.event === 'stopped' && e.fields.drained === false));
});
