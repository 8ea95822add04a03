// Faults on the request path, each with the answer it must get and "nothing lost" checked:
// a well-behaved client runs through all of them and must never fail, and a download in
// flight on a healthy site must complete while another site's upstream breaks.
//   upstream refuses            502 UPSTREAM_REFUSED
//   upstream hangs              504 UPSTREAM_READ_TIMEOUT after upstream_read_timeout
//   upstream resets mid-body    the client's response is cut (h1: connection, h2: stream), others unaffected
//   malformed upstream response 502 UPSTREAM_BAD_RESPONSE, and that upstream connection is closed, never reused
//   DNS SERVFAIL, changing answers under load (pebble-challtestsrv): no request fails, new answers used
//   challenge peer down or slow 404 within the peer timeout, others served meanwhile

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startWorld, startNamedOrigins, HOST } from './lib/world.ts';
import { startSteadyClient } from './lib/steady-client.ts';
import { startFaultyUpstream } from './lib/faulty-upstream.ts';
import { agent, get } from './lib/client.ts';
import type { Got } from './lib/client.ts';
import { recordFigures } from './lib/figures.ts';
import { freePort } from '../helpers/ports.ts';
import { requireTool } from '../helpers/tools.ts';
import { rawRequest } from '../helpers/raw-http.ts';

type Fault = { name: string; expected: string; got: string; ok: boolean };
const faults: Fault[] = [];

function record(name: string, expected: string, got: string, ok: boolean): void {
  faults.push({ name, expected, got, ok });
}

test('upstream faults: refused, hanging, reset mid-body, malformed; challenge peers down or slow', { timeout: 300_000 }, async (t) => {
  const faulty = await startFaultyUpstream();
  t.after(() => faulty.close());
  const closedPort = await freePort();
  // A challenge peer that answers after 8 s (past the 5 s peer timeout), one that is not there.
  const slowPeer = createServer((_req, res) => setTimeout(() => res.end('late'), 8000));
  await new Promise<void>((r) => slowPeer.listen(0, '127.0.0.1', r));
  t.after(() => {
    slowPeer.closeAllConnections();
    return new Promise<void>((r) => slowPeer.close(() => r()));
  });
  const world = await startWorld(t, {
    limits: { upstream_read_timeout: '2s', upstream_connect_timeout: '2s' },
    extra: {
      challenges: { peers: [`http://127.0.0.1:${closedPort}`, `http://127.0.0.1:${(slowPeer.address() as AddressInfo).port}`] },
    },
    upstream: (origin) => `http://127.0.0.1:${origin.port}`,
  });
  // Two more sites, written into the config and reloaded: a refused upstream and the faulty one.
  world.config.sites = [
    ...(world.config.sites as unknown[]),
    { hosts: ['refused.test'], upstream: `http://127.0.0.1:${closedPort}` },
    { hosts: ['faulty.test'], upstream: `http://127.0.0.1:${faulty.port}` },
  ];
  world.edge.writeConfig(world.config);
  world.edge.signal('SIGHUP');
  await world.edge.waitForEvent((e) => e.event === 'reloaded');
  const { httpsPort, httpPort, edge } = world;
  const steady = startSteadyClient({ httpsPort, httpPort });
  const h1 = agent(false);
  const h2 = agent(true);
  t.after(() => Promise.all([h1.close(), h2.close()]));
  const eventCount = (code: string) => edge.events.filter((e) => e.event === 'upstream_error' && e.code === code).length;

  await t.test('upstream refuses: 502', async () => {
    for (const a of [h1, h2]) {
      const got = await get(a, httpsPort, 'refused.test', '/');
      record(`upstream refuses (${a === h1 ? 'h1' : 'h2'})`, '502', String(got.status), got.status === 502);
      assert.equal(got.status, 502);
    }
    assert.ok(eventCount('UPSTREAM_REFUSED') >= 2);
  });

  await t.test('upstream hangs: 504 after upstream_read_timeout', async () => {
    const got = await get(h1, httpsPort, 'faulty.test', '/hang');
    record('upstream hangs (h1)', '504 after ~2 s', `${got.status} after ${got.ms} ms`, got.status === 504);
    assert.equal(got.status, 504);
    assert.ok(got.ms >= 1900 && got.ms < 6000, `${got.ms} ms`);
    const got2 = await get(h2, httpsPort, 'faulty.test', '/hang');
    record('upstream hangs (h2)', '504 after ~2 s', `${got2.status} after ${got2.ms} ms`, got2.status === 504);
    assert.equal(got2.status, 504);
    assert.ok(eventCount('UPSTREAM_READ_TIMEOUT') >= 2);
  });

  await t.test('upstream resets mid-body: that client is cut, a download beside it completes', async () => {
    for (const a of [h1, h2]) {
      const size = 4 * 1024 * 1024;
      const download = get(agent(a === h2), httpsPort, HOST, `/size/${size}`);
      const cut: Got = await get(a, httpsPort, 'faulty.test', '/reset');
      const whole = await download;
      const label = a === h1 ? 'h1' : 'h2';
      record(`upstream resets mid-body (${label})`, 'client cut, the download beside it whole', `${cut.status} then ${cut.error ?? 'no error'} after ${cut.bytes} bytes; download ${whole.bytes}/${size} bytes`, cut.error !== null && whole.bytes === size);
      assert.equal(cut.status, 200, 'the head had gone out');
      assert.ok(cut.error !== null, `a cut body must not look complete (${cut.bytes} bytes)`);
      assert.ok(cut.bytes < 1048576);
      assert.equal(whole.error, null);
      assert.equal(whole.bytes, size);
    }
  });

  await t.test('malformed upstream response: 502, and that upstream connection is discarded', async () => {
    const ok1 = await get(h1, httpsPort, 'faulty.test', '/ok');
    assert.equal(ok1.status, 200);
    const bad = await get(h1, httpsPort, 'faulty.test', '/malformed');
    const after = await get(h1, httpsPort, 'faulty.test', '/ok-after');
    await new Promise((r) => setTimeout(r, 200));
    const badConn = faulty.conns.find((c) => c.paths.includes('/malformed'))!;
    const afterConn = faulty.conns.find((c) => c.paths.includes('/ok-after'))!;
    const discarded = badConn.closed && badConn.paths.at(-1) === '/malformed' && afterConn !== badConn;
    record('malformed upstream response', '502, connection discarded', `${bad.status}; connection ${badConn.closed ? 'closed' : 'OPEN'} after ${badConn.paths.length} request(s); next request on ${afterConn === badConn ? 'THE SAME' : 'a new'} connection`, bad.status === 502 && discarded);
    assert.equal(bad.status, 502);
    assert.ok(eventCount('UPSTREAM_BAD_RESPONSE') >= 1);
    assert.equal(after.status, 200);
    assert.ok(badConn.closed, 'the connection that carried the malformed response is closed');
    assert.equal(badConn.paths.at(-1), '/malformed', 'nothing was sent on it afterwards');
    assert.notEqual(afterConn, badConn);
  });

  await t.test('challenge peers down and slow: 404 within the peer timeout, port 80 serves others meanwhile', async () => {
    const started = Date.now();
    const res = await rawRequest(httpPort, `GET /.well-known/acme-challenge/tok_${Date.now()} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, { quietMs: 12_000 });
    const ms = Date.now() - started;
    const failures = edge.events.filter((e) => e.event === 'peer_forward_failed').length;
    record('challenge peer down, next peer slow', '404 after ~5 s (peer timeout), both failures logged', `${res.status} after ${ms} ms; ${failures} peer_forward_failed`, res.status === 404 && failures >= 2);
    assert.equal(res.status, 404);
    assert.ok(ms >= 4500 && ms < 9000, `${ms} ms`);
    assert.ok(failures >= 2);
  });

  const served = await steady.stop();
  record('well-behaved client during the upstream faults', '0 failed', `${served.ok} ok, ${served.failed} failed`, served.failed === 0);
  assert.equal(served.failed, 0, served.errors.join('\n'));
  assert.equal(edge.events.filter((e) => e.event === 'request_failed').length, 0);
  assert.equal(edge.child.exitCode, null);
});

test('DNS SERVFAIL and changing answers under load: no request fails, new answers are used', { timeout: 120_000 }, async (t) => {
  if (!requireTool(t, 'pebble-challtestsrv', 'pebble')) return;
  const { dns, a, b, upstream } = await startNamedOrigins(t);
  const world = await startWorld(t, { resolver: { servers: [dns.server], valid: '1s' }, upstream: () => upstream });
  const { edge, httpsPort } = world;
  await edge.waitForEvent((e) => e.event === 'upstream_addresses_changed' || e.event === 'upstream_resolved', 5000).catch(() => {});
  // Load: 4 loops of requests, some held 300 ms at the origin so that changes land mid-request.
  let stop = false;
  const results = { ok: 0, failed: 0, errors: [] as string[] };
  const loops = Array.from({ length: 4 }, async (_, i) => {
    const d = agent(i % 2 === 1);
    while (!stop) {
      const got = await get(d, httpsPort, HOST, i === 0 ? '/delay/300' : '/');
      if (got.status === 200 && got.error === null) results.ok++;
      else {
        results.failed++;
        if (results.errors.length < 10) results.errors.push(`${got.status} ${got.error}`);
      }
    }
    await d.close();
  });
  const phase = async (ms: number) => {
    const before = { a: a.completed, b: b.completed };
    await new Promise((r) => setTimeout(r, ms));
    return { a: a.completed - before.a, b: b.completed - before.b };
  };
  const p1 = await phase(2500);
  await dns.setA('app.test', ['127.0.0.3']);
  await phase(1800); // the change is picked up within `valid`
  const p2 = await phase(2500);
  await dns.setServfail('app.test', true);
  await edge.waitForEvent((e) => e.event === 'upstream_resolve_failed', 5000);
  const p3 = await phase(2500);
  await dns.setServfail('app.test', false);
  await dns.setA('app.test', ['127.0.0.2', '127.0.0.3']);
  await phase(1800);
  const p4 = await phase(2500);
  stop = true;
  await Promise.all(loops);
  const changes = edge.events.filter((e) => e.event === 'upstream_addresses_changed').length;
  const ok = results.failed === 0 && p1.b === 0 && p2.a === 0 && p3.a === 0 && p3.b > 0 && p4.a > 0 && p4.b > 0;
  record(
    'DNS answers changing under load, then SERVFAIL',
    'no failed request; new answer used; last good kept on SERVFAIL',
    `${results.ok} ok, ${results.failed} failed; [.2] → a ${p1.a}/b ${p1.b}; [.3] → a ${p2.a}/b ${p2.b}; SERVFAIL → a ${p3.a}/b ${p3.b}; [.2,.3] → a ${p4.a}/b ${p4.b}; ${changes} changes logged`,
    ok,
  );
  assert.equal(results.failed, 0, results.errors.join('\n'));
  assert.equal(p1.b, 0, 'only 127.0.0.2 before the change');
  assert.ok(p1.a > 0);
  assert.equal(p2.a, 0, 'the new answer is used at once, 127.0.0.2 drained');
  assert.ok(p2.b > 0);
  assert.equal(p3.a, 0, 'SERVFAIL keeps the last good answer');
  assert.ok(p3.b > 0);
  assert.ok(p4.a > 0 && p4.b > 0, 'round-robin over both');
  assert.ok(edge.events.some((e) => e.event === 'upstream_resolve_failed'));
});

// The run's figures (lib/figures.ts) are written once every test has run: a report, not a test.
after(() => {
  recordFigures('faults-upstream', {
    title: 'Faults on the request path',
    by: 'npm run test:hardening (faults-upstream.hardening.ts)',
    rows: [
      ['faults survived', `${faults.filter((f) => f.ok).length} of ${faults.length}`],
      ['requests lost', faults.every((f) => f.ok) ? 0 : 'see below'],
      ...faults.map((f) => [`${f.ok ? '✓' : '✗'} ${f.name} (expected: ${f.expected})`, f.got] as [string, string]),
    ],
  });
});
