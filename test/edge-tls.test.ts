// The https side of a running Edge, in process: listeners from config, the certificate
// store behind them (start-up refusal, ACME hand-off, reload), and the drain on stop.

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../src/config.ts';
import { Edge } from '../src/edge.ts';
import { EdgeError } from '../src/errors.ts';
import { checkConfig } from '../src/check.ts';
import { makeCert } from './helpers/certs.ts';
import { tempDir } from './helpers/edge-process.ts';
import { exchange, handshake, serialFor } from './helpers/tls-client.ts';
import { testConfig } from './helpers/edge-in-process.ts';
import { memoryLog } from './helpers/event-log.ts';
import { h2Request, h2Session } from './helpers/clients.ts';
import { certbotTree } from './helpers/certbot-tree.ts';
import { until } from './helpers/until.ts';

function config(tls: Record<string, unknown>, listen = { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] }, more: Record<string, unknown> = {}): Config {
  return testConfig({ listen, tls, access_log: 'off', sites: [{ hosts: ['e.test'], upstream: 'http://127.0.0.1:1' }], ...more });
}

function dir(t: TestContext): string {
  const d = tempDir('opam-edge-edge-tls-');
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('a certificate/key pair that does not load stops the start before any port is bound', async (t) => {
  const d = dir(t);
  const good = await makeCert({ names: ['e.test'], dir: d, stem: 'good' });
  const other = await makeCert({ names: ['other.test'], dir: d, stem: 'other' });
  const bad = config({ certificates: [{ cert: good.certPath, key: other.keyPath }] });
  const log = memoryLog();
  const { named } = log;
  await assert.rejects(Edge.start(bad, { log }), (err: unknown) => {
    assert.ok(err instanceof EdgeError);
    assert.equal(err.code, 'CERT_INVALID');
    assert.match(err.message, /tls\.certificates\[0\]\.key: \S+: does not match tls\.certificates\[0\]\.cert/);
    assert.ok(err.message.includes(other.keyPath));
    return true;
  });
  assert.deepEqual(named('listening'), []);
  assert.deepEqual((await checkConfig(bad, { resolve: false })).problems, [
    { path: 'tls.certificates[0].key', message: `${other.keyPath}: does not match tls.certificates[0].cert` },
  ]);
  assert.deepEqual(await checkConfig(config({ certificates: [{ cert: good.certPath, key: good.keyPath }] }), { resolve: false }), { problems: [], warnings: [] });
});

test('a missing tls.certbot directory: a warning when acme is set, served once certbot creates it; refused when nothing else provides', async (t) => {
  const d = dir(t);
  const root = join(d, 'letsencrypt');
  const acme = { directory: 'https://127.0.0.1:1/directory', storage: join(d, 'storage') };
  const log = memoryLog();
  const { named } = log;
  // ACME is configured but not started here: no order leaves the machine.
  const edge = await Edge.start(config({ certbot: root }, undefined, { acme }), { log, startAcme: false, certWatchIntervalMs: 50 });
  t.after(() => edge.stop(1000));
  const warning = named('certificate_dir_missing');
  assert.equal(warning.length, 1);
  assert.equal(warning[0]!.level, 'warn');
  assert.equal(warning[0]!.key, 'tls.certbot');
  const issued = await makeCert({ names: ['e.test'], dir: d, stem: 'certbot' });
  certbotTree(root).issue('e.test', issued);
  await until(() => edge.certificates.certificates().length === 1, 5000, 'the certbot lineage to be picked up');
  assert.equal(await serialFor(edge.ports.https[0]!, 'e.test'), issued.serial);

  const alone = memoryLog();
  await assert.rejects(Edge.start(config({ certbot: join(d, 'nowhere') }), { log: alone }), (err: unknown) => {
    assert.ok(err instanceof EdgeError);
    assert.equal(err.code, 'CERT_INVALID');
    assert.match(err.message, /tls\.certbot: cannot read .*nowhere\/live: no such file; nothing else provides a certificate/);
    return true;
  });
  assert.deepEqual(alone.named('listening'), []);
});

test('https listeners serve the configured certificate, h2 and http/1.1; the store takes ACME certificates', async (t) => {
  const d = dir(t);
  const cert = await makeCert({ names: ['e.test'], dir: d, stem: 'e' });
  const log = memoryLog();
  const edge = await Edge.start(config({ certificates: [{ cert: cert.certPath, key: cert.keyPath }] }), { log });
  t.after(() => edge.stop(1000));
  assert.equal(edge.ports.https.length, 1);
  assert.match(edge.addresses.https[0]!, /^127\.0\.0\.1:\d+$/);
  const port = edge.ports.https[0]!;
  assert.equal(await serialFor(port, 'e.test'), cert.serial);
  const h = await handshake(port, { servername: 'e.test', ALPNProtocols: ['http/1.1'] });
  const answer = await exchange(h.socket, '/', 'e.test');
  assert.equal(answer.status, 502, 'the proxy is not wired in this branch');
  h.socket.destroy();
  assert.deepEqual(edge.certificates.certificates().map((c) => c.serial), [cert.serial]);
  // The ACME issuer hands certificates to the same store.
  const issued = await makeCert({ names: ['acme.test'], dir: d, stem: 'acme' });
  edge.certificates.setSource('acme:acme.test', 'acme', [{ cert: issued.cert, key: issued.key, origin: 'storage/acme.test' }]);
  assert.equal(await serialFor(port, 'acme.test'), issued.serial);
  await assert.rejects(serialFor(port, 'unknown.test'));
  assert.ok(edge.tlsClientErrors >= 1);
});

test('reload re-reads certificate files and applies tls.unknown_sni', async (t) => {
  const d = dir(t);
  const v1 = await makeCert({ names: ['e.test'], dir: d, stem: 'e' });
  const v2 = await makeCert({ names: ['e.test'], dir: d, stem: 'v2' });
  const log = memoryLog();
  const tls = { certificates: [{ cert: v1.certPath, key: v1.keyPath }] };
  const edge = await Edge.start(config(tls), { log, certWatchIntervalMs: 60_000 });
  t.after(() => edge.stop(1000));
  const port = edge.ports.https[0]!;
  await assert.rejects(serialFor(port, undefined));
  writeFileSync(v1.keyPath, v2.key);
  writeFileSync(v1.certPath, v2.cert);
  // Same listen addresses ("127.0.0.1:0" keeps its bound socket), new tls settings.
  await edge.reload(config({ ...tls, unknown_sni: 'default' }));
  assert.equal(edge.ports.https[0], port);
  assert.equal(await serialFor(port, 'e.test'), v2.serial);
  assert.equal(await serialFor(port, undefined), v2.serial, 'no SNI gets the default certificate now');
});

test('stop sends GOAWAY to h2 sessions, closes idle keep-alive connections and drains at once', async (t) => {
  const d = dir(t);
  const cert = await makeCert({ names: ['e.test'], dir: d, stem: 'e' });
  const log = memoryLog();
  const edge = await Edge.start(config({ certificates: [{ cert: cert.certPath, key: cert.keyPath }] }), { log });
  const port = edge.ports.https[0]!;
  const session = h2Session(port, null, { servername: 'e.test' });
  t.after(() => session.destroy());
  await h2Request(session);
  const goaway = new Promise((resolve) => session.once('goaway', resolve));
  const closed = new Promise((resolve) => session.once('close', resolve));
  const idle = await handshake(port, { servername: 'e.test', ALPNProtocols: ['http/1.1'] });
  await exchange(idle.socket, '/', 'e.test');
  const idleClosed = new Promise((resolve) => idle.socket.once('close', resolve));
  const started = Date.now();
  await edge.stop(10_000);
  assert.ok(Date.now() - started < 5000, 'drained without waiting for the grace period');
  await goaway;
  await closed;
  await idleClosed;
});
