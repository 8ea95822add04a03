// The renewal loop: its schedule with an injected clock and a fake issuer (every
// lifetime, back-off, Retry-After, ARI, restart), then for real against Pebble.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Renewer } from '../../src/acme/renewer.ts';
import type { CertificateIssuer, IssueOptions, IssuedCertificate } from '../../src/acme/issuer.ts';
import { AcmeOrderError } from '../../src/acme/issuer.ts';
import { certId } from '../../src/acme/ari.ts';
import type { RenewalInfo } from '../../src/acme/ari.ts';
import { AcmeStorage } from '../../src/acme/storage.ts';
import { DAY, HOUR, MINUTE, renewalTime } from '../../src/acme/schedule.ts';
import { makeCA, makeCert } from '../helpers/certs.ts';
import type { TestCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { memoryLog } from '../helpers/event-log.ts';
import type { MemoryLog } from '../helpers/event-log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { MemorySink } from '../helpers/memory-sink.ts';
import { acmeWorld } from '../helpers/acme-setup.ts';
import { startAcmeProxy } from '../helpers/acme-proxy.ts';

/** Issues test certificates of a fixed lifetime starting at the clock's now; can be told to fail. */
class FakeIssuer implements CertificateIssuer {
  readonly calls: { name: string; at: number; replaces: string | null }[] = [];
  readonly failures: Error[] = [];
  ari: ((pem: string) => RenewalInfo | null) | null = null;
  ariCalls: number[] = [];
  readonly #clock: FakeClock;
  readonly #ca: TestCert;
  readonly #dir: string;
  lifetime: number;

  constructor(clock: FakeClock, ca: TestCert, dir: string, lifetime: number) {
    this.#clock = clock;
    this.#ca = ca;
    this.#dir = dir;
    this.lifetime = lifetime;
  }

  async issue(name: string, options: IssueOptions = {}): Promise<IssuedCertificate> {
    const at = this.#clock.now();
    this.calls.push({ name, at, replaces: options.replaces ?? null });
    const failure = this.failures.shift();
    if (failure) throw failure;
    const cert = await makeCert({ names: [name], dir: this.#dir, ca: this.#ca, notBefore: new Date(at), notAfter: new Date(at + this.lifetime) });
    return { cert: cert.cert, key: cert.key };
  }

  async renewalInfo(pem: string): Promise<RenewalInfo | null> {
    this.ariCalls.push(this.#clock.now());
    return this.ari ? this.ari(pem) : null;
  }

  async close(): Promise<void> {}
}

type Loop = { clock: FakeClock; issuer: FakeIssuer; sink: MemorySink; storage: AcmeStorage; log: MemoryLog; dir: string; ca: TestCert; start(): Promise<Renewer> };

async function loop(t: { after(fn: () => unknown): void }, lifetime: number, names = ['opam.test']): Promise<Loop> {
  const dir = tempDir('opam-edge-renewer-');
  const renewers: Renewer[] = [];
  t.after(async () => {
    for (const r of renewers) await r.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = new FakeClock(Date.UTC(2030, 0, 1));
  const ca = await makeCA(dir);
  const issuer = new FakeIssuer(clock, ca, dir, lifetime);
  const sink = new MemorySink();
  const log = memoryLog();
  const storage = new AcmeStorage(join(dir, 'storage'), log);
  await storage.init();
  return {
    clock,
    issuer,
    sink,
    storage,
    log,
    dir,
    ca,
    async start() {
      const renewer = new Renewer({ names, issuer, storage, sink, log, clock, random: () => 0.5 });
      renewers.push(renewer);
      await renewer.start();
      await renewer.whenIdle();
      return renewer;
    },
  };
}

function acmeSerial(sink: MemorySink, name = 'opam.test'): string | undefined {
  return sink.get(`acme:${name}`)[0]?.serial;
}

for (const [label, lifetime] of [
  ['90 days', 90 * DAY],
  ['64 days', 64 * DAY],
  ['45 days', 45 * DAY],
  ['160 hours', 160 * HOUR],
] as const) {
  test(`a ${label} certificate is ordered at start, then renewed exactly when a third of it is left`, async (t) => {
    const l = await loop(t, lifetime);
    const renewer = await l.start();
    const t0 = l.clock.now();
    assert.deepEqual(l.issuer.calls.map((c) => c.at), [t0], 'no certificate: ordered at once');
    const first = l.sink.get('acme:opam.test')[0]!;
    const due = renewalTime(first.notBefore.getTime(), first.notAfter.getTime());
    assert.equal(l.log.named('acme_renewal_scheduled').at(-1)?.at, new Date(due).toISOString());
    assert.equal(renewer.plan('opam.test', l.clock.now())?.reason, 'expiring');

    // Twice-daily checks come and go without ordering anything.
    await l.clock.advanceTo(due - 1, () => renewer.whenIdle());
    assert.equal(l.issuer.calls.length, 1);
    const checks = l.log.named('acme_check').length;
    assert.ok(checks >= Math.floor((due - t0) / (13 * HOUR)), `${checks} routine checks`);

    // The loop wakes at the due moment itself, not at the next routine check.
    await l.clock.advanceTo(due, () => renewer.whenIdle());
    assert.deepEqual(l.issuer.calls.map((c) => c.at), [t0, due]);
    assert.notEqual(acmeSerial(l.sink), first.serial);
    const issued = l.log.named('acme_certificate_issued');
    assert.equal(issued.length, 2);
    assert.equal(issued[1]!.serial, acmeSerial(l.sink));
    assert.equal(issued[1]!.not_after, l.sink.get('acme:opam.test')[0]!.notAfter.toISOString());
    // Left to run for two more lifetimes it keeps renewing on time, never letting one expire.
    await l.clock.advanceTo(due + 2 * lifetime, () => renewer.whenIdle());
    const times = l.issuer.calls.map((c) => c.at);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! <= lifetime, 'renewed before expiry');
    assert.ok(times.length >= 4);
  });
}

test('failures back off ~1 min, 10 min, 100 min, then daily; the working certificate stays; Retry-After is honoured', async (t) => {
  const l = await loop(t, 90 * DAY);
  // A certificate from the files (tls.certificates) that is due for renewal.
  const old = await makeCert({ names: ['opam.test'], dir: l.dir, stem: 'old', ca: l.ca, notBefore: new Date(l.clock.now() - 80 * DAY), notAfter: new Date(l.clock.now() + 10 * DAY) });
  l.sink.setSource('file', 'file', [{ cert: old.cert, key: old.key, origin: old.certPath }]);
  for (let i = 0; i < 5; i++) l.issuer.failures.push(new AcmeOrderError('challenge: connection refused'));
  const renewer = await l.start();
  const t0 = l.clock.now();
  await l.clock.advanceTo(t0 + 3 * DAY, () => renewer.whenIdle());
  const gaps = l.issuer.calls.map((c) => c.at - t0);
  assert.deepEqual(gaps.slice(0, 6), [0, MINUTE, 11 * MINUTE, 111 * MINUTE, 111 * MINUTE + DAY, 111 * MINUTE + 2 * DAY]);
  const failed = l.log.named('acme_order_failed');
  assert.equal(failed.length, 5);
  assert.equal(failed[0]!.reason, 'an ACME order failed: challenge: connection refused');
  assert.equal(failed[0]!.next_attempt, new Date(t0 + MINUTE).toISOString());
  assert.equal(failed[0]!.serving, old.serial, 'the working certificate is still served');
  assert.equal(l.sink.get('file')[0]?.serial, old.serial);
  // The sixth attempt succeeded.
  assert.ok(acmeSerial(l.sink));
  assert.equal(JSON.parse(readFileSync(join(l.dir, 'storage', 'state.json'), 'utf8')).names['opam.test'].failures, 0);

  // A Retry-After longer than the back-off decides the next attempt.
  await renewer.stop();
  const l2 = await loop(t, 90 * DAY);
  l2.issuer.failures.push(new AcmeOrderError('new-order: too many (rateLimited, HTTP 429)', { retryAfterMs: 3 * HOUR }));
  const r2 = await l2.start();
  const t1 = l2.clock.now();
  await l2.clock.advanceTo(t1 + 4 * HOUR, () => r2.whenIdle());
  assert.deepEqual(l2.issuer.calls.map((c) => c.at - t1), [0, 3 * HOUR]);
  assert.equal(l2.log.named('acme_order_failed')[0]!.retry_after_ms, 3 * HOUR);
});

test('the schedule survives a restart: a failed name is not retried at once', async (t) => {
  const l = await loop(t, 90 * DAY);
  l.issuer.failures.push(new AcmeOrderError('finalize: boom'), new AcmeOrderError('finalize: boom'));
  const first = await l.start();
  const t0 = l.clock.now();
  await l.clock.advanceTo(t0 + 2 * MINUTE, () => first.whenIdle());
  assert.equal(l.issuer.calls.length, 2);
  const next = Date.parse(String(l.log.named('acme_order_failed')[1]!.next_attempt));
  assert.equal(next, t0 + MINUTE + 10 * MINUTE);
  await first.stop();

  // Restarted 3 minutes later: it waits for the persisted next attempt.
  await l.clock.advanceTo(t0 + 3 * MINUTE, async () => {});
  const second = await l.start();
  assert.equal(l.issuer.calls.length, 2, 'no attempt at start');
  assert.deepEqual(second.plan('opam.test', l.clock.now()), { at: next, reason: 'retry' });
  await l.clock.advanceTo(next, () => second.whenIdle());
  assert.equal(l.issuer.calls.length, 3);
  assert.ok(acmeSerial(l.sink));
});

test('stored certificates serve at start before anything is ordered; a certbot certificate is adopted', async (t) => {
  const l = await loop(t, 90 * DAY, ['opam.test', 'www.opam.test']);
  const stored = await makeCert({ names: ['opam.test'], dir: l.dir, stem: 'stored', ca: l.ca, notBefore: new Date(l.clock.now() - DAY), notAfter: new Date(l.clock.now() + 89 * DAY) });
  await l.storage.saveCertificate('opam.test', stored.cert, stored.key);
  const certbot = await makeCert({ names: ['www.opam.test'], dir: l.dir, stem: 'certbot', ca: l.ca, notBefore: new Date(l.clock.now() - 10 * DAY), notAfter: new Date(l.clock.now() + 80 * DAY) });
  l.sink.setSource('certbot', 'certbot', [{ cert: certbot.cert, key: certbot.key, origin: certbot.certPath }]);
  const renewer = await l.start();
  assert.equal(l.issuer.calls.length, 0, 'nothing ordered');
  assert.equal(acmeSerial(l.sink), stored.serial);
  assert.deepEqual(l.log.named('acme_certificate_loaded').map((e) => [e.name, e.serial, e.days_left]), [['opam.test', stored.serial, 89]]);
  const plan = renewer.plan('www.opam.test', l.clock.now())!;
  assert.equal(plan.at, renewalTime(certbot.x509.notBefore.getTime(), certbot.x509.notAfter.getTime()));
  // When the adopted certificate comes due, the loop orders its own.
  await l.clock.advanceTo(plan.at, () => renewer.whenIdle());
  assert.deepEqual(l.issuer.calls.map((c) => [c.name, c.replaces]), [['www.opam.test', null]], 'a certbot certificate is not ours to `replace`');
  assert.ok(acmeSerial(l.sink, 'www.opam.test'));
});

test('ARI: renewal at a random moment of the suggested window, with `replaces`; polls follow Retry-After', async (t) => {
  const l = await loop(t, 90 * DAY);
  const t0 = l.clock.now();
  // The CA suggests renewing the first certificate between day 20 and day 22, the next ones
  // later, and asks to be polled every 8 h.
  const first = { start: t0 + 20 * DAY, end: t0 + 22 * DAY };
  let later = { start: t0 + 50 * DAY, end: t0 + 52 * DAY };
  l.issuer.ari = (pem) => ({ ...(new X509Certificate(pem).validFromDate.getTime() < t0 + DAY ? first : later), explanationUrl: null, retryAfterMs: 8 * HOUR });
  const renewer = await l.start();
  const firstPem = readFileSync(join(l.dir, 'storage', 'certificates', 'opam.test', 'current', 'fullchain.pem'), 'utf8');
  assert.deepEqual(l.issuer.ariCalls, [t0], 'asked right after the first issuance');
  await l.clock.advanceTo(t0 + 2 * DAY, () => renewer.whenIdle());
  assert.deepEqual(l.issuer.ariCalls.map((at) => (at - t0) / HOUR), [0, 8, 16, 24, 32, 40, 48]);
  assert.deepEqual(renewer.plan('opam.test', l.clock.now()), { at: t0 + 21 * DAY, reason: 'ari' }, 'random 0.5: the middle of the window');
  await l.clock.advanceTo(t0 + 21 * DAY, () => renewer.whenIdle());
  assert.equal(l.issuer.calls.length, 2);
  assert.equal(l.issuer.calls[1]!.at, t0 + 21 * DAY);
  assert.equal(l.issuer.calls[1]!.replaces, certId(firstPem));
  assert.equal(renewer.plan('opam.test', l.clock.now())?.at, t0 + 51 * DAY, 'the new certificate has its own window');

  // The CA moves the window into the past (a revocation, say): renewed at the next poll.
  const t1 = l.clock.now();
  later = { start: t1 + 30 * MINUTE, end: t1 + 50 * MINUTE };
  await l.clock.advanceTo(t1 + 9 * HOUR, () => renewer.whenIdle());
  assert.deepEqual(l.issuer.calls.slice(2).map((c) => c.at), [t1 + 8 * HOUR]);
  // That window ended before the newest certificate began: not followed (no re-order loop).
  assert.equal(l.log.named('acme_renewal_window_ignored').length, 1);
  assert.equal(renewer.plan('opam.test', l.clock.now())?.reason, 'expiring');
});

test('renewNow forces an order; an unknown name is refused', async (t) => {
  const l = await loop(t, 90 * DAY);
  const renewer = await l.start();
  const before = acmeSerial(l.sink);
  const scheduled = renewer.renewNow('opam.test');
  assert.deepEqual(scheduled, { name: 'opam.test', at: new Date(l.clock.now()).toISOString(), in_progress: false });
  await renewer.whenIdle();
  assert.equal(l.issuer.calls.length, 2);
  assert.notEqual(acmeSerial(l.sink), before);
  assert.equal(renewer.renewNow('other.test'), null);

  // A forced renewal that fails goes on at the back-off's pace until it succeeds, though
  // the certificate serving is not due.
  l.issuer.failures.push(new AcmeOrderError('challenge: peer down'));
  const t1 = l.clock.now();
  renewer.renewNow('opam.test');
  await renewer.whenIdle();
  assert.equal(renewer.plan('opam.test', l.clock.now())?.reason, 'retry');
  await l.clock.advanceTo(t1 + 2 * MINUTE, () => renewer.whenIdle());
  assert.deepEqual(l.issuer.calls.slice(2).map((c) => c.at - t1), [0, MINUTE]);
  assert.equal(renewer.plan('opam.test', l.clock.now())?.reason, 'expiring');
});

// --- for real, against Pebble ---------------------------------------------------------

test('Pebble, 45 s certificates: issued at start, then really renewed before expiry, swapped into the sink', { timeout: 120_000 }, async (t) => {
  const world = await acmeWorld(t, { validitySeconds: 45 });
  if (!world) return;
  const sink = new MemorySink();
  const renewer = new Renewer({ names: ['opam.test', 'www.opam.test'], issuer: world.issuer(), storage: world.storage, sink, log: world.log });
  t.after(() => renewer.stop());
  await renewer.start();
  const first = await world.log.waitFor((e) => e.event === 'acme_certificate_issued' && e.name === 'opam.test');
  await world.log.waitFor((e) => e.event === 'acme_certificate_issued' && e.name === 'www.opam.test');
  assert.equal(acmeSerial(sink), first.serial);
  const renewed = await world.log.waitFor((e) => e.event === 'acme_certificate_issued' && e.name === 'opam.test' && e.serial !== first.serial, 60_000);
  assert.equal(acmeSerial(sink), renewed.serial);
  assert.ok(Date.parse(String(renewed.not_after)) > Date.parse(String(first.not_after)));
  // Renewed while the first one was still valid (a third of 45 s left), not after expiry.
  assert.ok(Date.parse(String(renewed.not_before)) < Date.parse(String(first.not_after)));
  assert.ok(Date.parse(String(renewed.not_before)) >= Date.parse(String(first.not_before)) + 25_000);
  const stored = await world.storage.loadCertificate('opam.test');
  assert.equal(stored?.serial, renewed.serial);
});

test('Pebble behind an ARI proxy: renewed inside the window, with `replaces` in the new order', { timeout: 90_000 }, async (t) => {
  // 120 s certificates: due at 80 s by the third-of-lifetime rule; the ARI window (or the
  // 30 s floor after an issuance, whichever is later) brings that forward.
  const world = await acmeWorld(t, { validitySeconds: 120 });
  if (!world) return;
  const proxy = await startAcmeProxy({ pebbleDirectory: world.pebble.directory, ca: world.pebble.ca, dir: world.dir, renewalInfo: true });
  t.after(() => proxy.close());
  proxy.setWindow({ start: new Date(Date.now() + 3000), end: new Date(Date.now() + 5000), retryAfterSeconds: 60 });
  const sink = new MemorySink();
  const renewer = new Renewer({ names: ['opam.test'], issuer: world.issuer({ directory: proxy.directory }), storage: world.storage, sink, log: world.log });
  t.after(() => renewer.stop());
  await renewer.start();
  const first = await world.log.waitFor((e) => e.event === 'acme_certificate_issued');
  const window = await world.log.waitFor((e) => e.event === 'acme_renewal_window');
  assert.ok(Date.parse(String(window.selected)) >= Date.parse(String(window.start)));
  const renewed = await world.log.waitFor((e) => e.event === 'acme_certificate_issued' && e.serial !== first.serial, 45_000);
  assert.ok(Date.parse(String(renewed.not_before)) < Date.parse(String(first.not_before)) + 60_000, 'well before the 80 s rule');
  assert.equal(acmeSerial(sink), renewed.serial);
  assert.equal(proxy.orders.length, 2);
  assert.equal(proxy.orders[0]!.replaces, undefined);
  assert.equal(proxy.orders[1]!.replaces, proxy.renewalInfoAsked[0]);
});

test('the CA failing mid-order, then down: back-off, persisted schedule, the working certificate serves throughout; then recovers', { timeout: 90_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const proxy = await startAcmeProxy({ pebbleDirectory: world.pebble.directory, ca: world.pebble.ca, dir: world.dir });
  t.after(() => proxy.close());
  // A certificate from the files that is due: the loop wants to replace it.
  const ca = await makeCA(world.dir);
  const old = await makeCert({ names: ['opam.test'], dir: world.dir, stem: 'old', ca, notBefore: new Date(Date.now() - 80 * DAY), notAfter: new Date(Date.now() + 10 * DAY) });
  const withOld = () => {
    const sink = new MemorySink();
    sink.setSource('file', 'file', [{ cert: old.cert, key: old.key, origin: old.certPath }]);
    return sink;
  };
  // The CA answers everything until finalize, then 503.
  proxy.override('/finalize-order/', { status: 503, body: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'maintenance' } });
  let sink = withOld();
  let renewer = new Renewer({ names: ['opam.test'], issuer: world.issuer({ directory: proxy.directory, requestTimeoutMs: 2000 }), storage: world.storage, sink, log: world.log });
  t.after(() => renewer.stop());
  await renewer.start();
  const failed = await world.log.waitFor((e) => e.event === 'acme_order_failed');
  await renewer.whenIdle();
  assert.match(String(failed.reason), /^an ACME order failed: finalize: maintenance \(serverInternal, HTTP 503\)$/);
  const next = Date.parse(String(failed.next_attempt));
  assert.ok(next > Date.now() + 40_000 && next < Date.now() + 70_000, 'about a minute');
  assert.equal(failed.serving, old.serial);
  assert.equal(sink.certificates().length, 1, 'nothing replaced the working certificate');
  const state = JSON.parse(readFileSync(join(world.storage.root, 'state.json'), 'utf8'));
  assert.equal(state.names['opam.test'].failures, 1);
  assert.equal(state.names['opam.test'].next_attempt, failed.next_attempt);

  // Restarted while the CA is down: nothing is tried at start (the back-off was persisted).
  await renewer.stop();
  await world.pebble.stop();
  sink = withOld();
  renewer = new Renewer({ names: ['opam.test'], issuer: world.issuer({ directory: proxy.directory, requestTimeoutMs: 2000 }), storage: world.storage, sink, log: world.log });
  await renewer.start();
  await renewer.whenIdle();
  assert.equal(world.log.named('acme_order_started').length, 1);
  assert.deepEqual(renewer.plan('opam.test', Date.now()), { at: next, reason: 'retry' });
  // Forced while down: the second failure backs off about 10 minutes.
  renewer.renewNow('opam.test');
  const second = await world.log.waitFor((e) => e.event === 'acme_order_failed' && e.failures === 2);
  assert.match(String(second.reason), /^an ACME order failed: directory: directory https:\/\/127\.0\.0\.1:\d+\/dir answered 502$/, 'the proxy could not reach the CA');
  assert.ok(Date.parse(String(second.next_attempt)) > Date.now() + 8 * MINUTE);
  assert.equal(sink.certificates()[0]?.serial, old.serial);

  // The CA is back: a forced renewal goes through and the new certificate serves at once.
  await world.pebble.start();
  proxy.override('/finalize-order/', null);
  renewer.renewNow('opam.test');
  const issued = await world.log.waitFor((e) => e.event === 'acme_certificate_issued');
  assert.equal(acmeSerial(sink), issued.serial);
  await renewer.whenIdle();
  assert.equal(JSON.parse(readFileSync(join(world.storage.root, 'state.json'), 'utf8')).names['opam.test'].failures, 0);
});

test('Pebble behind a proxy answering 429 + Retry-After: the next attempt is scheduled an hour later', { timeout: 60_000 }, async (t) => {
  const world = await acmeWorld(t);
  if (!world) return;
  const proxy = await startAcmeProxy({ pebbleDirectory: world.pebble.directory, ca: world.pebble.ca, dir: world.dir });
  t.after(() => proxy.close());
  proxy.override('/order-plz', { status: 429, headers: { 'retry-after': '3600' }, body: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' } });
  const renewer = new Renewer({ names: ['opam.test'], issuer: world.issuer({ directory: proxy.directory }), storage: world.storage, sink: new MemorySink(), log: world.log });
  t.after(() => renewer.stop());
  const started = Date.now();
  await renewer.start();
  const failed = await world.log.waitFor((e) => e.event === 'acme_order_failed');
  const next = Date.parse(String(failed.next_attempt));
  assert.ok(next >= started + 3_600_000 && next < Date.now() + 3_600_000 + 5000, `next attempt ${failed.next_attempt}`);
  assert.equal(failed.retry_after_ms, 3_600_000);
});
