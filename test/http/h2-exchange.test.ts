import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import type { ClientHttp2Session, Http2SecureServer, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { H2Request, H2Response, serveStreams } from '../../src/http/h2-exchange.ts';
import type { H2StreamHandlers } from '../../src/http/h2-exchange.ts';
import { makeCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { until } from '../helpers/until.ts';
import { h2Session } from '../helpers/clients.ts';

type Seen = { req: H2Request | unknown; res: H2Response | unknown; remote: string | undefined };

/** An h2 server (HTTP/1.1 allowed) whose h2 streams go through serveStreams(). */
async function serve(t: TestContext, handlers: Partial<H2StreamHandlers> = {}) {
  const dir = tempDir('opam-edge-h2x-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['h2x.test'], dir, stem: 'c' });
  const server: Http2SecureServer = createSecureServer({ key: cert.key, cert: cert.cert, allowHTTP1: true });
  const seen: Seen[] = [];
  const answer = (req: { httpVersion: string; url?: string; method?: string }, res: { writeHead: Function; end: Function }) => {
    const body = `${req.httpVersion} ${req.method} ${req.url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
    res.end(body);
  };
  server.on('request', (req, res) => {
    seen.push({ req, res, remote: req.socket?.remoteAddress });
    answer(req, res);
  });
  serveStreams(server, {
    onRequest: (req, res) => {
      // The session (and its socket) is the stream's only while the stream lives.
      seen.push({ req, res, remote: req.socket?.remoteAddress });
      answer(req, res);
    },
    ...handlers,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sessions: ClientHttp2Session[] = [];
  t.after(async () => {
    for (const s of sessions) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as AddressInfo).port;
  const session = () => {
    const s = h2Session(port, null, { servername: 'h2x.test' });
    sessions.push(s);
    return s;
  };
  return { server, port, seen, session };
}

function h2Ask(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; informational: number[] }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    const informational: number[] = [];
    let status = 0;
    let got: IncomingHttpHeaders = {};
    let text = '';
    stream.setEncoding('utf8');
    stream.on('headers', (h) => informational.push(Number(h[':status'])));
    stream.on('response', (h) => {
      status = Number(h[':status']);
      got = h;
    });
    stream.on('data', (d: string) => (text += d));
    stream.on('end', () => resolve({ status, headers: got, body: text, informational }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

test('h2 requests reach onRequest once, as H2Request/H2Response; HTTP/1.1 stays on the request event', async (t) => {
  const { port, seen, session } = await serve(t);
  const s = session();
  const got = await h2Ask(s, { ':path': '/a?b=1', ':authority': 'h2x.test' });
  assert.equal(got.status, 200);
  assert.equal(got.body, '2.0 GET /a?b=1');
  assert.equal(seen.length, 1, 'answered once: the compat layer is off');
  assert.ok(seen[0]!.req instanceof H2Request);
  assert.ok(seen[0]!.res instanceof H2Response);
  const req = seen[0]!.req as H2Request;
  assert.equal(req.headers[':authority'], 'h2x.test');
  assert.ok(req.rawHeaders.includes(':path'), 'raw headers with the pseudo-headers, as the compat layer had them');
  assert.equal(req.httpVersionMajor, 2);
  assert.equal(seen[0]!.remote, '127.0.0.1');
  const h1 = await new Promise<string>((resolve, reject) => {
    const r = httpsRequest({ host: '127.0.0.1', port, path: '/one', servername: 'h2x.test', rejectUnauthorized: false, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve(text));
    });
    r.on('error', reject);
    r.end();
  });
  assert.equal(h1, '1.1 GET /one');
  assert.equal(seen.length, 2);
});

test('CONNECT is answered 405; the session goes on', async (t) => {
  const { seen, session } = await serve(t);
  const s = session();
  const connect = await h2Ask(s, { ':method': 'CONNECT', ':authority': 'example.org:443' });
  assert.equal(connect.status, 405);
  assert.equal(seen.length, 0);
  assert.equal((await h2Ask(s, { ':path': '/after', ':authority': 'h2x.test' })).status, 200);
});

test('Expect: 100-continue goes to onCheckContinue (or gets 100 itself), any other expectation is 417', async (t) => {
  const withHandler = await serve(t, {
    onCheckContinue: (req, res) => {
      res.writeContinue();
      const chunks: Buffer[] = [];
      req.stream.on('data', (c: Buffer) => chunks.push(c));
      req.stream.on('end', () => {
        res.writeHead(200, {});
        res.end(`got ${Buffer.concat(chunks).toString()}`);
      });
    },
  });
  const s = withHandler.session();
  const cont = await h2Ask(s, { ':method': 'POST', ':path': '/up', ':authority': 'h2x.test', expect: '100-continue' }, 'body');
  assert.deepEqual([cont.status, cont.body, cont.informational], [200, 'got body', [100]]);
  const odd = await h2Ask(s, { ':path': '/', ':authority': 'h2x.test', expect: 'something-else' });
  assert.equal(odd.status, 417);

  const without = await serve(t);
  const w = without.session();
  const auto = await h2Ask(w, { ':method': 'POST', ':path': '/up', ':authority': 'h2x.test', expect: '100-continue' }, 'x');
  assert.deepEqual([auto.status, auto.informational], [200, [100]]);
});

test('H2Response: HEAD ends at the head, later writes and ends are dropped; nothing is sent to a reset stream', async (t) => {
  const outcomes: string[] = [];
  const { session } = await serve(t, {
    onRequest: (req, res) => {
      if (req.url === '/reset') {
        req.stream.once('close', () => {
          try {
            res.writeHead(200, {});
            res.write(Buffer.from('late'));
            res.end();
            outcomes.push(`after reset: headersSent=${res.headersSent}`);
          } catch (err) {
            outcomes.push(`threw ${(err as Error).message}`);
          }
        });
        return;
      }
      res.writeHead(200, { 'content-length': '5' });
      assert.equal(res.write(Buffer.from('hello')), true);
      res.end();
    },
  });
  const s = session();
  const head = await h2Ask(s, { ':method': 'HEAD', ':path': '/h', ':authority': 'h2x.test' });
  assert.deepEqual([head.status, head.headers['content-length'], head.body], [200, '5', '']);
  const stream = s.request({ ':path': '/reset', ':authority': 'h2x.test' });
  stream.on('error', () => {});
  await new Promise((r) => setTimeout(r, 50));
  stream.close();
  await until(() => outcomes.length > 0, 2000, 'the handler to see the reset');
  assert.deepEqual(outcomes, ['after reset: headersSent=false']);
  assert.equal((await h2Ask(s, { ':path': '/still', ':authority': 'h2x.test' })).status, 200);
});

test('serveStreams refuses a server layout it does not know', () => {
  const bare = createSecureServer({ allowHTTP1: true });
  assert.throws(() => serveStreams(bare, { onRequest: () => {} }), /request listener first/);
  const twice = createSecureServer({ allowHTTP1: true });
  twice.on('request', () => {});
  twice.on('stream', () => {});
  assert.throws(() => serveStreams(twice, { onRequest: () => {} }), /2 'stream' listeners/);
});
