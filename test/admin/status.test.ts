// GET /healthz and GET /status on the admin listener: each health state with its reason
// (ok, degraded, failing; ACME's start grace; ?strict; the health gauges; the container's
// HEALTHCHECK probe), a certificate swap and a DNS change seen in /status and in the gauges,
// and what the last forward to each challenge peer did.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { Edge } from '../../src/edge.ts';
import type { StatusDocument } from '../../src/admin/status.ts';
import { healthcheck } from '../../src/healthcheck.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { makeCert } from '../helpers/certs.ts';
import { testConfig } from '../helpers/edge-in-process.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { freePort } from '../helpers/ports.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { requireTool } from '../helpers/tools.ts';
import { untilValue } from '../helpers/until.ts';
import { scrape, sumOf, valueOf } from '../helpers/prom.ts';

function config(raw: Record<string, unknown>) {
  return testConfig({ access_log: 'off', ...raw });
}

async function get(port: number, path: string, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

async function status(port: number): Promise<StatusDocument> {
  const res = await get(port, '/status');
  assert.equal(res.status, 200);
  return JSON.parse(res.body) as StatusDocument;
}

/** The health gauge's state (the one at 1) and the count of names without a certificate. */
async function gauges(admin: number): Promise<{ state: string | undefined; without: number | undefined }> {
  const { samples } = await scrape(admin);
  const state = ['ok', 'degraded', 'failing'].find((s) => valueOf(samples, 'opam_edge_health', { state: s }) === 1);
  return { state, without: valueOf(samples, 'opam_edge_names_without_certificate') };
}

/** An edge serving one certificate file on https, with `hosts` as its one site: its admin port. */
async function edgeWithCert(t: TestContext, hosts: string[], cert: { names: string[]; notAfter?: Date }): Promise<number> {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const made = await makeCert({ dir, ...cert });
  const edge = await Edge.start(
    config({
      listen: { http: [], https: ['127.0.0.1:0'] },
      admin: '127.0.0.1:0',
      tls: { certificates: [{ cert: made.certPath, key: made.keyPath }] },
      sites: [{ hosts, upstream: 'http://127.0.0.1:9' }],
    }),
    { log: memoryLog() },
  );
  t.after(() => edge.stop(0));
  return edge.ports.admin[0]!;
}

test('health ok: every name has a certificate, every upstream an address; ?strict agrees', async (t) => {
  const admin = await edgeWithCert(t, ['opam.test', '127.0.0.1'], { names: ['opam.test'] });
  const health = await get(admin, '/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.body, 'ok\n');
  assert.equal((await get(admin, '/healthz?strict')).status, 200);
  const doc = await status(admin);
  assert.equal(doc.health, 'ok');
  assert.deepEqual(doc.reasons, []);
  assert.deepEqual(doc.names_without_certificate, []);
  assert.deepEqual(await gauges(admin), { state: 'ok', without: 0 });
});

test('health degraded: a configured name without a certificate (regression: only missing from the table, /healthz said ok)', async (t) => {
  const admin = await edgeWithCert(t, ['opam.test', 'www.opam.test'], { names: ['opam.test'] });
  const health = await get(admin, '/healthz');
  assert.equal(health.status, 200, 'degraded still serves: no restart');
  assert.equal(health.body, 'degraded: no valid certificate for www.opam.test (not managed by ACME)\n');
  assert.equal(health.headers['cache-control'], 'no-store');
  const strict = await get(admin, '/healthz?strict');
  assert.equal(strict.status, 503);
  assert.equal(strict.body, health.body);
  assert.equal((await get(admin, '/healthz?strict=0')).status, 200);
  const head = await get(admin, '/healthz?strict', 'HEAD');
  assert.equal(head.status, 503);
  assert.equal(head.body, '');
  const doc = await status(admin);
  assert.equal(doc.health, 'degraded');
  assert.deepEqual(doc.reasons, [{ state: 'degraded', reason: 'no valid certificate for www.opam.test (not managed by ACME)' }]);
  assert.deepEqual(doc.names_without_certificate, ['www.opam.test']);
  assert.deepEqual(await gauges(admin), { state: 'degraded', without: 1 });
  const page = await get(admin, '/');
  assert.match(page.body, /<span class="badge warn">degraded<\/span>/);
  assert.match(page.body, /No valid certificate for: www\.opam\.test/);
});

test('health degraded: a certificate with under 7 days left', async (t) => {
  const admin = await edgeWithCert(t, ['opam.test'], { names: ['opam.test'], notAfter: new Date(Date.now() + 3 * 86_400_000) });
  const health = await get(admin, '/healthz');
  assert.equal(health.status, 200);
  assert.match(health.body, /^degraded: certificate for opam\.test \(ecdsa\) expires in 3\.0 days \(/);
  assert.equal((await get(admin, '/healthz?strict')).status, 503);
  assert.deepEqual(await gauges(admin), { state: 'degraded', without: 0 });
});

test('health with ACME on a fresh host: degraded (200) while the first order runs within acme.start_grace, failing (503) after; a failing renewal stays degraded', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const raw = {
    listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] },
    admin: '127.0.0.1:0',
    acme: { directory: 'https://127.0.0.1:1/dir', storage: join(dir, 'storage'), start_grace: '3s' },
    sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
  };
  const log = memoryLog();
  const edge = await Edge.start(config(raw), { log });
  t.after(() => edge.stop(0));
  const admin = edge.ports.admin[0]!;
  const early = await get(admin, '/healthz');
  assert.equal(early.status, 200, 'swarm must not kill a host whose first order is running');
  assert.match(early.body, /^degraded: no certificate loaded yet \(first ACME orders in progress; failing from .+, acme\.start_grace\)/);
  assert.equal((await status(admin)).health, 'degraded');

  // The HEALTHCHECK's probe reads the admin address from the config file: healthy while degraded.
  const probeConfig = join(dir, 'probe.yaml');
  writeFileSync(probeConfig, `admin: "127.0.0.1:${admin}"\n`);
  const probed = await healthcheck(['--config', probeConfig], {});
  assert.equal(probed.healthy, true);
  assert.match(probed.message, /answered 200: degraded: no certificate loaded yet/);

  await log.waitFor((e) => e.event === 'acme_order_failed' && e.name === 'opam.test');
  const late = await untilValue(async () => {
    const res = await get(admin, '/healthz');
    return res.status === 503 ? res : null;
  }, 8000, 'the start grace to end', 100);
  assert.match(late.body, /^failing: no certificate loaded \(first ACME orders in progress\); ACME renewal of opam\.test failing \(1 attempts, next .+\): .+\n$/);
  const doc = await status(admin);
  assert.equal(doc.health, 'failing');
  assert.deepEqual(doc.reasons.map((r) => r.state), ['failing', 'degraded']);
  assert.deepEqual(doc.names_without_certificate, ['opam.test']);
  assert.equal(doc.acme?.[0]?.failures, 1);
  assert.deepEqual(await gauges(admin), { state: 'failing', without: 1 });
  const { samples } = await scrape(admin);
  assert.equal(valueOf(samples, 'opam_edge_acme_renewals_total', { name: 'opam.test', result: 'failure' }), 1);
  const sick = await healthcheck(['--config', probeConfig], {});
  assert.equal(sick.healthy, false);
  assert.match(sick.message, /answered 503: failing: no certificate loaded/);

  // A certificate arrives (here from a file, on reload): serving again, but the ACME
  // renewal still fails: degraded, and the certificate shows its next attempt.
  const cert = await makeCert({ names: ['opam.test'], dir });
  await edge.reload(config({ ...raw, tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] } }));
  const served = await get(admin, '/healthz');
  assert.equal(served.status, 200);
  assert.match(served.body, /^degraded: ACME renewal of opam\.test failing/);
  const after = await status(admin);
  assert.deepEqual(after.names_without_certificate, []);
  assert.equal(after.certificates[0]!.serial, cert.serial);
  assert.ok(after.certificates[0]!.next_renewal && Date.parse(after.certificates[0]!.next_renewal) > Date.now());
  assert.ok(after.certificates[0]!.last_error);

  // Stopping: failing at once, so a balancer stops sending.
  const stopping = edge.stop(2000);
  assert.equal(edge.health().state, 'failing');
  assert.deepEqual(edge.health().reasons[0], { state: 'failing', reason: 'stopping' });
  await stopping;
});

test('health failing: https configured and no certificate at all, without ACME (no grace)', async (t) => {
  const edge = await Edge.start(
    config({
      listen: { http: [], https: ['127.0.0.1:0'] },
      admin: '127.0.0.1:0',
      sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
    }),
    { log: memoryLog() },
  );
  t.after(() => edge.stop(0));
  const health = await get(edge.ports.admin[0]!, '/healthz');
  assert.equal(health.status, 503);
  assert.equal(health.body, 'failing: no certificate loaded (no tls.certificates, tls.certbot or acme)\n');
});

test('/status and the gauges follow a certificate swap', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = await makeCert({ names: ['opam.test'], dir, stem: 'a', notAfter: new Date(Date.now() + 20 * 86_400_000) });
  const b = await makeCert({ names: ['opam.test'], dir, stem: 'b', notAfter: new Date(Date.now() + 80 * 86_400_000) });
  const certPath = join(dir, 'live.pem');
  const keyPath = join(dir, 'live.key');
  copyFileSync(a.certPath, certPath);
  copyFileSync(a.keyPath, keyPath);
  const edge = await Edge.start(
    config({
      listen: { http: [], https: ['127.0.0.1:0'] },
      admin: '127.0.0.1:0',
      tls: { certificates: [{ cert: certPath, key: keyPath }] },
      sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
    }),
    { log: memoryLog(), certWatchIntervalMs: 100 },
  );
  t.after(() => edge.stop(0));
  const admin = edge.ports.admin[0]!;
  const before = await status(admin);
  assert.equal(before.certificates.length, 1);
  const first = before.certificates[0]!;
  assert.deepEqual(first.names, ['opam.test']);
  assert.equal(first.serial, a.serial);
  assert.equal(first.source, 'file');
  assert.equal(first.origin, certPath);
  assert.equal(first.next_renewal, null, 'no ACME: nothing renews it here');
  assert.ok(first.days_left > 19.9 && first.days_left <= 20, `days_left ${first.days_left}`);
  assert.match(first.issuer, /opam\.test/);
  assert.equal(before.acme, null);
  const seconds = (d: Date) => Math.floor(d.getTime() / 1000);
  assert.equal(valueOf((await scrape(admin)).samples, 'opam_edge_certificate_not_after_seconds', { name: 'opam.test' }), seconds(a.notAfter));

  // The files change in place (as certbot's renew does): the watcher swaps it in.
  copyFileSync(b.keyPath, keyPath);
  copyFileSync(b.certPath, certPath);
  const swapped = await untilValue(async () => {
    const doc = await status(admin);
    return doc.certificates[0]?.serial === b.serial ? doc : null;
  }, 8000, 'the new certificate in /status', 100);
  assert.equal(swapped.certificates.length, 1);
  assert.ok(swapped.certificates[0]!.days_left > 79.9);
  assert.equal(swapped.certificates[0]!.not_after, new Date(seconds(b.notAfter) * 1000).toISOString());
  assert.equal(valueOf((await scrape(admin)).samples, 'opam_edge_certificate_not_after_seconds', { name: 'opam.test' }), seconds(b.notAfter));
  // The page shows it too.
  const page = await get(admin, '/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.ok(page.body.includes(swapped.certificates[0]!.not_after));
});

test('/status and the gauges follow a DNS change; a name without records answers 503 and counts as no_address', { timeout: 60_000 }, async (t) => {
  if (!requireTool(t, 'pebble-challtestsrv', 'pebble')) return;
  const dns = await startDnsServer();
  t.after(() => dns.stop());
  await dns.setA('origin.test', ['127.0.0.1']);
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['opam.test', 'empty.test'], dir });
  const edge = await Edge.start(
    config({
      listen: { http: [], https: ['127.0.0.1:0'] },
      admin: '127.0.0.1:0',
      resolver: { servers: [dns.server], valid: '1s' },
      tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
      sites: [
        { hosts: ['opam.test'], upstream: 'http://origin.test:8080' },
        { hosts: ['empty.test'], upstream: 'http://nothing.test:8080' },
      ],
    }),
    { log: memoryLog() },
  );
  t.after(() => edge.stop(0));
  const admin = edge.ports.admin[0]!;
  const before = await status(admin);
  const site = before.sites.find((s) => s.name === 'opam.test')!;
  assert.equal(site.upstream, 'http://origin.test:8080');
  assert.deepEqual(site.addresses, ['127.0.0.1:8080']);
  assert.ok(site.resolved_at);
  const empty = before.sites.find((s) => s.name === 'empty.test')!;
  assert.deepEqual(empty.addresses, []);
  assert.match(empty.resolve_error ?? '', /no A or AAAA records/);
  // Regression: an upstream without an address left /healthz at "ok".
  const health = await get(admin, '/healthz');
  assert.equal(health.status, 200);
  assert.match(health.body, /^degraded: upstream http:\/\/nothing\.test:8080 \(empty\.test\) has no address: .*no A or AAAA records/);
  assert.equal((await get(admin, '/healthz?strict')).status, 503);
  assert.equal(before.health, 'degraded');
  assert.deepEqual(before.reasons.map((r) => r.state), ['degraded']);
  assert.deepEqual(await gauges(admin), { state: 'degraded', without: 0 });
  let { samples } = await scrape(admin);
  assert.equal(valueOf(samples, 'opam_edge_upstream_addresses', { site: 'opam.test' }), 1);
  assert.equal(valueOf(samples, 'opam_edge_upstream_addresses', { site: 'empty.test' }), 0);

  await dns.setA('origin.test', ['127.0.0.2', '127.0.0.3']);
  const after = await untilValue(async () => {
    const doc = await status(admin);
    const s = doc.sites.find((x) => x.name === 'opam.test')!;
    return s.addresses.length === 2 ? s : null;
  }, 8000, 'the new addresses in /status', 100);
  assert.deepEqual(after.addresses, ['127.0.0.2:8080', '127.0.0.3:8080']);
  assert.ok(Date.parse(after.resolved_at!) > Date.parse(site.resolved_at!));
  ({ samples } = await scrape(admin));
  assert.equal(valueOf(samples, 'opam_edge_upstream_addresses', { site: 'opam.test' }), 2);

  const agent = new Agent({ connect: { rejectUnauthorized: false, servername: 'empty.test' } });
  t.after(() => agent.close());
  const res = await request(`https://127.0.0.1:${edge.ports.https[0]}/`, { headers: { host: 'empty.test' }, dispatcher: agent });
  await res.body.text();
  assert.equal(res.statusCode, 503);
  ({ samples } = await scrape(admin));
  assert.equal(valueOf(samples, 'opam_edge_upstream_errors_total', { site: 'empty.test', kind: 'no_address' }), 1);
  // Whichever protocol undici negotiated.
  assert.equal(sumOf(samples, 'opam_edge_requests_total', { site: 'empty.test', code_class: '5xx' }), 1);
});

test('/status tells, per challenge peer, whether the last forward reached it', async (t) => {
  const peer = createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => peer.close(() => resolve())));
  const live = `http://127.0.0.1:${(peer.address() as AddressInfo).port}/`;
  const dead = `http://127.0.0.1:${await freePort()}/`;
  const edge = await Edge.start(
    config({
      listen: { http: ['127.0.0.1:0'], https: [] },
      admin: '127.0.0.1:0',
      challenges: { peers: [live, dead] },
      sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
    }),
    { log: memoryLog(), peerTimeoutMs: 2000 },
  );
  t.after(() => edge.stop(0));
  const admin = edge.ports.admin[0]!;
  const never = await status(admin);
  assert.deepEqual(never.peers, [
    { peer: live, last_attempt_at: null, reached: null, last_error: null },
    { peer: dead, last_attempt_at: null, reached: null, last_error: null },
  ]);
  const res = await request(`http://127.0.0.1:${edge.ports.http[0]}/.well-known/acme-challenge/some-token`, { headers: { host: 'opam.test' } });
  await res.body.text();
  assert.equal(res.statusCode, 404);
  const doc = await status(admin);
  assert.equal(doc.peers[0]!.reached, true);
  assert.equal(doc.peers[0]!.last_error, null);
  assert.ok(doc.peers[0]!.last_attempt_at);
  assert.equal(doc.peers[1]!.reached, false);
  assert.equal(doc.peers[1]!.last_error, 'ECONNREFUSED');
  // http only, no https listener: no certificate is needed to be healthy.
  assert.equal(doc.health, 'ok');
});
