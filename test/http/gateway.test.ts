import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { Agent, WebSocket } from 'undici';
import { createGateway, siteRoutes } from '../../src/http/gateway.ts';
import type { Gateway, RequestMetrics } from '../../src/http/gateway.ts';
import type { UpstreamTarget } from '../../src/upstream/upstreams.ts';
import { silentLog } from '../../src/log.ts';
import { Upstreams } from '../../src/upstream/upstreams.ts';
import { startOrigin } from '../helpers/origin.ts';
import { captureAccessLog, makeConfig, startFront } from '../helpers/front.ts';
import { h1Request, h2Request, h2Session } from '../helpers/clients.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { exchange, handshake } from '../helpers/tls-client.ts';

async function setup(t: import('node:test').TestContext, raw: Record<string, unknown> = {}) {
  const origin = await startOrigin({ host: '127.0.0.2' });
  const front = await startFront({ sites: [{ hosts: ['opam.test', '127.0.0.1'], upstream: `http://127.0.0.2:${origin.port}` }], ...raw });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  return { origin, front };
}

const tls = { tls: { servername: 'opam.test' }, quietMs: 800 };

/** The real https listener (HTTP/1.1) in front of a gateway the test built. */
async function serveGateway(t: import('node:test').TestContext, gateway: Gateway) {
  const front = await startFront({ sites: [{ hosts: ['x.test'], upstream: 'http://127.0.0.1:1' }] }, { gateway });
  t.after(() => front.close());
  return { port: front.h1Port, ca: front.ca };
}

test('bad requests of the limits table (docs/behaviour.md) are answered as listed, none reaches the origin', async (t) => {
  const { origin, front } = await setup(t, { limits: { max_header_size: '4k' } });
  // 'closed': no status line at all; 'closed-or-400': a 400 is fine as long as it closes.
  const cases: [string, string | Buffer, number | 'closed' | 'closed-or-400'][] = [
    ['Transfer-Encoding other than chunked', 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501],
    ['Transfer-Encoding: gzip alone', 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
    ['Transfer-Encoding on HTTP/1.0', 'POST / HTTP/1.0\r\nHost: opam.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['Content-Length and Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['differing Content-Lengths', 'POST / HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
    ['no Host', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['empty Host', 'GET / HTTP/1.1\r\nHost: \r\n\r\n', 400],
    ['repeated Host', 'GET / HTTP/1.1\r\nHost: opam.test\r\nHost: opam.test\r\n\r\n', 400],
    ['invalid Host', 'GET / HTTP/1.1\r\nHost: opam test\r\n\r\n', 400],
    ['Host with a bad port', 'GET / HTTP/1.1\r\nHost: opam.test:99999\r\n\r\n', 400],
    ['absolute-form with a bad authority', 'GET http://a@opam.test/ HTTP/1.1\r\nHost: opam.test\r\n\r\n', 400],
    ['bare LF', 'GET / HTTP/1.1\nHost: opam.test\n\n', 400],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: b\r\n c\r\n\r\n', 400],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : opam.test\r\n\r\n', 400],
    ['NUL in a header', 'GET / HTTP/1.1\r\nHost: opam.test\r\nX-A: a\0b\r\n\r\n', 400],
    ['malformed request line', 'GET /a\x7fb HTTP/1.1\r\nHost: opam.test\r\n\r\n', 400],
    ['bad method token', 'G(T / HTTP/1.1\r\nHost: opam.test\r\n\r\n', 400],
    ['header block over max_header_size', `GET / HTTP/1.1\r\nHost: opam.test\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`, 431],
    ['HTTP/0.9', 'GET /\r\n\r\n', 'closed'],
    ['random bytes', Buffer.from('16030100a1010000ff03deadbeef00000000000000000000', 'hex'), 'closed-or-400'],
  ];
  for (const [name, payload, expected] of cases) {
    const result = await rawRequest(front.h1Port, payload, tls);
    if (expected === 'closed' || expected === 'closed-or-400') {
      if (expected === 'closed') assert.equal(result.status, null, `${name}: ${result.text}`);
      else assert.ok(result.status === null || result.status === 400, `${name}: ${result.text}`);
      assert.ok(result.closed, `${name}: connection closed`);
    } else {
      assert.equal(result.status, expected, `${name}: ${result.text.slice(0, 200)}`);
    }
  }
  // A bad chunk size arrives after the head went on: answered 400 (no answer had started),
  // the connection closed, and the upstream request aborted, so the origin never sees a
  // complete request.
  const chunked = await rawRequest(front.h1Port, 'POST / HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', tls);
  assert.ok(chunked.closed, JSON.stringify(chunked));
  assert.equal(chunked.status, 400, chunked.text);
  assert.equal(origin.seen.filter((s) => s.method === 'GET').length, 0, 'no GET reached the origin');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(origin.completed, 0, 'no complete request reached the origin');
  // And the proxy still serves.
  assert.equal((await h1Request(front.h1Port, front.ca)).status, 200);
});

test('absolute-form targets go upstream in origin-form, with Host from the authority', async (t) => {
  const { origin, front } = await setup(t);
  const r = await rawRequest(front.h1Port, 'GET http://opam.test:8443/p/q?x=1 HTTP/1.1\r\nHost: ignored.test\r\nConnection: close\r\n\r\n', tls);
  assert.equal(r.status, 200, r.text);
  assert.equal(origin.seen[0]!.url, '/p/q?x=1');
  assert.equal(origin.seen[0]!.headers.host, 'opam.test:8443');
  const r2 = await rawRequest(front.h1Port, 'GET HTTPS://OPAM.TEST?y HTTP/1.1\r\nHost: opam.test\r\nConnection: close\r\n\r\n', tls);
  assert.equal(r2.status, 200, r2.text);
  assert.equal(origin.seen[1]!.url, '/?y');
});

test('HSTS is added when tls.hsts is set, to proxied answers and to opam-edge\'s own', async (t) => {
  const { front } = await setup(t, { tls: { hsts: 'max-age=31536000; includeSubDomains' } });
  const ok = await h1Request(front.h1Port, front.ca);
  assert.equal(ok.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
  const misdirected = await h1Request(front.h1Port, front.ca, { headers: { host: 'nowhere.test' } });
  assert.equal(misdirected.status, 421);
  assert.equal(misdirected.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  assert.equal((await h2Request(session)).headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
});

test('the front serves through the real https listener: a client offering only ALPN http/1.0 is answered on both ports', async (t) => {
  // A hand-made https/http2 server (the front before) ends such a handshake with a fatal
  // no_application_protocol alert; the edge's listener (createSecureListener) serves it.
  const { front } = await setup(t);
  for (const port of [front.h1Port, front.h2Port]) {
    const h = await handshake(port, { servername: 'opam.test', ALPNProtocols: ['http/1.0'] });
    t.after(() => h.socket.destroy());
    assert.equal(h.alpn, 'http/1.0');
    assert.equal((await exchange(h.socket, '/', 'opam.test')).status, 200);
  }
});

test('no HSTS header unless configured', async (t) => {
  const { front } = await setup(t);
  assert.equal((await h1Request(front.h1Port, front.ca)).headers['strict-transport-security'], undefined);
});

test('a body over max_body_size: 413 before the upstream is contacted, or while streaming', async (t) => {
  const { origin, front } = await setup(t, { limits: { max_body_size: '1k' } });
  const big = 'x'.repeat(2000);
  const r1 = await h1Request(front.h1Port, front.ca, { method: 'POST', body: big });
  assert.equal(r1.status, 413);
  assert.equal(origin.seen.length, 0, 'a declared length over the limit never reaches the origin');
  // Chunked (no length): counted as it streams, then 413 and the upstream request aborted.
  const r2 = await rawRequest(front.h1Port, `POST /c HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n${big}\r\n0\r\n\r\n`, tls);
  assert.equal(r2.status, 413, r2.text);
  assert.ok(r2.closed);
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  assert.equal((await h2Request(session, { method: 'POST', body: big, headers: { 'content-length': '2000' } })).status, 413);
  // h2 without a length: counted too.
  assert.equal((await h2Request(session, { method: 'POST', path: '/h2c', body: big })).status, 413);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(origin.completed, 0);
  assert.equal((await h1Request(front.h1Port, front.ca, { method: 'POST', body: 'x'.repeat(1000) })).status, 200);
  assert.deepEqual(front.metrics.map((m) => m.status), [413, 413, 413, 413, 200]);
});

test('Expect: 100-continue: 100 only after the checks pass, never forwarded', async (t) => {
  const { origin, front } = await setup(t, { limits: { max_body_size: '1k' } });
  const send = (length: number) =>
    new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpsRequest(
        { host: '127.0.0.1', port: front.h1Port, method: 'PUT', path: '/up', headers: { host: 'opam.test', expect: '100-continue', 'content-length': length }, ca: front.ca.cert, servername: 'opam.test', agent: false },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, continued }));
        },
      );
      req.on('continue', () => {
        continued = true;
        req.end('y'.repeat(length));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
  assert.deepEqual(await send(10), { status: 200, continued: true });
  assert.equal(origin.seen[0]!.headers.expect, undefined);
  assert.deepEqual(await send(5000), { status: 413, continued: false });
  assert.equal(origin.seen.length, 1);
});

test('WebSocket echo through the proxy (both servers), hop-by-hop filtered but Upgrade kept', async (t) => {
  const origin = await startOrigin({ host: '127.0.0.2' });
  const upgrades: Record<string, string | string[] | undefined>[] = [];
  origin.server.on('upgrade', (req, socket: Duplex) => {
    upgrades.push(req.headers);
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    // Echo small unfragmented frames: unmask the client's frame, send it back unmasked.
    let buffered = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      buffered = Buffer.concat([buffered, data]);
      while (buffered.length >= 6) {
        const opcode = buffered[0]! & 0x0f;
        const length = buffered[1]! & 0x7f;
        if (length > 125 || buffered.length < 6 + length) return;
        const mask = buffered.subarray(2, 6);
        const payload = Buffer.from(buffered.subarray(6, 6 + length).map((b, i) => b ^ mask[i % 4]!));
        buffered = buffered.subarray(6 + length);
        if (opcode === 0x8) return void socket.end(Buffer.from([0x88, 0]));
        socket.write(Buffer.concat([Buffer.from([0x80 | opcode, length]), payload]));
      }
    });
    socket.on('error', () => {});
  });
  const front = await startFront({ sites: [{ hosts: ['opam.test', '127.0.0.1'], upstream: `http://127.0.0.2:${origin.port}` }] });
  const dispatcher = new Agent({ connect: { ca: front.ca.cert } });
  t.after(async () => {
    await dispatcher.close();
    await front.close();
    await origin.close();
  });
  for (const port of [front.h1Port, front.h2Port]) {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws?x=1`, { dispatcher } as never);
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send('hello through opam-edge');
      ws.onmessage = (m) => resolve(String(m.data));
      ws.onerror = (e) => reject(new Error(`websocket error: ${String((e as unknown as { message?: string }).message)}`));
    });
    assert.equal(echoed, 'hello through opam-edge');
    ws.close();
  }
  assert.equal(upgrades.length, 2);
  assert.equal(upgrades[0]!.upgrade, 'websocket');
  assert.equal(upgrades[0]!.connection, 'upgrade');
  assert.equal(upgrades[0]!['x-forwarded-proto'], 'https');
  assert.equal(upgrades[0]!['x-real-ip'], '127.0.0.1');
  assert.equal(origin.seen.length, 0, 'no plain request');
  // Unknown host on the upgrade path: 421, no tunnel.
  const r = await rawRequest(front.h1Port, 'GET /ws HTTP/1.1\r\nHost: nowhere.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', tls);
  assert.equal(r.status, 421);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(front.access.records.some((rec) => rec.status === 101 && rec.url === '/ws?x=1'));
});

test('a request handler that throws is answered 500 and the process carries on', async (t) => {
  const origin = await startOrigin();
  const config = makeConfig({ sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.1:${origin.port}` }] });
  const upstreams = new Upstreams({ log: silentLog });
  await upstreams.start(config);
  const log = memoryLog();
  let calls = 0;
  const state = { routes: siteRoutes(config.sites, (s) => upstreams.get(s.upstream)), limits: config.limits, hsts: null, accessLog: captureAccessLog(), stopping: false };
  const gateway = createGateway({
    log,
    state: () => {
      if (calls++ === 0) throw new Error('boom');
      return state;
    },
  });
  t.after(async () => {
    await upstreams.stop();
    await origin.close();
  });
  const { port, ca } = await serveGateway(t, gateway);
  assert.equal((await h1Request(port, ca)).status, 500);
  assert.equal(log.events.find((e) => e.event === 'request_failed')?.code, 'REQUEST_FAILED');
  assert.equal((await h1Request(port, ca)).status, 200);
});

test('without a metrics hook the gateway works the same', async (t) => {
  const origin = await startOrigin({ host: '127.0.0.2' });
  const front = await startFront({ sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.2:${origin.port}` }] }, { metrics: false });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  assert.equal((await h1Request(front.h1Port, front.ca)).status, 200);
  assert.equal(front.metrics.length, 0);
  assert.equal(front.access.records[0]!.upstreamAddr, `127.0.0.2:${origin.port}`);
});

test('the edge owns the upstreams and exposes a gateway that follows reloads', async (t) => {
  const one = await startOrigin({ host: '127.0.0.2', handler: (req, res) => res.end('one') });
  const two = await startOrigin({ host: '127.0.0.3', handler: (req, res) => res.end('two') });
  const { Edge } = await import('../../src/edge.ts');
  const config = (upstream: string) => makeConfig({ listen: { http: ['127.0.0.1:0'], https: [] }, sites: [{ hosts: ['opam.test'], upstream }] });
  const edge = await Edge.start(config(`http://127.0.0.2:${one.port}`), { log: silentLog });
  t.after(async () => {
    await edge.stop(1000);
    await one.close();
    await two.close();
  });
  const { port, ca } = await serveGateway(t, edge.gateway);
  assert.equal((await h1Request(port, ca)).body.toString(), 'one');
  await edge.reload(config(`http://127.0.0.3:${two.port}`));
  assert.equal((await h1Request(port, ca)).body.toString(), 'two');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(one.open, 0, 'the retired upstream pool is closed');
});

test('tunnel: an idle tunnel is closed after idle_timeout; a refused upstream is 502', async (t) => {
  const origin = await startOrigin({ host: '127.0.0.2' });
  origin.server.on('upgrade', (_req, socket: Duplex) => {
    socket.on('error', () => {});
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  });
  const front = await startFront({
    limits: { idle_timeout: '300ms' },
    sites: [
      { hosts: ['opam.test'], upstream: `http://127.0.0.2:${origin.port}` },
      { hosts: ['down.test'], upstream: 'http://127.0.0.1:1' },
    ],
  });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  const upgrade = (host: string) => `GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const idle = await rawRequest(front.h1Port, upgrade('opam.test'), { ...tls, quietMs: 3000 });
  assert.equal(idle.status, 101);
  assert.ok(idle.closed && idle.ms < 2500, `closed after ${idle.ms} ms`);
  const down = await rawRequest(front.h1Port, upgrade('down.test'), tls);
  assert.equal(down.status, 502, down.text);
  assert.match(down.text, /request id: [0-9a-f]+/);
  assert.ok(front.metrics.some((m) => m.error === 'UPSTREAM_REFUSED'));
});

/** A gateway on a real https server whose one site's upstream is `target` (no DNS, no pool). */
async function stubbedGateway(t: import('node:test').TestContext, target: Pick<UpstreamTarget, 'label' | 'pick'>) {
  const config = makeConfig({ sites: [{ hosts: ['opam.test'], upstream: 'http://stub.invalid' }] });
  const log = memoryLog();
  const access = captureAccessLog();
  const metrics: RequestMetrics[] = [];
  const state = { routes: siteRoutes(config.sites, () => target as UpstreamTarget), limits: config.limits, hsts: null, accessLog: access, stopping: false };
  const gateway = createGateway({ log, state: () => state, onRequest: (m) => void metrics.push(m) });
  return { ...(await serveGateway(t, gateway)), log, access, metrics };
}

const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: opam.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

test('a handler that throws: 500 with a request id, an access-log line and a metrics count, request_failed logged once (HTTP/1.1 and Upgrade)', async (t) => {
  const g = await stubbedGateway(t, {
    label: 'http://stub.invalid',
    pick: () => {
      throw new Error('boom');
    },
  });
  const r = await h1Request(g.port, g.ca);
  assert.equal(r.status, 500);
  const id = /request id: ([0-9a-f]+)\n/.exec(r.body.toString())?.[1];
  assert.ok(id, r.body.toString());
  assert.equal(r.headers['x-request-id'], id);
  const up = await rawRequest(g.port, UPGRADE, tls);
  assert.equal(up.status, 500, up.text);
  assert.ok(up.closed);
  const upId = /request id: ([0-9a-f]+)\n/.exec(up.text)?.[1];
  assert.ok(upId, up.text);
  for (const requestId of [id, upId]) {
    const line = g.access.records.filter((rec) => rec.requestId === requestId);
    assert.equal(line.length, 1, `one access-log line for ${requestId}`);
    assert.equal(line[0]!.status, 500);
    const failed = g.log.events.filter((e) => e.event === 'request_failed' && e.request_id === requestId);
    assert.equal(failed.length, 1, `request_failed once for ${requestId}`);
    assert.equal(failed[0]!.code, 'REQUEST_FAILED');
  }
  assert.deepEqual(
    g.metrics.map((m) => [m.site, m.status, m.error]),
    [
      ['opam.test', 500, 'INTERNAL'],
      ['opam.test', 500, 'INTERNAL'],
    ],
  );
});

test('no upstream address: HTTP/1.1 and Upgrade alike answer 503 and log upstream_error UPSTREAM_NO_ADDRESS', async (t) => {
  const g = await stubbedGateway(t, { label: 'http://stub.invalid', pick: () => null });
  assert.equal((await h1Request(g.port, g.ca)).status, 503);
  const up = await rawRequest(g.port, UPGRADE, tls);
  assert.equal(up.status, 503, up.text);
  const events = g.log.events.filter((e) => e.event === 'upstream_error');
  assert.deepEqual(
    events.map((e) => [e.code, e.upstream, e.method, e.path]),
    [
      ['UPSTREAM_NO_ADDRESS', 'http://stub.invalid', 'GET', '/'],
      ['UPSTREAM_NO_ADDRESS', 'http://stub.invalid', 'GET', '/ws'],
    ],
  );
  assert.deepEqual(events.map((e) => e.request_id), g.access.records.map((rec) => rec.requestId));
  assert.deepEqual(g.metrics.map((m) => m.error), ['UPSTREAM_NO_ADDRESS', 'UPSTREAM_NO_ADDRESS']);
});
