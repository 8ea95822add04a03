import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { constants as h2c } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { upstreamFailure, EdgeError } from '../../src/errors.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Handler, Origin } from '../helpers/origin.ts';
import { startFront } from '../helpers/front.ts';
import { h1Request, h2Request, h2Session } from '../helpers/clients.ts';
import type { Front } from '../helpers/front.ts';
import { until } from '../helpers/until.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function setup(t: import('node:test').TestContext, handler?: Handler, raw: Record<string, unknown> = {}) {
  const origin = await startOrigin({ host: '127.0.0.2', handler });
  const front = await startFront({ sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.2:${origin.port}` }], ...raw });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  return { origin, front };
}

function poolStats(front: Front, origin: Origin) {
  return front.upstreams.get(front.config.sites[0]!.upstream).pools.entries[0]!.pool.stats;
  void origin;
}

test('HTTP/1.1 and h2 are both proxied; hop-by-hop headers are gone in both directions', async (t) => {
  const { origin, front } = await setup(t, (req, res) => {
    req.resume();
    res.writeHead(200, {
      connection: 'keep-alive, x-internal',
      'keep-alive': 'timeout=5',
      'x-internal': 'secret',
      'proxy-connection': 'keep-alive',
      trailer: 'x-sum',
      'content-type': 'text/plain',
      'set-cookie': ['a=1', 'b=2'],
    });
    res.end('hello');
  });
  const r1 = await h1Request(front.h1Port, front.ca, { headers: { te: 'trailers', 'keep-alive': '300', 'proxy-connection': 'keep-alive', connection: 'keep-alive, x-drop', 'x-drop': '1', 'x-keep': '1' } });
  assert.equal(r1.status, 200);
  assert.equal(r1.body.toString(), 'hello');
  assert.equal(r1.headers['x-internal'], undefined);
  assert.equal(r1.headers['proxy-connection'], undefined);
  assert.equal(r1.headers.trailer, undefined);
  assert.deepEqual(r1.headers['set-cookie'], ['a=1', 'b=2']);
  const seen1 = origin.seen[0]!.headers;
  for (const h of ['te', 'proxy-connection', 'x-drop', 'upgrade', 'trailer']) assert.equal(seen1[h], undefined, h);
  assert.equal(seen1['keep-alive'], undefined);
  assert.equal(seen1['x-keep'], '1');
  assert.equal(seen1.host, 'opam.test');

  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  const r2 = await h2Request(session, { path: '/h2?x=1', authority: 'opam.test:8443', headers: { te: 'trailers' } });
  assert.equal(r2.status, 200);
  assert.equal(r2.body.toString(), 'hello');
  assert.equal(r2.headers['x-internal'], undefined);
  assert.equal(r2.headers.connection, undefined);
  const seen2 = origin.seen[1]!;
  assert.equal(seen2.url, '/h2?x=1');
  assert.equal(seen2.headers.host, 'opam.test:8443', 'Host comes from :authority, as sent');
  assert.equal(seen2.headers.te, undefined);
  assert.deepEqual(seen2.rawHeaders.filter((_, i) => i % 2 === 0 && seen2.rawHeaders[i]!.startsWith(':')), []);
  assert.deepEqual(front.metrics.map((m) => m.proto), ['http/1.1', 'h2']);
  // Both requests went over one kept-alive upstream connection.
  assert.equal(origin.accepted, 1);
});

test('an IPv4 client on the dual-stack socket is written as plain IPv4; an IPv6 client as IPv6', async (t) => {
  const { origin, front } = await setup(t);
  await h1Request(front.h1Port, front.ca, { host: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.5' } });
  assert.equal(origin.seen[0]!.headers['x-real-ip'], '127.0.0.1');
  assert.equal(origin.seen[0]!.headers['x-forwarded-for'], '203.0.113.5, 127.0.0.1');
  assert.equal(origin.seen[0]!.headers['x-forwarded-proto'], 'https');
  assert.equal(origin.seen[0]!.headers['x-forwarded-host'], 'opam.test');
  assert.equal(front.access.records[0]!.remoteAddr, '127.0.0.1');
  await h1Request(front.h1Port, front.ca, { host: '::1' });
  assert.equal(origin.seen[1]!.headers['x-real-ip'], '::1');
});

test('upstream refusing connections: 502 with a request id in the body, the log and an event', async (t) => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const front = await startFront({ sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.1:${port}` }] });
  t.after(() => front.close());
  const r = await h1Request(front.h1Port, front.ca);
  assert.equal(r.status, 502);
  const id = /request id: ([0-9a-f]+)/.exec(r.body.toString())?.[1];
  assert.ok(id);
  assert.equal(r.headers['x-request-id'], id);
  assert.equal(front.access.records[0]!.requestId, id);
  assert.equal(front.access.records[0]!.status, 502);
  const event = front.log.events.find((e) => e.event === 'upstream_error');
  assert.equal(event?.code, 'UPSTREAM_REFUSED');
  assert.equal(event?.request_id, id);
  assert.equal(front.metrics[0]!.error, 'UPSTREAM_REFUSED');
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  assert.equal((await h2Request(session)).status, 502);
});

test('a hanging upstream: 504 at upstream_read_timeout, before and after the head', async (t) => {
  const { front } = await setup(
    t,
    (req, res) => {
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-length': '100' });
        res.write('x'.repeat(10));
      }
      // Otherwise: never answer.
    },
    { limits: { upstream_read_timeout: '300ms' } },
  );
  const started = Date.now();
  const r = await h1Request(front.h1Port, front.ca);
  assert.equal(r.status, 504);
  assert.ok(Date.now() - started >= 290, 'not before the timeout');
  assert.equal(front.metrics[0]!.error, 'UPSTREAM_READ_TIMEOUT');
  // The head was already sent: the client must see a cut, not a short body that looks whole.
  await assert.rejects(h1Request(front.h1Port, front.ca, { path: '/stall-body' }), /aborted|ECONNRESET|socket hang up/);
  assert.equal(front.metrics[1]!.error, 'UPSTREAM_READ_TIMEOUT');
});

test('timeouts and resets map through the one upstream-failure table', () => {
  assert.equal(upstreamFailure({ code: 'ECONNREFUSED' }), 'UPSTREAM_REFUSED');
  assert.equal(upstreamFailure({ code: 'ECONNRESET' }), 'UPSTREAM_RESET');
  assert.equal(upstreamFailure({ code: 'UND_ERR_SOCKET' }), 'UPSTREAM_RESET');
  assert.equal(upstreamFailure({ code: 'UND_ERR_CONNECT_TIMEOUT' }), 'UPSTREAM_CONNECT_TIMEOUT');
  assert.equal(upstreamFailure({ code: 'UND_ERR_HEADERS_TIMEOUT' }), 'UPSTREAM_READ_TIMEOUT');
  assert.equal(upstreamFailure({ code: 'UND_ERR_BODY_TIMEOUT' }), 'UPSTREAM_READ_TIMEOUT');
  assert.equal(upstreamFailure({ code: 'ERR_INVALID_CHAR' }), 'UPSTREAM_BAD_RESPONSE');
  assert.equal(upstreamFailure(new EdgeError('BODY_TOO_LARGE')), 'BODY_TOO_LARGE');
  assert.equal(upstreamFailure({ code: 'UND_ERR_INVALID_ARG' }), 'BAD_REQUEST');
});

test('an upstream reset mid-response cuts the client (HTTP/1.1 and h2); the proxy keeps serving', async (t) => {
  const { front } = await setup(t, (req, res) => {
    if (req.url === '/reset') {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1));
      setTimeout(() => res.socket!.destroy(), 30);
      return;
    }
    res.end('fine');
  });
  await assert.rejects(h1Request(front.h1Port, front.ca, { path: '/reset' }), /aborted|ECONNRESET|socket hang up/);
  assert.equal((await h1Request(front.h1Port, front.ca)).body.toString(), 'fine');
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  await assert.rejects(h2Request(session, { path: '/reset' }), (err: NodeJS.ErrnoException) => err.code === 'ERR_HTTP2_STREAM_ERROR');
  // The same h2 connection still serves other streams.
  assert.equal((await h2Request(session)).body.toString(), 'fine');
  assert.equal(front.metrics.filter((m) => m.error === 'UPSTREAM_RESET').length, 2);
});

test('a client that goes away cancels the upstream request: the origin sees the close, no socket leaks', async (t) => {
  let timers = 0;
  const { origin, front } = await setup(t, (req, res) => {
    req.resume();
    if (req.url === '/silent') return; // no answer: the client gives up first
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024, 7)), 10);
    timers++;
    res.on('close', () => clearInterval(timer));
  });
  // HTTP/1.1: gone after the first bytes of the body.
  await new Promise<void>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: front.h1Port, path: '/stream', headers: { host: 'opam.test' }, ca: front.ca.cert, servername: 'opam.test', agent: false }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
    req.end();
  });
  await until(() => origin.cutMidRequest === 1 && origin.open === 0, 5000, 'the origin to see the close');
  // h2: the stream is cancelled, the session stays.
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  await new Promise<void>((resolve) => {
    const stream = session.request({ ':path': '/stream', ':authority': 'opam.test' });
    stream.once('data', () => {
      stream.close(h2c.NGHTTP2_CANCEL);
      resolve();
    });
  });
  await until(() => origin.cutMidRequest === 2 && origin.open === 0, 5000, 'the origin to see the h2 cancel');
  // Before any response: the client gives up while the upstream is still thinking.
  await new Promise<void>((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port: front.h1Port, path: '/silent', headers: { host: 'opam.test' }, ca: front.ca.cert, servername: 'opam.test', agent: false });
    req.on('error', () => resolve());
    req.end();
    setTimeout(() => req.destroy(), 200);
  });
  await until(() => origin.cutMidRequest === 3 && origin.open === 0, 5000, 'the origin to see the early abort');
  await until(() => poolStats(front, origin).connected === 0, 2000, 'the pool to hold no socket');
  assert.equal(timers, 2);
  await until(() => front.metrics.filter((m) => m.status === 499).length === 3, 2000, 'three 499s');
  assert.ok(front.metrics.every((m) => m.error === 'CLIENT_CLOSED'));
});

function body10MB(): { chunks: Buffer[]; sha: string; size: number } {
  const chunk = randomBytes(64 * 1024);
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  for (let i = 0; i < 160; i++) {
    const c = Buffer.from(chunk);
    c.writeUInt32BE(i, 0);
    chunks.push(c);
    hash.update(c);
  }
  return { chunks, sha: hash.digest('hex'), size: 160 * chunk.length };
}

test('10 MB both ways, HTTP/1.1 and h2: the sha256 matches', async (t) => {
  const big = body10MB();
  const { front } = await setup(t, (req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let size = 0;
      req.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
      });
      req.on('end', () => res.end(JSON.stringify({ sha: hash.digest('hex'), size })));
      return;
    }
    res.writeHead(200, { 'content-length': String(big.size) });
    let i = 0;
    const pump = () => {
      while (i < big.chunks.length) if (!res.write(big.chunks[i++]!)) return void res.once('drain', pump);
      res.end();
    };
    pump();
  });

  // Upload, chunked (no Content-Length) over HTTP/1.1, then with a length over h2.
  const h1Up = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: front.h1Port, method: 'POST', path: '/up', headers: { host: 'opam.test' }, ca: front.ca.cert, servername: 'opam.test', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve(text));
    });
    req.on('error', reject);
    let i = 0;
    const pump = () => {
      while (i < big.chunks.length) if (!req.write(big.chunks[i++]!)) return void req.once('drain', pump);
      req.end();
    };
    pump();
  });
  assert.deepEqual(JSON.parse(h1Up), { sha: big.sha, size: big.size });

  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  const h2Up = await new Promise<string>((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/up', ':authority': 'opam.test', 'content-length': String(big.size) });
    let text = '';
    stream.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve(text)).on('error', reject);
    let i = 0;
    const pump = () => {
      while (i < big.chunks.length) if (!stream.write(big.chunks[i++]!)) return void stream.once('drain', pump);
      stream.end();
    };
    pump();
  });
  assert.deepEqual(JSON.parse(h2Up), { sha: big.sha, size: big.size });

  const h1Down = await new Promise<{ sha: string; size: number }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: front.h1Port, path: '/down', headers: { host: 'opam.test' }, ca: front.ca.cert, servername: 'opam.test', agent: false }, (res) => {
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
      });
      res.on('end', () => resolve({ sha: hash.digest('hex'), size }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(h1Down.sha, big.sha);
  assert.equal(h1Down.size, big.size);

  const h2Down = await new Promise<{ sha: string; size: number }>((resolve, reject) => {
    const stream = session.request({ ':path': '/down', ':authority': 'opam.test' });
    const hash = createHash('sha256');
    let size = 0;
    stream.on('data', (c: Buffer) => {
      hash.update(c);
      size += c.length;
    });
    stream.on('end', () => resolve({ sha: hash.digest('hex'), size }));
    stream.on('error', reject);
  });
  assert.equal(h2Down.sha, big.sha);
  assert.equal(h2Down.size, big.size);
});

test('a client that stalls holds the upstream back (backpressure): the origin stops, proxy memory stays bounded', async (t) => {
  // 64 MiB produced on the fly: more than the kernel's socket buffers on both hops can hold,
  // so without backpressure the proxy itself would have to queue the difference.
  const total = 64 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 5);
  let written = 0;
  const { front } = await setup(t, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': String(total) });
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  gc();
  const before = process.memoryUsage().arrayBuffers;
  let received = 0;
  const stalled = await new Promise<{ first: number; second: number; growth: number }>((resolve, reject) => {
    let stalledOnce = false;
    const req = httpsRequest({ host: '127.0.0.1', port: front.h1Port, path: '/down', headers: { host: 'opam.test' }, ca: front.ca.cert, servername: 'opam.test', agent: false }, (res) => {
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (received < 1024 * 1024 || stalledOnce) return;
        stalledOnce = true;
        res.pause();
        // Let every buffer on the way fill up, then watch the origin: it must not progress.
        setTimeout(() => {
          const first = written;
          setTimeout(() => {
            gc();
            const growth = process.memoryUsage().arrayBuffers - before;
            const second = written;
            res.on('end', () => resolve({ first, second, growth }));
            res.resume();
          }, 300);
        }, 700);
      });
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(received, total);
  assert.ok(stalled.first < total, `the origin finished (${stalled.first} bytes) while the client was stalled`);
  assert.equal(stalled.second, stalled.first, 'the origin made progress while the client was stalled');
  assert.ok(stalled.growth < 24 * 1024 * 1024, `buffers grew by ${(stalled.growth / 1048576).toFixed(1)} MiB while the client stalled`);
});

test('a client that goes away mid-upload cancels the upstream request', async (t) => {
  let received = 0;
  const { origin, front } = await setup(t, (req, res) => {
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => res.end('done'));
  });
  await new Promise<void>((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port: front.h1Port, method: 'PUT', path: '/up', headers: { host: 'opam.test', 'content-length': String(10 * 1024 * 1024) }, ca: front.ca.cert, servername: 'opam.test', agent: false });
    req.on('error', () => resolve());
    req.write(Buffer.alloc(256 * 1024, 1));
    const check = setInterval(() => {
      if (received > 0) {
        clearInterval(check);
        req.destroy();
      }
    }, 10);
  });
  await until(() => origin.cutMidRequest === 1 && origin.open === 0, 5000, 'the origin to see the upload cut');
  assert.ok(received < 10 * 1024 * 1024);
  await until(() => front.metrics.length === 1, 2000, 'the exchange to be logged');
  assert.equal(front.metrics[0]!.status, 499);
  assert.equal((await h1Request(front.h1Port, front.ca)).status, 200);
});

test('a client that stops reading is cut after idle_timeout, and the upstream request with it', async (t) => {
  const { origin, front } = await setup(
    t,
    (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 3);
      let sent = 0;
      const pump = () => {
        while (sent < 512 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    },
    { limits: { idle_timeout: '500ms' } },
  );
  const started = Date.now();
  const req = httpsRequest({ host: '127.0.0.1', port: front.h1Port, path: '/big', headers: { host: 'opam.test' }, ca: front.ca.cert, servername: 'opam.test', agent: false }, (res) => {
    res.once('data', () => res.pause()); // and never read again
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end();
  t.after(() => req.destroy());
  // A paused client does not read the FIN either: what counts is the proxy letting go.
  await until(() => front.metrics.length === 1, 8000, 'the proxy to cut the stalled client');
  assert.ok(Date.now() - started >= 500, 'not before idle_timeout');
  await until(() => origin.cutMidRequest === 1 && origin.open === 0, 5000, 'the upstream request to be cancelled');
  assert.equal(front.metrics[0]!.status, 499);
});
