// The admin listener and the ACME wiring of the Edge: names ordered at start, stored
// certificates served before anything is ordered, POST /renew/NAME, reload; the status page;
// who may write (admin_token_file, admin_writes, cross-site markers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { parseConfig, validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import { createAdminHandler, renewRoute, sendJson } from '../../src/admin/admin.ts';
import { esc, renderStatusPage } from '../../src/admin/admin-page.ts';
import type { StatusDocument } from '../../src/admin/status.ts';
import { scrape, valueOf } from '../helpers/prom.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { testConfig } from '../helpers/edge-in-process.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { requirePebble, startChallTestSrv, startPebble } from '../helpers/pebble.ts';
import { freePort } from '../helpers/ports.ts';

const config = testConfig;

test('admin routes: a table of paths and methods; 404 and 405 with Allow', async (t) => {
  const calls: string[] = [];
  const handler = createAdminHandler(
    () => [
      renewRoute((name) => (name === 'opam.test' ? { name, at: '2030-01-01T00:00:00.000Z', in_progress: false } : null)),
      { path: '/healthz', methods: { GET: (_req, res) => sendJson(res, 200, { ok: true }), HEAD: (_req, res) => sendJson(res, 200, { ok: true }) } },
      { path: '/boom', methods: { GET: () => { calls.push('boom'); throw new Error('broken route'); } } },
    ],
    memoryLog(),
    () => ({ token: null, writes: 'open' }),
  );
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const go = async (method: string, path: string) => {
    const res = await request(`${base}${path}`, { method: method as 'GET' });
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  };
  const accepted = await go('POST', '/renew/OPAM.test');
  assert.equal(accepted.status, 202);
  assert.deepEqual(JSON.parse(accepted.body), { accepted: true, name: 'opam.test', at: '2030-01-01T00:00:00.000Z', in_progress: false });
  assert.equal((await go('POST', '/renew/other.test')).status, 404);
  assert.equal((await go('POST', '/renew/../etc')).status, 404);
  assert.equal((await go('POST', '/renew/opam.test.')).status, 202, 'the trailing dot names the same host');
  assert.equal((await go('POST', '/renew/')).status, 404);
  const wrong = await go('GET', '/renew/opam.test');
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.allow, 'POST');
  assert.equal((await go('GET', '/healthz?x=1')).status, 200);
  assert.equal((await go('DELETE', '/healthz')).headers.allow, 'GET, HEAD');
  assert.equal((await go('GET', '/nope')).status, 404);
  assert.equal((await go('GET', '/boom')).status, 500);
  assert.deepEqual(calls, ['boom']);
});

test('an unreachable ACME directory does not stop the start: the edge serves and the order backs off', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const c = config({
    listen: { http: ['127.0.0.1:0'], https: [] },
    access_log: 'off',
    acme: { directory: 'https://127.0.0.1:1/dir', storage: join(dir, 'storage') },
    sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
  });
  const log = memoryLog();
  const edge = await Edge.start(c, { log });
  t.after(() => edge.stop(0));
  const failed = await log.waitFor((e) => e.event === 'acme_order_failed' && e.name === 'opam.test');
  assert.ok(failed.next_attempt, 'a next attempt is scheduled');
  const res = await request(`http://127.0.0.1:${edge.ports.http[0]}/`, { headers: { host: 'opam.test' } });
  await res.body.text();
  assert.equal(res.statusCode, 301);
});

test('edge with acme: names ordered at start, POST /renew/NAME renews, restart serves stored certificates, reload', { timeout: 90_000 }, async (t) => {
  if (!requirePebble(t)) return;
  const dir = tempDir('opam-edge-admin-');
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const httpPort = await freePort();
  const dns = await startChallTestSrv();
  cleanups.push(() => dns.stop());
  for (const name of ['opam.test', 'www.opam.test']) await dns.addA(name, ['127.0.0.1']);
  const pebble = await startPebble({ dir, httpPort, dnsServer: dns.dns });
  cleanups.push(() => pebble.stop());
  const raw = {
    listen: { http: [`127.0.0.1:${httpPort}`], https: [] },
    admin: '127.0.0.1:0',
    admin_writes: 'open',
    access_log: 'off',
    acme: { directory: pebble.directory, ca_bundle: pebble.caBundlePath, storage: join(dir, 'storage'), email: 'ops@example.org' },
    sites: [{ hosts: ['opam.test', 'www.opam.test', '*.wild.test', '127.0.0.1'], upstream: 'http://127.0.0.1:9' }],
  };
  const acmeDeps = { issuerOptions: { poll: { attempts: 20, minMs: 100, maxMs: 500 } } };
  const log = memoryLog();
  let edge = await Edge.start(config(raw), { log, acme: acmeDeps });
  const acmeSerial = (name: string) => edge.certificates.certificates().find((c) => c.source === 'acme' && c.names.includes(name))?.serial;
  cleanups.push(() => edge.stop(0));
  await log.waitFor((e) => e.event === 'acme_certificate_issued' && e.name === 'opam.test');
  await log.waitFor((e) => e.event === 'acme_certificate_issued' && e.name === 'www.opam.test');
  assert.deepEqual(log.named('acme_started')[0]?.names, ['opam.test', 'www.opam.test'], 'every exact host; no wildcard, no IP');
  const first = acmeSerial('opam.test');

  const admin = `http://127.0.0.1:${edge.ports.admin[0]}`;
  const res = await request(`${admin}/renew/opam.test`, { method: 'POST' });
  assert.equal(res.statusCode, 202);
  const body = (await res.body.json()) as { name: string; at: string };
  assert.equal(body.name, 'opam.test');
  const renewed = await log.waitFor((e) => e.event === 'acme_certificate_issued' && e.name === 'opam.test' && e.serial !== first);
  assert.equal(acmeSerial('opam.test'), renewed.serial);
  // Orders counted by name and result; /status shows the ACME certificate and its next renewal.
  const { samples } = await scrape(edge.ports.admin[0]!);
  assert.equal(valueOf(samples, 'opam_edge_acme_renewals_total', { name: 'opam.test', result: 'success' }), 2);
  assert.equal(valueOf(samples, 'opam_edge_acme_renewals_total', { name: 'www.opam.test', result: 'success' }), 1);
  assert.equal(valueOf(samples, 'opam_edge_acme_renewals_total', { name: 'opam.test', result: 'failure' }), 0);
  const doc = (await (await request(`${admin}/status`)).body.json()) as StatusDocument;
  const served = doc.certificates.find((c) => c.serial === renewed.serial)!;
  assert.equal(served.source, 'acme');
  assert.ok(served.next_renewal && Date.parse(served.next_renewal) > Date.now());
  assert.equal(served.last_error, null);
  assert.deepEqual(doc.acme?.map((a) => [a.name, a.failures]), [['opam.test', 0], ['www.opam.test', 0]]);

  // A SIGHUP-style reload with the same acme settings keeps the loop; other settings restart it.
  const running = edge.acme;
  await edge.reload(config({ ...raw, access_log_format: 'json' }));
  assert.equal(edge.acme, running);
  await edge.reload(config({ ...raw, acme: { ...raw.acme, names: ['opam.test'] } }));
  assert.notEqual(edge.acme, running);
  assert.deepEqual(edge.acme?.renewer.status().map((s) => s.name), ['opam.test']);

  // Restart: the stored certificates serve at once and nothing is ordered.
  await edge.stop(0);
  const log2 = memoryLog();
  edge = await Edge.start(config(raw), { log: log2, acme: acmeDeps });
  await edge.acme!.renewer.whenIdle();
  assert.equal(log2.named('acme_order_started').length, 0);
  assert.equal(acmeSerial('opam.test'), renewed.serial);
  assert.ok(acmeSerial('www.opam.test'));
  assert.equal((await request(`http://127.0.0.1:${edge.ports.admin[0]}/renew/unknown.test`, { method: 'POST' })).statusCode, 404);
});

test('the status page (GET /) renders every section and escapes every value', async () => {
  const evil = '<script>alert("x")</script>&\'';
  const doc: StatusDocument = {
    version: '0.1.0',
    pid: 42,
    started_at: '2026-11-26T00:00:00.000Z',
    uptime_s: 3725,
    now: '2026-11-26T01:02:05.000Z',
    health: 'failing',
    reasons: [{ state: 'failing', reason: `no certificate loaded (acme opam.test: ${evil})` }, { state: 'degraded', reason: 'upstream http://opam_live:80 (www.opam.test) has no address' }],
    names_without_certificate: [evil],
    workers: { configured: 2, ready: 1, list: [{ id: 1, pid: 100, ready: true, started_at: '2026-11-26T00:00:01.000Z' }, { id: 2, pid: 101, ready: false, started_at: '2026-11-26T01:00:00.000Z' }] },
    listeners: [{ role: 'https', configured: ['[::]:443'], bound: [], missing: ['[::]:443'] }],
    sites: [{ name: 'opam.test', hosts: ['opam.test', evil], upstream: 'http://opam_live:80', addresses: ['10.0.0.5:80'], resolved_at: '2026-11-26T01:02:00.000Z', resolve_error: evil }],
    certificates: [
      { names: ['opam.test'], issuer: `CN=${evil}`, serial: 'AB', key_type: 'ecdsa', source: 'acme', origin: `/var/lib/${evil}`, not_before: '2026-11-01T00:00:00.000Z', not_after: '2026-11-28T00:00:00.000Z', days_left: 1.9, next_renewal: '2026-11-26T02:00:00.000Z', last_error: evil },
    ],
    acme: [{ name: 'opam.test', next_attempt: '2026-11-26T02:00:00.000Z', reason: 'retry', failures: 2, last_error: evil, serial: null }],
    peers: [{ peer: `http://${evil}/`, last_attempt_at: '2026-11-26T01:00:00.000Z', reached: false, last_error: evil }],
  };
  const html = renderStatusPage(doc);
  assert.ok(html.startsWith('<!doctype html>'));
  assert.ok(!html.includes('<script'), 'no markup from the values');
  assert.ok(!/(src|href)="(https?:)?\/\//.test(html), 'no external asset');
  assert.equal(html.split('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;').length - 1, 10, 'each of the ten evil values, escaped');
  for (const heading of ['Listeners', 'Workers', 'Sites', 'Certificates', 'ACME', 'Challenge peers']) assert.ok(html.includes(`<h2>${heading}</h2>`), heading);
  assert.ok(html.includes('<span class="badge bad">failing</span>'));
  assert.ok(html.includes('<li class="warn">upstream http://opam_live:80 (www.opam.test) has no address</li>'), 'a degraded reason in amber');
  assert.ok(html.includes('<title>opam-edge failing</title>'));
  assert.ok(html.includes('1h 2m'), 'uptime for a person');
  assert.ok(html.includes('class="n bad">1.9<'), 'a certificate about to expire stands out');
  assert.equal(esc(`a<b>"c"&'d'`), 'a&lt;b&gt;&quot;c&quot;&amp;&#39;d&#39;');
});

test('admin listener of a running edge: GET / is the page, /status the JSON, /metrics and /healthz; other methods 405', async (t) => {
  const c = config({
    listen: { http: ['127.0.0.1:0'], https: [] },
    admin: '127.0.0.1:0',
    access_log: 'off',
    sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
  });
  const edge = await Edge.start(c, { log: memoryLog() });
  t.after(() => edge.stop(0));
  const base = `http://127.0.0.1:${edge.ports.admin[0]}`;
  const page = await request(`${base}/`);
  assert.equal(page.statusCode, 200);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  const html = await page.body.text();
  assert.ok(html.includes('<td>opam.test</td>'));
  assert.ok(html.includes('<span class="badge ok">ok</span>'));
  const status = await request(`${base}/status`);
  assert.equal(status.headers['content-type'], 'application/json');
  const doc = (await status.body.json()) as StatusDocument;
  assert.equal(doc.version, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  assert.equal(doc.pid, process.pid);
  assert.equal(doc.health, 'ok');
  assert.deepEqual(doc.workers, { configured: 1, ready: 1, list: [] });
  assert.deepEqual(doc.listeners.map((l) => [l.role, l.missing]), [['http', []], ['https', []], ['admin', []]]);
  assert.deepEqual(doc.sites, [{ name: 'opam.test', hosts: ['opam.test'], upstream: 'http://127.0.0.1:9', addresses: ['127.0.0.1:9'], resolved_at: null, resolve_error: null }]);
  const post = await request(`${base}/metrics`, { method: 'POST' });
  await post.body.text();
  assert.equal(post.statusCode, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  const unknown = await request(`${base}/metrics/x`);
  await unknown.body.text();
  assert.equal(unknown.statusCode, 404);
});

test('admin writes: refused without admin_token_file (403, says how), allowed with admin_writes: open; reads stay open', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const raw = {
    listen: { http: ['127.0.0.1:0'], https: [] },
    admin: '127.0.0.1:0',
    access_log: 'off',
    acme: { directory: 'https://127.0.0.1:1/dir', storage: join(dir, 'storage') },
    sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
  };
  const log = memoryLog();
  const edge = await Edge.start(config(raw), { log });
  t.after(() => edge.stop(0));
  const base = `http://127.0.0.1:${edge.ports.admin[0]}`;
  // Regression: any process (or web page) that reached the admin listener could start an order.
  const closed = await request(`${base}/renew/opam.test`, { method: 'POST' });
  assert.equal(closed.statusCode, 403);
  assert.match(((await closed.body.json()) as { error: string }).error, /set admin_token_file .* or set admin_writes: open/);
  assert.ok(log.named('admin_write_refused').some((e) => e.status === 403));
  const read = await request(`${base}/status`);
  await read.body.text();
  assert.equal(read.statusCode, 200, 'GET needs no token');

  await edge.reload(config({ ...raw, admin_writes: 'open' }));
  const open = await request(`${base}/renew/opam.test`, { method: 'POST' });
  assert.equal(open.statusCode, 202);
  assert.equal(((await open.body.json()) as { name: string }).name, 'opam.test');
  // Open to local tools, still not to a browser on another site.
  const browser = await request(`${base}/renew/opam.test`, { method: 'POST', headers: { 'sec-fetch-site': 'cross-site' } });
  await browser.body.text();
  assert.equal(browser.statusCode, 403);
  // Nor to a page that rebinds its own name to 127.0.0.1: Host and Origin are both its name.
  const rebound = await request(`${base}/renew/opam.test`, {
    method: 'POST',
    headers: { host: `evil.example:${edge.ports.admin[0]}`, origin: `http://evil.example:${edge.ports.admin[0]}` },
  });
  assert.equal(rebound.statusCode, 403);
  assert.match(((await rebound.body.json()) as { error: string }).error, /DNS rebinding/);
  for (const host of [`localhost:${edge.ports.admin[0]}`, '127.0.0.1', `[::1]:${edge.ports.admin[0]}`]) {
    const local = await request(`${base}/renew/opam.test`, { method: 'POST', headers: { host } });
    await local.body.text();
    assert.equal(local.statusCode, 202, host);
  }
});

test('admin writes with admin_token_file: 401 without or with a wrong bearer token, 202 with it; cross-site markers refused even with it; read again on reload', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'admin-token');
  writeFileSync(tokenFile, '  s3cret-token\n');
  const raw = {
    listen: { http: ['127.0.0.1:0'], https: [] },
    admin: '127.0.0.1:0',
    admin_token_file: tokenFile,
    access_log: 'off',
    acme: { directory: 'https://127.0.0.1:1/dir', storage: join(dir, 'storage') },
    sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
  };
  const edge = await Edge.start(config(raw), { log: memoryLog() });
  t.after(() => edge.stop(0));
  const port = edge.ports.admin[0]!;
  const renew = async (headers: Record<string, string>) => {
    const res = await request(`http://127.0.0.1:${port}/renew/opam.test`, { method: 'POST', headers });
    return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as { error?: string; name?: string } };
  };
  const none = await renew({});
  assert.equal(none.status, 401);
  assert.equal(none.headers['www-authenticate'], 'Bearer realm="opam-edge admin"');
  const wrong = await renew({ authorization: 'Bearer s3cret-tokem' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['www-authenticate'], 'Bearer realm="opam-edge admin", error="invalid_token"');
  assert.equal((await renew({ authorization: 'Bearer s3cret-token-longer' })).status, 401);
  assert.equal((await renew({ authorization: 'Basic czNjcmV0LXRva2Vu' })).status, 401);
  const right = { authorization: 'Bearer s3cret-token' };
  const ok = await renew(right);
  assert.equal(ok.status, 202);
  assert.equal(ok.body.name, 'opam.test');
  // The admin's own origin, or a request a person typed (Sec-Fetch-Site: none), pass.
  assert.equal((await renew({ ...right, origin: `http://127.0.0.1:${port}` })).status, 202);
  assert.equal((await renew({ ...right, 'sec-fetch-site': 'same-origin' })).status, 202);
  assert.equal((await renew({ ...right, 'sec-fetch-site': 'none' })).status, 202);
  // Browser cross-site markers: refused even with the right token.
  for (const headers of [{ origin: 'https://evil.example' }, { origin: 'null' }, { origin: `http://localhost:${port}` }, { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }] as Record<string, string>[]) {
    const refused = await renew({ ...right, ...headers });
    assert.equal(refused.status, 403, JSON.stringify(headers));
    assert.match(refused.body.error ?? '', /^cross-site request refused/);
  }

  // The token is read again on reload (a rotated swarm secret).
  writeFileSync(tokenFile, 'rotated\n');
  await edge.reload(config(raw));
  assert.equal((await renew(right)).status, 401);
  assert.equal((await renew({ authorization: 'bearer rotated' })).status, 202);
});

test('admin_token_file: an empty or unreadable file is a config error with its key path', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const empty = join(dir, 'empty');
  writeFileSync(empty, ' \n');
  const base = { admin: '127.0.0.1:0', sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }] };
  const errors = (raw: Record<string, unknown>) => {
    const result = validateConfig(raw, 'admin-test');
    return result.ok ? [] : result.errors;
  };
  assert.deepEqual(errors({ ...base, admin_token_file: empty }), [`admin_token_file: ${empty} is empty`]);
  assert.deepEqual(errors({ ...base, admin_token_file: join(dir, 'missing') }), [`admin_token_file: cannot read ${join(dir, 'missing')}: no such file`]);
  assert.deepEqual(errors({ ...base, admin_writes: 'yes' }), ['admin_writes: must be "open" or null']);
  // With its line in a file.
  const parsed = parseConfig(`admin: "127.0.0.1:0"\nadmin_token_file: ${empty}\nsites: [{hosts: [opam.test], upstream: "http://127.0.0.1:9"}]\n`, 'x.yaml');
  assert.deepEqual(parsed.ok ? [] : parsed.errors, [`admin_token_file (line 2): ${empty} is empty`]);
  const good = join(dir, 'good');
  writeFileSync(good, 'tok\n');
  const ok = validateConfig({ ...base, admin_token_file: good }, 'admin-test');
  assert.ok(ok.ok);
  assert.equal(ok.config.admin_token, 'tok');
});
