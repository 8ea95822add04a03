import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CertStore } from '../../src/tls/cert-store.ts';
import type { CertStoreOptions } from '../../src/tls/cert-store.ts';
import type { PemPair } from '../../src/tls/certificate.ts';
import { makeCert } from '../helpers/certs.ts';
import type { CertOptions, TestCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { handshake, serialFor } from '../helpers/tls-client.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { serveStore } from '../helpers/store-server.ts';

const DAY = 86_400_000;

function setup(t: TestContext) {
  const dir = tempDir('opam-edge-store-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = (names: string[], more: Partial<CertOptions> = {}) => makeCert({ names, dir, stem: `${names[0]!.replace('*', 'star')}-${randomBytes(3).toString('hex')}`, ...more });
  return { dir, cert };
}

const pair = (c: TestCert, origin = c.certPath): PemPair => ({ cert: c.cert, key: c.key, origin });

function store(options: CertStoreOptions = {}) {
  const log = memoryLog();
  const { events, named } = log;
  return { store: new CertStore({ log, ...options }), events, named };
}

test('two names with two certificates: each SNI gets its own', async (t) => {
  const { cert } = setup(t);
  const a = await cert(['a.test']);
  const b = await cert(['b.test', 'www.b.test']);
  const { store: s, named } = store();
  const result = s.setSource('file', 'file', [pair(a), pair(b)]);
  assert.equal(result.loaded.length, 2);
  assert.deepEqual(result.refused, []);
  const port = await serveStore(t, s);
  assert.equal(await serialFor(port, 'a.test'), a.serial);
  assert.equal(await serialFor(port, 'b.test'), b.serial);
  assert.equal(await serialFor(port, 'WWW.B.test'), b.serial, 'names are case-insensitive');
  const loaded = named('certificate_loaded');
  assert.deepEqual(loaded.map((e) => e.serial), [a.serial, b.serial]);
  assert.deepEqual(loaded[1]!.names, ['b.test', 'www.b.test']);
  assert.equal(loaded[0]!.source, 'file');
  assert.equal(loaded[0]!.origin, a.certPath);
  assert.ok(typeof loaded[0]!.days_left === 'number' && loaded[0]!.days_left >= 29);
});

test('a wildcard covers one label; an exact name wins over it', async (t) => {
  const { cert } = setup(t);
  const wild = await cert(['*.w.test']);
  const exact = await cert(['exact.w.test']);
  const { store: s } = store();
  s.setSource('file', 'file', [pair(wild), pair(exact)]);
  const port = await serveStore(t, s);
  assert.equal(await serialFor(port, 'any.w.test'), wild.serial);
  assert.equal(await serialFor(port, 'exact.w.test'), exact.serial);
  await assert.rejects(serialFor(port, 'w.test'), 'the parent name itself is not covered');
  await assert.rejects(serialFor(port, 'a.b.w.test'), 'two labels deep is not covered');
});

test('unknown_sni reject: unknown names and clients without SNI fail the handshake', async (t) => {
  const { cert } = setup(t);
  const a = await cert(['a.test']);
  const { store: s } = store({ unknownSni: 'reject' });
  s.setSource('file', 'file', [pair(a)]);
  const port = await serveStore(t, s);
  await assert.rejects(serialFor(port, 'unknown.test'), /handshake failure|alert/i);
  await assert.rejects(serialFor(port, undefined), /handshake failure|alert/i);
  assert.equal(await serialFor(port, 'a.test'), a.serial);
});

test('unknown_sni default: the first configured certificate, also without SNI; switchable on reload', async (t) => {
  const { cert } = setup(t);
  const first = await cert(['first.test']);
  const second = await cert(['second.test']);
  const late = await cert(['late.test']);
  const { store: s } = store({ unknownSni: 'default' });
  s.setSource('file', 'file', [pair(first), pair(second)]);
  s.setSource('certbot', 'certbot', [pair(late)]);
  const port = await serveStore(t, s);
  assert.equal(await serialFor(port, 'unknown.test'), first.serial);
  assert.equal(await serialFor(port, undefined), first.serial);
  s.setUnknownSni('reject');
  await assert.rejects(serialFor(port, undefined));
  s.setUnknownSni('default');
  assert.equal(await serialFor(port, 'nobody.test'), first.serial);
});

test('ECDSA and RSA for one name: each client gets the certificate it can verify', async (t) => {
  const { cert } = setup(t);
  const ec = await cert(['dual.test'], { keyType: 'ec' });
  const rsa = await cert(['dual.test'], { keyType: 'rsa' });
  for (const order of [[ec, rsa], [rsa, ec]]) {
    const { store: s } = store();
    s.setSource('file', 'file', order.map((c) => pair(c)));
    const port = await serveStore(t, s);
    const modern = await handshake(port, { servername: 'dual.test' });
    modern.socket.destroy();
    assert.equal(modern.serial, ec.serial, 'a client offering ECDSA gets ECDSA');
    assert.equal(modern.keyType, 'ec');
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const rsaOnly = await handshake(port, { servername: 'dual.test', maxVersion, sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' });
      rsaOnly.socket.destroy();
      assert.equal(rsaOnly.serial, rsa.serial, `an RSA-only client (${maxVersion}) gets RSA`);
      assert.equal(rsaOnly.protocol, maxVersion);
    }
    const rsaCipher = await handshake(port, { servername: 'dual.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    rsaCipher.socket.destroy();
    assert.equal(rsaCipher.keyType, 'rsa', 'a TLS 1.2 client with RSA ciphers only gets RSA');
    const ecCipher = await handshake(port, { servername: 'dual.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    ecCipher.socket.destroy();
    assert.equal(ecCipher.keyType, 'ec');
  }
});

test('per name and key type, the certificate with the latest notAfter wins', async (t) => {
  const { cert } = setup(t);
  const older = await cert(['n.test', 'only-old.test'], { notAfter: new Date(Date.now() + 10 * DAY) });
  const newer = await cert(['n.test'], { notAfter: new Date(Date.now() + 80 * DAY) });
  const { store: s } = store();
  s.setSource('file', 'file', [pair(newer)]);
  s.setSource('certbot', 'certbot', [pair(older)]);
  const port = await serveStore(t, s);
  assert.equal(await serialFor(port, 'n.test'), newer.serial);
  assert.equal(await serialFor(port, 'only-old.test'), older.serial);
  s.setSource('file', 'file', []);
  assert.equal(await serialFor(port, 'n.test'), older.serial, 'the other source takes over when the best goes');
});

test('broken pairs are refused with a reason; the certificate serving from that origin stays', async (t) => {
  const { cert } = setup(t);
  const good = await cert(['r.test']);
  const other = await cert(['other.test']);
  const expired = await cert(['r.test'], { notBefore: new Date(Date.now() - 20 * DAY), notAfter: new Date(Date.now() - DAY) });
  const future = await cert(['r.test'], { notBefore: new Date(Date.now() + DAY) });
  const ipOnly = await cert(['127.0.0.1']);
  const { store: s, named } = store();
  s.setSource('file', 'file', [pair(good, 'origin-r')]);
  const port = await serveStore(t, s);
  const cases: [string, PemPair, RegExp, 'cert' | 'key'][] = [
    ['wrong key', { cert: good.cert, key: other.key, origin: 'origin-r' }, /does not match/, 'key'],
    ['truncated certificate', { cert: good.cert.slice(0, good.cert.length - 60), key: good.key, origin: 'origin-r' }, /truncated/, 'cert'],
    ['truncated key', { cert: good.cert, key: good.key.slice(0, 80), origin: 'origin-r' }, /private key/, 'key'],
    ['empty file', { cert: '', key: good.key, origin: 'origin-r' }, /no PEM certificate/, 'cert'],
    ['expired', pair(expired, 'origin-r'), /expired/, 'cert'],
    ['not yet valid', pair(future, 'origin-r'), /not valid before/, 'cert'],
    ['no DNS names', pair(ipOnly, 'origin-r'), /no DNS names/, 'cert'],
  ];
  for (const [label, broken, reason, field] of cases) {
    const result = s.setSource('file', 'file', [broken]);
    assert.equal(result.refused.length, 1, label);
    assert.match(result.refused[0]!.reason, reason, label);
    assert.equal(result.refused[0]!.field, field, label);
    assert.equal(await serialFor(port, 'r.test'), good.serial, `${label}: the old certificate still serves`);
    assert.deepEqual(s.certificates().map((c) => c.serial), [good.serial], label);
  }
  const refusals = named('certificate_refused');
  assert.equal(refusals.length, cases.length);
  assert.equal(refusals[0]!.origin, 'origin-r');
  assert.equal(refusals[0]!.level, 'error');
  // A new origin that is broken is simply not served.
  const result = s.setSource('certbot', 'certbot', [pair(expired, 'origin-new')]);
  assert.equal(result.refused.length, 1);
  assert.equal(s.certificates().length, 1);
});

test('swapping a source: new handshakes get the new certificate, removed origins stop serving', async (t) => {
  const { cert } = setup(t);
  const v1 = await cert(['s.test']);
  const v2 = await cert(['s.test']);
  const gone = await cert(['gone.test']);
  const { store: s, named } = store();
  const changes: unknown[] = [];
  const unsubscribe = s.onChange((change) => changes.push(change));
  s.setSource('acme:s.test', 'acme', [pair(v1, 'acme/s.test'), pair(gone, 'acme/gone.test')]);
  const port = await serveStore(t, s);
  const before = await handshake(port, { servername: 's.test' });
  assert.equal(before.serial, v1.serial);
  s.setSource('acme:s.test', 'acme', [pair(v2, 'acme/s.test')]);
  assert.equal(await serialFor(port, 's.test'), v2.serial);
  await assert.rejects(serialFor(port, 'gone.test'));
  assert.equal(before.socket.writable, true, 'an open connection is not dropped');
  before.socket.destroy();
  assert.equal(named('certificate_loaded').at(-1)!.replaces, v1.serial);
  assert.deepEqual(named('certificate_removed').map((e) => e.serial), [gone.serial]);
  assert.equal(changes.length, 2);
  const last = changes[1] as { added: { serial: string }[]; removed: { serial: string }[]; certificates: unknown[] };
  assert.deepEqual(last.added.map((c) => c.serial), [v2.serial]);
  assert.deepEqual(last.removed.map((c) => c.serial).sort(), [v1.serial, gone.serial].sort());
  assert.equal(last.certificates.length, 1);
  // Loading the same certificate again changes nothing and tells nobody.
  s.setSource('acme:s.test', 'acme', [pair(v2, 'acme/s.test')]);
  assert.equal(changes.length, 2);
  unsubscribe();
});

test('sessions resume across a swap, and across stores sharing injected ticket keys', async (t) => {
  const { cert } = setup(t);
  const v1 = await cert(['k.test']);
  const v2 = await cert(['k.test']);
  const keys = randomBytes(48);
  const { store: a } = store({ ticketKeys: keys });
  const { store: b } = store({ ticketKeys: keys });
  const { store: stranger } = store();
  assert.ok(a.ticketKeys.equals(keys));
  a.setSource('file', 'file', [pair(v1)]);
  b.setSource('file', 'file', [pair(v2)]);
  stranger.setSource('file', 'file', [pair(v1)]);
  const portA = await serveStore(t, a);
  const portB = await serveStore(t, b);
  const portStranger = await serveStore(t, stranger);
  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    const first = await handshake(portA, { servername: 'k.test', maxVersion });
    const session = await first.session();
    first.socket.destroy();
    a.setSource('file', 'file', [pair(v2)]);
    const resumed = await handshake(portA, { servername: 'k.test', maxVersion, session });
    resumed.socket.destroy();
    assert.equal(resumed.reused, true, `${maxVersion}: resumed after the swap`);
    const elsewhere = await handshake(portB, { servername: 'k.test', maxVersion, session });
    elsewhere.socket.destroy();
    assert.equal(elsewhere.reused, true, `${maxVersion}: resumed on another store with the same keys`);
    const refused = await handshake(portStranger, { servername: 'k.test', maxVersion, session });
    refused.socket.destroy();
    assert.equal(refused.reused, false, `${maxVersion}: other keys, full handshake`);
    a.setSource('file', 'file', [pair(v1)]);
  }
  assert.throws(() => new CertStore({ ticketKeys: Buffer.alloc(32) }), /48 bytes/);
});

test('TLS 1.0 and 1.1 are refused; 1.2 and 1.3 with Mozilla intermediate ciphers only', async (t) => {
  const { cert } = setup(t);
  const ec = await cert(['v.test']);
  const { store: s } = store();
  s.setSource('file', 'file', [pair(ec)]);
  const port = await serveStore(t, s);
  for (const version of ['TLSv1', 'TLSv1.1'] as const) {
    await assert.rejects(
      handshake(port, { servername: 'v.test', minVersion: version, maxVersion: version, ciphers: 'DEFAULT:@SECLEVEL=0' }),
      /protocol version|unsupported protocol|no protocols available/i,
      version,
    );
  }
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const h = await handshake(port, { servername: 'v.test', minVersion: version, maxVersion: version });
    h.socket.destroy();
    assert.equal(h.protocol, version);
  }
  // A CBC cipher outside the list is not negotiated.
  await assert.rejects(handshake(port, { servername: 'v.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' }));
});
