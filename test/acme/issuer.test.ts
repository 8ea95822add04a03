// The issuer against the real Pebble, validating through a real Edge's http listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AcmeOrderError } from '../../src/acme/issuer.ts';
import { certId } from '../../src/acme/ari.ts';
import { directorySlug } from '../../src/acme/storage.ts';
import { acmeWorld } from '../helpers/acme-setup.ts';
import type { AcmeWorld } from '../helpers/acme-setup.ts';
import { startAcmeProxy } from '../helpers/acme-proxy.ts';

function splitChain(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}

async function assertChainsToPebble(world: AcmeWorld, cert: string, key: string, name: string): Promise<X509Certificate> {
  const [leaf, ...chain] = splitChain(cert);
  assert.ok(leaf && chain.length >= 1, 'a full chain, leaf first');
  assert.ok(leaf.checkPrivateKey(createPrivateKey(key)));
  assert.match(leaf.subjectAltName ?? '', new RegExp(`DNS:${name.replace(/\./g, '\\.')}`));
  const root = new X509Certificate(await world.pebble.root());
  let child = leaf;
  for (const parent of [...chain, root]) {
    assert.ok(child.verify(parent.publicKey), `${child.subject} is signed by ${parent.subject}`);
    child = parent;
  }
  return leaf;
}

test('an HTTP-01 order through the edge: ECDSA P-256 key, full chain to Pebble\'s root, tokens gone after', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const issuer = world.issuer();
  const issued = await issuer.issue('opam.test');
  const leaf = await assertChainsToPebble(world, issued.cert, issued.key, 'opam.test');
  const key = createPrivateKey(issued.key);
  assert.equal(key.asymmetricKeyType, 'ec');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.ok(leaf.validToDate > new Date());
  assert.equal(world.edge.challenges.size, 0, 'tokens are removed after the order');
  assert.equal(world.log.named('acme_challenge_validated')[0]?.identifier, 'opam.test');

  // The account is registered once; its key is kept and reused, also by a new issuer.
  const keyPath = join(world.dir, 'storage', 'accounts', directorySlug(world.pebble.directory), 'key.pem');
  const accountKey = readFileSync(keyPath, 'utf8');
  await issuer.issue('www.opam.test');
  await world.issuer().issue('opam.test');
  assert.equal(world.log.named('acme_account_registered').length, 1);
  assert.equal(readFileSync(keyPath, 'utf8'), accountKey);
});

test('acme.key_type rsa-2048 gives an RSA key', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const issued = await world.issuer({ keyType: 'rsa-2048' }).issue('opam.test');
  await assertChainsToPebble(world, issued.cert, issued.key, 'opam.test');
  const key = createPrivateKey(issued.key);
  assert.equal(key.asymmetricKeyType, 'rsa');
  assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
});

test('PEBBLE_WFE_NONCEREJECT=50: orders still succeed (bad nonces are retried at once)', { timeout: 90_000 }, async (t) => {
  const world = await acmeWorld(t, { pebbleEnv: { PEBBLE_WFE_NONCEREJECT: '50' } });
  if (!world) return;
  const issuer = world.issuer();
  for (const name of ['opam.test', 'www.opam.test', 'opam.test']) {
    const issued = await issuer.issue(name);
    await assertChainsToPebble(world, issued.cert, issued.key, name);
  }
  assert.match(world.pebble.output(), /reject 50% of good nonces/);
});

test('profile is sent only when the directory lists it; replaces only where it has renewalInfo', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const withAri = await startAcmeProxy({ pebbleDirectory: world.pebble.directory, ca: world.pebble.ca, dir: world.dir, renewalInfo: true, profiles: { classic: 'the default', shortlived: 'six days' } });
  t.after(() => withAri.close());
  const first = await world.issuer({ directory: withAri.directory, profile: 'shortlived' }).issue('opam.test');
  assert.equal(withAri.orders.at(-1)?.profile, 'shortlived');
  const replaces = certId(first.cert);
  await world.issuer({ directory: withAri.directory }).issue('opam.test', { replaces });
  assert.equal(withAri.orders.at(-1)?.replaces, replaces);
  assert.equal(withAri.orders.at(-1)?.profile, undefined);

  const plain = await startAcmeProxy({ pebbleDirectory: world.pebble.directory, ca: world.pebble.ca, dir: world.dir });
  t.after(() => plain.close());
  await world.issuer({ directory: plain.directory, profile: 'shortlived' }).issue('opam.test', { replaces });
  assert.deepEqual(Object.keys(plain.orders.at(-1)!), ['identifiers'], 'neither profile nor replaces without the directory offering them');
  assert.equal(world.log.named('acme_profile_not_offered')[0]?.profile, 'shortlived');
});

test('a Retry-After from the CA ends the order at once and is handed back for scheduling', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const proxy = await startAcmeProxy({ pebbleDirectory: world.pebble.directory, ca: world.pebble.ca, dir: world.dir });
  t.after(() => proxy.close());
  proxy.override('/order-plz', {
    status: 429,
    headers: { 'retry-after': '3600' },
    body: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many new orders recently' },
  });
  const err = (await world.issuer({ directory: proxy.directory }).issue('opam.test').catch((e: unknown) => e)) as AcmeOrderError;
  assert.ok(err instanceof AcmeOrderError, String(err));
  assert.equal(err.code, 'ACME_ORDER_FAILED');
  assert.equal(err.retryAfterMs, 3_600_000);
  assert.equal(err.problem, 'urn:ietf:params:acme:error:rateLimited');
  assert.match(err.message, /new-order: too many new orders recently \(rateLimited, HTTP 429\)/);
});

test('the CA down or hanging: the order fails with the cause, within its bounds', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const issuer = world.issuer({ requestTimeoutMs: 1000, orderTimeoutMs: 3000 });
  await issuer.issue('opam.test');
  world.pebble.pause();
  t.after(() => world.pebble.resume());
  const hung = (await issuer.issue('opam.test').catch((e: unknown) => e)) as AcmeOrderError;
  assert.ok(hung instanceof AcmeOrderError);
  assert.match(hung.message, /UND_ERR_HEADERS_TIMEOUT|UND_ERR_CONNECT_TIMEOUT|timed out/);
  world.pebble.resume();
  await world.pebble.stop();
  const down = (await world.issuer({ requestTimeoutMs: 1000 }).issue('opam.test').catch((e: unknown) => e)) as AcmeOrderError;
  assert.ok(down instanceof AcmeOrderError);
  assert.match(down.message, /^an ACME order failed: directory: GET https:\/\/127\.0\.0\.1:\d+\/dir: ECONNREFUSED/);
  assert.equal(world.edge.challenges.size, 0);
});

test('a CA that forgot the account (restarted): the same key registers again and the order goes on', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  await world.issuer().issue('opam.test');
  await world.pebble.stop();
  await world.pebble.start();
  const issued = await world.issuer().issue('opam.test');
  await assertChainsToPebble(world, issued.cert, issued.key, 'opam.test');
  assert.equal(world.log.named('acme_account_unknown').length, 1);
  assert.equal(world.log.named('acme_account_registered').length, 2);
});

test('renewalInfo: the window for the certificate\'s RFC 9773 certID, with Retry-After', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const proxy = await startAcmeProxy({ pebbleDirectory: world.pebble.directory, ca: world.pebble.ca, dir: world.dir, renewalInfo: true });
  t.after(() => proxy.close());
  const issuer = world.issuer({ directory: proxy.directory });
  const { cert } = await issuer.issue('opam.test');
  const start = new Date(Date.now() + 60_000);
  const end = new Date(Date.now() + 120_000);
  proxy.setWindow({ start, end, retryAfterSeconds: 21600 });
  const info = await issuer.renewalInfo(cert);
  assert.deepEqual(info, { start: start.getTime(), end: end.getTime(), explanationUrl: 'https://example.org/why', retryAfterMs: 21_600_000 });
  assert.deepEqual(proxy.renewalInfoAsked, [certId(cert)]);
  // Pebble's own directory has no renewalInfo.
  assert.equal(await world.issuer().renewalInfo(cert), null);
});
