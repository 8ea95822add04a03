import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Agent } from 'node:https';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { validateConfig } from '../../src/config.ts';
import type { Limits } from '../../src/config.ts';
import { createSecureListener, Http2Sessions } from '../../src/http/secure.ts';
import type { SecureHandlers } from '../../src/http/secure.ts';
import { ConnectionTracker } from '../../src/http/connection-tracker.ts';
import { CertStore } from '../../src/tls/cert-store.ts';
import { CertificateFiles } from '../../src/tls/cert-files.ts';
import { supportedGroups, PQ_GROUP } from '../../src/tls/options.ts';
import { makeCert } from '../helpers/certs.ts';
import type { TestCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { exchange, handshake, serialFor } from '../helpers/tls-client.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { requireTool } from '../helpers/tools.ts';
import { asText, connected, h1Request, h2Request, h2Session } from '../helpers/clients.ts';
import { captureClientHello } from '../hardening/lib/poke.ts';

function limits(overrides: Record<string, string> = {}): Limits {
  const result = validateConfig({ limits: overrides, sites: [{ hosts: ['x.test'], upstream: 'http://127.0.0.1:1' }] }, 'test');
  assert.ok(result.ok);
  return result.config.limits;
}

/** Answers "<httpVersion> <path>"; upgrades become an echo. */
const echoHandlers: SecureHandlers = {
  onRequest(req, res) {
    const body = `${req.httpVersion} ${req.url}`;
    const out = res as ServerResponse;
    out.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    out.end(body);
  },
  onUpgrade(_req, socket, head) {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.on('data', (d) => socket.write(d));
    socket.on('error', () => {});
  },
};

async function listen(t: TestContext, options: { store: CertStore; http2?: boolean; limits?: Limits; handlers?: SecureHandlers }) {
  const connections = new ConnectionTracker();
  const sessions = new Http2Sessions();
  const tlsErrors: string[] = [];
  const log = memoryLog();
  const server = createSecureListener({
    store: options.store,
    http2: options.http2 ?? true,
    limits: options.limits ?? limits(),
    log,
    ...(options.handlers ?? echoHandlers),
    connections,
    sessions,
    onTlsClientError: (code) => tlsErrors.push(code),
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    sessions.destroyAll();
    connections.destroyAll();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as AddressInfo).port, server, sessions, connections, tlsErrors };
}

async function certs(t: TestContext, ...names: string[][]): Promise<{ dir: string; store: CertStore; list: TestCert[] }> {
  const dir = tempDir('opam-edge-secure-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const list: TestCert[] = [];
  for (const [i, n] of names.entries()) list.push(await makeCert({ names: n, dir, stem: `c${i}` }));
  const store = new CertStore();
  store.setSource('file', 'file', list.map((c) => ({ cert: c.cert, key: c.key, origin: c.certPath })));
  return { dir, store, list };
}

/** Runs a shell pipeline without blocking this process's event loop (the server lives here). */
function sh(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', command], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('ALPN: h2 and http/1.1 on one port with tls.http2, http/1.1 only without', async (t) => {
  const { store } = await certs(t, ['a.test']);
  const h2 = await listen(t, { store, http2: true });
  const h1 = await listen(t, { store, http2: false });
  const cases: [number, string[] | undefined, string | false][] = [
    [h2.port, ['h2', 'http/1.1'], 'h2'],
    [h2.port, ['http/1.1'], 'http/1.1'],
    [h2.port, undefined, false],
    [h1.port, ['h2', 'http/1.1'], 'http/1.1'],
    [h1.port, undefined, false],
  ];
  for (const [port, ALPNProtocols, expected] of cases) {
    const h = await handshake(port, { servername: 'a.test', ...(ALPNProtocols ? { ALPNProtocols } : {}) });
    assert.equal(h.alpn, expected, `${port === h2.port ? 'h2 server' : 'https server'} offered ${ALPNProtocols}`);
    if (expected !== 'h2') assert.deepEqual(await exchange(h.socket, '/plain'), { status: 200, body: '1.1 /plain' }, 'HTTP/1.1 without or with ALPN');
    h.socket.destroy();
  }
  const session = await connected(h2Session(h2.port, null, { servername: 'a.test' }));
  assert.deepEqual(asText(await h2Request(session, { path: '/over-h2' })), { status: 200, body: '2.0 /over-h2' });
  assert.equal(h2.sessions.size, 1);
  session.close();
  assert.deepEqual(asText(await h1Request(h1.port, null, { servername: 'a.test', path: '/h1', headers: { host: 'a.test' } })), { status: 200, body: '1.1 /h1' });
});

/** One HTTP/1.0 request on an open TLS socket; the answer is read until the server closes. */
function http10(socket: TLSSocket, path: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    socket.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
  });
}

test('ALPN http/1.0: offered next to h2 and http/1.1, served by the HTTP/1 path on both server kinds', async (t) => {
  // Before, a client offering only http/1.0 (curl --http1.0) got a fatal no_application_protocol alert.
  const { store } = await certs(t, ['ten.test']);
  const h2 = await listen(t, { store, http2: true });
  const h1 = await listen(t, { store, http2: false });
  for (const port of [h2.port, h1.port]) {
    const h = await handshake(port, { servername: 'ten.test', ALPNProtocols: ['http/1.0'] });
    assert.equal(h.alpn, 'http/1.0');
    const answer = await http10(h.socket, '/ten', 'ten.test');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.ok(answer.endsWith('\r\n\r\n1.0 /ten'), answer);
    const prefer = await handshake(port, { servername: 'ten.test', ALPNProtocols: ['http/1.0', 'http/1.1'] });
    assert.equal(prefer.alpn, 'http/1.1', 'the server\'s order: http/1.1 before http/1.0');
    prefer.socket.destroy();
    await assert.rejects(handshake(port, { servername: 'ten.test', ALPNProtocols: ['spdy/3'] }), /no application protocol|no_application_protocol/i);
  }
  const both = await handshake(h2.port, { servername: 'ten.test', ALPNProtocols: ['h2', 'http/1.1', 'http/1.0'] });
  assert.equal(both.alpn, 'h2');
  both.socket.destroy();
});

test('curl --http1.0 over TLS gets an answer', async (t) => {
  if (!requireTool(t, 'curl', 'curl')) return;
  const { store } = await certs(t, ['curl.test']);
  const { port } = await listen(t, { store, http2: true });
  const out = await sh(`curl -sk --http1.0 --resolve curl.test:${port}:127.0.0.1 -w ' %{http_version} %{response_code}' https://curl.test:${port}/c`);
  assert.equal(out.stdout, '1.0 /c 1.1 200', out.stderr);
});

test('h2 CONNECT is answered 405 and the listener keeps serving', async (t) => {
  // Through node:http2's compat layer this reached the HTTP/1.1 CONNECT handler with an h2
  // response instead of a socket, threw, and ended the process.
  const { store } = await certs(t, ['c.test']);
  const { port } = await listen(t, { store, http2: true });
  const session = await connected(h2Session(port, null, { servername: 'c.test' }));
  t.after(() => session.destroy());
  const status = await new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':method': 'CONNECT', ':authority': 'example.org:443' });
    let code = 0;
    stream.on('response', (h) => (code = Number(h[':status'])));
    stream.on('error', reject);
    stream.resume().on('end', () => resolve(code));
  });
  assert.equal(status, 405);
  assert.deepEqual(asText(await h2Request(session, { path: '/next' })), { status: 200, body: '2.0 /next' });
});

test('HTTP/1.1 Upgrade reaches onUpgrade on both server kinds', async (t) => {
  const { store } = await certs(t, ['ws.test']);
  for (const http2 of [true, false]) {
    const { port } = await listen(t, { store, http2 });
    const h = await handshake(port, { servername: 'ws.test', ALPNProtocols: ['http/1.1'] });
    h.socket.write('GET /socket HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly');
    let seen = '';
    await new Promise<void>((resolve) => {
      h.socket.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('early')) resolve();
      });
    });
    assert.match(seen, /^HTTP\/1\.1 101 /);
    h.socket.write('ping');
    await new Promise<void>((resolve) => h.socket.on('data', (d: Buffer) => d.toString().includes('ping') && resolve()));
    h.socket.destroy();
  }
});

test('TLS versions, ciphers and groups: 1.2/1.3 with Mozilla intermediate, 1.0/1.1 refused and counted', async (t) => {
  const { store } = await certs(t, ['v.test']);
  const { port, tlsErrors } = await listen(t, { store });
  await assert.rejects(handshake(port, { servername: 'v.test', minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }));
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const h = await handshake(port, { servername: 'v.test', minVersion: version, maxVersion: version });
    assert.equal(h.protocol, version);
    h.socket.destroy();
  }
  const h = await handshake(port, { servername: 'v.test' });
  h.socket.destroy();
  assert.equal(h.group, supportedGroups().startsWith(PQ_GROUP) ? PQ_GROUP : 'X25519', 'the hybrid post-quantum group where OpenSSL has it');
  const p256 = await handshake(port, { servername: 'v.test', ecdhCurve: 'prime256v1' });
  p256.socket.destroy();
  assert.equal(p256.group, 'prime256v1');
  await assert.rejects(handshake(port, { servername: 'v.test', ecdhCurve: 'secp521r1' }), 'a group outside the list');
  await assert.rejects(handshake(port, { servername: 'v.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-SHA384' }), 'a CBC cipher');
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(tlsErrors.length >= 3, `handshake failures counted: ${tlsErrors.join(',')}`);
});

test('openssl s_client: each name its certificate, TLS 1.1 refused, 1.2 and 1.3 accepted', async (t) => {
  if (!requireTool(t, 'openssl', 'openssl')) return;
  const { store, list } = await certs(t, ['one.test'], ['two.test']);
  const { port } = await listen(t, { store });
  const client = (args: string) => `openssl s_client -connect 127.0.0.1:${port} ${args} </dev/null`;
  for (const [name, cert] of [['one.test', list[0]!], ['two.test', list[1]!]] as const) {
    const out = await sh(`${client(`-servername ${name}`)} 2>/dev/null | openssl x509 -noout -serial`);
    assert.equal(out.stdout.trim(), `serial=${cert.serial}`, name);
  }
  const old = await sh(`${client('-servername one.test -tls1_1 -cipher DEFAULT@SECLEVEL=0')} 2>&1`);
  assert.notEqual(old.code, 0);
  assert.match(old.stdout, /alert protocol version|unsupported protocol|wrong version number/i);
  for (const flag of ['-tls1_2', '-tls1_3']) {
    const ok = await sh(`${client(`-servername one.test ${flag}`)} 2>&1`);
    assert.match(ok.stdout, flag === '-tls1_2' ? /Protocol *: TLSv1\.2|TLSv1\.2, Cipher/ : /TLSv1\.3, Cipher/, flag);
  }
});

/**
 * Writes `bytes` on a raw TCP connection, at once or one byte every `everyMs`; resolves with
 * how long the server took to close it (the client gives up after `giveUpMs`).
 */
function closedAfter(port: number, bytes: Buffer, options: { everyMs?: number; giveUpMs?: number } = {}): Promise<number> {
  return new Promise((resolve) => {
    const started = Date.now();
    let sent = 0;
    const socket = netConnect({ port, host: '127.0.0.1' }, () => {
      if (options.everyMs === undefined) socket.write(bytes);
    });
    const timer = setInterval(() => {
      if (options.everyMs !== undefined && sent < bytes.length) socket.write(bytes.subarray(sent, ++sent));
    }, options.everyMs ?? 1000);
    const giveUp = setTimeout(() => socket.destroy(), options.giveUpMs ?? 6000);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve(Date.now() - started);
    });
    socket.resume();
  });
}

test('a connection that sends no ClientHello is closed at the header timeout', async (t) => {
  const { store } = await certs(t, ['slow.test']);
  const { port, tlsErrors } = await listen(t, { store, limits: limits({ header_timeout: '400ms' }) });
  for (const payload of [Buffer.alloc(0), Buffer.from([22, 3, 1, 2, 0, 1])]) {
    const took = await closedAfter(port, payload);
    assert.ok(took >= 350 && took < 5000, `closed after ${took} ms`);
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(tlsErrors, ['hello_timeout', 'hello_timeout']);
});

test('a ClientHello trickled one byte per 200 ms is cut at header_timeout from accept; an established session is not', async (t) => {
  // Before, the guard was an idle timer that each byte restarted: such a client stayed for good.
  const { store } = await certs(t, ['trickle.test']);
  const { port, tlsErrors } = await listen(t, { store, limits: limits({ header_timeout: '1s' }) });
  const session = await connected(h2Session(port, null, { servername: 'trickle.test' }));
  t.after(() => session.destroy());
  const hello = await captureClientHello('trickle.test', ['h2', 'http/1.1']);
  const took = await closedAfter(port, hello, { everyMs: 200 });
  assert.ok(took >= 900 && took < 2000, `closed after ${took} ms (header_timeout 1 s)`);
  // The whole ClientHello at once, then silence: the handshake itself runs into the same deadline.
  const stall = await closedAfter(port, hello);
  assert.ok(stall >= 900 && stall < 2000, `a stalled handshake closed after ${stall} ms`);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(tlsErrors, ['hello_timeout', 'ERR_TLS_HANDSHAKE_TIMEOUT']);
  assert.deepEqual(asText(await h2Request(session, { path: '/later' })), { status: 200, body: '2.0 /later' }, 'the session made before, older than header_timeout, still serves');
});

test('idle h2 sessions and idle HTTP/1.1 connections are closed after idle_timeout', async (t) => {
  const { store } = await certs(t, ['idle.test']);
  const { port, tlsErrors } = await listen(t, { store, limits: limits({ idle_timeout: '300ms' }) });
  const session = await connected(h2Session(port, null, { servername: 'idle.test' }));
  t.after(() => session.destroy());
  assert.equal((await h2Request(session, { path: '/' })).status, 200);
  const h = await handshake(port, { servername: 'idle.test', ALPNProtocols: ['http/1.1'] });
  assert.equal((await exchange(h.socket, '/')).status, 200);
  const started = Date.now();
  await Promise.all([new Promise((r) => session.once('close', r)), new Promise((r) => h.socket.once('close', r))]);
  const took = Date.now() - started;
  assert.ok(took >= 200 && took < 5000, `closed after ${took} ms`);
  assert.deepEqual(tlsErrors, []);
});

test('limits apply to HTTP/1.1 on the h2 server: a header block over max_header_size gets 431', async (t) => {
  const { store } = await certs(t, ['big.test']);
  const { port } = await listen(t, { store, limits: limits({ max_header_size: '1k' }) });
  const h = await handshake(port, { servername: 'big.test', ALPNProtocols: ['http/1.1'] });
  h.socket.write(`GET / HTTP/1.1\r\nHost: big.test\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`);
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    h.socket.on('data', (d: Buffer) => (text += d.toString()));
    h.socket.on('close', () => resolve(text));
  });
  assert.match(answer, /^HTTP\/1\.1 431 /);
});

test('certificate swap under load: no request fails, new handshakes get the new serial, sessions resume', async (t) => {
  const dir = tempDir('opam-edge-swap-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = memoryLog();
  const store = new CertStore({ log });
  const files = new CertificateFiles({ store, log, intervalMs: 50 });
  t.after(() => files.stop());
  const v1 = await makeCert({ names: ['load.test'], dir, stem: 'live' });
  const v2 = await makeCert({ names: ['load.test'], dir, stem: 'v2' });
  const v3 = await makeCert({ names: ['load.test'], dir, stem: 'v3' });
  assert.deepEqual(await files.load({ certificates: [{ cert: v1.certPath, key: v1.keyPath }], certbot: null }), []);
  files.start();
  const { port } = await listen(t, { store });

  // Before any swap: an open connection, and a session of each protocol version.
  const old = await handshake(port, { servername: 'load.test', ALPNProtocols: ['http/1.1'] });
  assert.equal(old.serial, v1.serial);
  const sessions: Record<string, Buffer> = {};
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const h = await handshake(port, { servername: 'load.test', maxVersion: version, ALPNProtocols: ['http/1.1'] });
    sessions[version] = await h.session();
    h.socket.destroy();
  }

  let running = true;
  let requests = 0;
  const failures: string[] = [];
  const MAX_REQUESTS = 2000;
  const loop = async (label: string, one: (i: number) => Promise<{ status: number }>) => {
    for (let i = 0; running && requests < MAX_REQUESTS; i++) {
      requests++;
      try {
        const r = await one(i);
        if (r.status !== 200) failures.push(`${label}: status ${r.status}`);
      } catch (err) {
        failures.push(`${label}: ${(err as Error).message}`);
      }
    }
  };
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 2 });
  t.after(() => keepAlive.destroy());
  const h2 = await connected(h2Session(port, null, { servername: 'load.test' }));
  t.after(() => h2.destroy());
  const workers = [
    loop('keep-alive', (i) => h1Request(port, null, { servername: 'load.test', path: `/ka/${i}`, agent: keepAlive, headers: { host: 'load.test' } })),
    loop('keep-alive', (i) => h1Request(port, null, { servername: 'load.test', path: `/ka2/${i}`, agent: keepAlive, headers: { host: 'load.test' } })),
    loop('new connection', (i) => h1Request(port, null, { servername: 'load.test', path: `/new/${i}`, agent: false, headers: { host: 'load.test' } })),
    loop('h2', (i) => h2Request(h2, { path: `/h2/${i}` })),
    loop('h2 new session', async (i) => {
      const s = await connected(h2Session(port, null, { servername: 'load.test' }));
      try {
        return await h2Request(s, { path: `/h2new/${i}` });
      } finally {
        s.close();
      }
    }),
  ];

  await new Promise((r) => setTimeout(r, 700));
  // Swap 1, through the watcher: the operator renames new files over the old ones.
  writeFileSync(`${v1.keyPath}.new`, v2.key);
  writeFileSync(`${v1.certPath}.new`, v2.cert);
  renameSync(`${v1.keyPath}.new`, v1.keyPath);
  renameSync(`${v1.certPath}.new`, v1.certPath);
  const deadline = Date.now() + 5000;
  while ((await serialFor(port, 'load.test')) !== v2.serial) {
    assert.ok(Date.now() < deadline, 'the watcher picked up the new certificate');
    await new Promise((r) => setTimeout(r, 25));
  }
  await new Promise((r) => setTimeout(r, 700));
  // Swap 2, as on SIGHUP: files rewritten in place, then reload() at once.
  files.stop();
  writeFileSync(v1.keyPath, v3.key);
  writeFileSync(v1.certPath, v3.cert);
  assert.deepEqual(await files.reload(), []);
  assert.equal(await serialFor(port, 'load.test'), v3.serial, 'new handshakes get the reloaded certificate at once');
  await new Promise((r) => setTimeout(r, 700));
  running = false;
  await Promise.all(workers);
  h2.close();

  assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed`);
  assert.ok(requests > 10, `requests ran during the swaps (${requests})`);
  t.diagnostic(`${requests} requests during two swaps, none failed`);
  // The connection from before both swaps (made with v1) still works.
  assert.deepEqual(await exchange(old.socket, '/old'), { status: 200, body: '1.1 /old' });
  old.socket.destroy();
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const resumed = await handshake(port, { servername: 'load.test', maxVersion: version, session: sessions[version] });
    assert.equal(resumed.reused, true, `a ${version} session from before the swaps resumes`);
    resumed.socket.destroy();
  }
});
