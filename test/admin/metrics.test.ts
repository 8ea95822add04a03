// GET /metrics on the admin listener: the counts after known traffic, in one process and
// with two workers (the node's totals are the sum of the workers', and survive a worker
// being replaced); nothing is recorded when admin is off at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import { tempDir, startEdgeProcess } from '../helpers/edge-process.ts';
import { makeCert } from '../helpers/certs.ts';
import { startOrigin } from '../helpers/origin.ts';
import { freePort } from '../helpers/ports.ts';
import { exchange, handshake } from '../helpers/tls-client.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { h1Request, h2Request, h2Session } from '../helpers/clients.ts';
import { scrape, valueOf } from '../helpers/prom.ts';
import type { StatusDocument } from '../../src/admin/status.ts';

/** One HTTPS/1.1 request on a new connection (so one full handshake each). */
async function httpsStatus(port: number, host: string): Promise<number> {
  return (await h1Request(port, null, { headers: { host } })).status;
}

/** `count` requests on one HTTP/2 session (so one full handshake). */
async function h2Gets(port: number, count: number): Promise<number[]> {
  const session = h2Session(port, null);
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await h2Request(session)).status);
  await new Promise<void>((resolve) => session.close(() => resolve()));
  return statuses;
}

async function challenge(port: number, token: string): Promise<number> {
  const res = await request(`http://127.0.0.1:${port}/.well-known/acme-challenge/${token}`, { headers: { host: 'opam.test' } });
  await res.body.text();
  return res.statusCode;
}

test('one process: /metrics counts requests, durations, upstream errors, challenges and handshakes; the state gauges', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['opam.test', 'www.opam.test'], dir });
  const origin = await startOrigin();
  t.after(() => origin.close());
  // A challenge peer that knows one token.
  const peer = createServer((req, res) => {
    const ok = req.url === '/.well-known/acme-challenge/peer-token';
    res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' });
    res.end(ok ? 'peer-token.thumb' : 'no');
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => peer.close(() => resolve())));
  const webroot = join(dir, 'www');
  mkdirSync(join(webroot, '.well-known', 'acme-challenge'), { recursive: true });
  writeFileSync(join(webroot, '.well-known', 'acme-challenge', 'web-token'), 'web-token.thumb');
  const closed = await freePort();
  const result = validateConfig(
    {
      listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] },
      admin: '127.0.0.1:0',
      access_log: 'off',
      tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
      challenges: { webroot, peers: [`http://127.0.0.1:${(peer.address() as AddressInfo).port}`] },
      sites: [
        { hosts: ['opam.test', 'www.opam.test'], upstream: `http://127.0.0.1:${origin.port}` },
        { hosts: ['refused.test'], upstream: `http://127.0.0.1:${closed}` },
      ],
    },
    'metrics-test',
  );
  assert.ok(result.ok);
  const edge = await Edge.start(result.config, { log: memoryLog(), peerTimeoutMs: 2000 });
  t.after(() => edge.stop(0));
  const https = edge.ports.https[0]!;
  const http = edge.ports.http[0]!;
  const admin = edge.ports.admin[0]!;

  // Nothing yet: the families are there, the traffic counters at zero.
  const before = await scrape(admin);
  assert.equal(before.status, 200);
  assert.equal(before.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(valueOf(before.samples, 'opam_edge_tls_handshakes_total', { result: 'full' }), 0);
  assert.equal(valueOf(before.samples, 'opam_edge_requests_total', { site: 'opam.test', code_class: '2xx', proto: 'http/1.1' }), undefined);

  for (let i = 0; i < 3; i++) assert.equal(await httpsStatus(https, 'opam.test'), 200); // 3 full handshakes
  assert.deepEqual(await h2Gets(https, 2), [200, 200]); // 1 full handshake
  assert.equal(await httpsStatus(https, 'nope.test'), 421); // 1
  for (let i = 0; i < 2; i++) assert.equal(await httpsStatus(https, 'refused.test'), 502); // 2
  const first = await handshake(https, { servername: 'opam.test' }); // 1 full...
  const session = await first.session();
  first.socket.destroy();
  const resumed = await handshake(https, { servername: 'opam.test', session, ALPNProtocols: ['http/1.1'] }); // ...then 1 resumed
  assert.equal(resumed.reused, true);
  // A request first: with TLS 1.3 the server's side ends after the client's, so closing at
  // once would fail the server's half of the handshake.
  assert.equal((await exchange(resumed.socket, '/', 'opam.test')).status, 200);
  resumed.socket.destroy();
  await assert.rejects(handshake(https, { servername: 'unknown.test' })); // 1 failed (unknown_sni: reject)

  edge.challenges.set('memory-token', 'memory-token.thumb');
  assert.equal(await challenge(http, 'memory-token'), 200);
  assert.equal(await challenge(http, 'web-token'), 200);
  assert.equal(await challenge(http, 'peer-token'), 200);
  assert.equal(await challenge(http, 'missing-token'), 404);
  assert.equal(await challenge(http, 'missing-again'), 404);

  const { samples } = await scrape(admin);
  const v = (name: string, labels: Record<string, string>) => valueOf(samples, `opam_edge_${name}`, labels);
  assert.equal(v('requests_total', { site: 'opam.test', code_class: '2xx', proto: 'http/1.1' }), 4);
  assert.equal(v('requests_total', { site: 'opam.test', code_class: '2xx', proto: 'h2' }), 2);
  assert.equal(v('requests_total', { site: '-', code_class: '4xx', proto: 'http/1.1' }), 1, '421 before a site is known');
  assert.equal(v('requests_total', { site: 'refused.test', code_class: '5xx', proto: 'http/1.1' }), 2);
  assert.equal(v('request_duration_seconds_count', { site: 'opam.test' }), 6);
  assert.equal(v('request_duration_seconds_bucket', { site: 'opam.test', le: '+Inf' }), 6);
  assert.ok(v('request_duration_seconds_sum', { site: 'opam.test' })! >= 0);
  assert.equal(v('upstream_errors_total', { site: 'refused.test', kind: 'refused' }), 2);
  assert.equal(v('upstream_errors_total', { site: 'opam.test', kind: 'refused' }), 0);
  assert.equal(v('upstream_errors_total', { site: 'opam.test', kind: 'no_address' }), 0);
  assert.equal(v('challenge_requests_total', { source: 'memory' }), 1);
  assert.equal(v('challenge_requests_total', { source: 'webroot' }), 1);
  assert.equal(v('challenge_requests_total', { source: 'peer' }), 1);
  assert.equal(v('challenge_requests_total', { source: 'miss' }), 2);
  assert.equal(v('tls_handshakes_total', { result: 'full' }), 8);
  assert.equal(v('tls_handshakes_total', { result: 'resumed' }), 1);
  assert.equal(v('tls_handshakes_total', { result: 'failed' }), 1);
  assert.equal(v('upstream_addresses', { site: 'opam.test' }), 1);
  assert.equal(v('upstream_addresses', { site: 'refused.test' }), 1);
  const notAfter = Math.floor(cert.notAfter.getTime() / 1000);
  assert.equal(v('certificate_not_after_seconds', { name: 'opam.test' }), notAfter);
  assert.equal(v('certificate_not_after_seconds', { name: 'www.opam.test' }), notAfter);
  // The default process metrics come along.
  assert.ok(valueOf(samples, 'process_cpu_seconds_total')! > 0);
  assert.ok(samples.some((s) => s.name === 'nodejs_heap_size_used_bytes'));

  // HEAD answers the same headers without a body.
  const head = await request(`http://127.0.0.1:${admin}/metrics`, { method: 'HEAD' });
  assert.equal(head.statusCode, 200);
  assert.equal(await head.body.text(), '');
});

test('admin off at start: no metrics object, nothing recorded; turning admin on by reload answers /metrics 503 and says why', async (t) => {
  const raw = { listen: { http: ['127.0.0.1:0'], https: [] }, access_log: 'off', sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }] };
  const parsed = validateConfig(raw, 'off');
  assert.ok(parsed.ok);
  const log = memoryLog();
  const edge = await Edge.start(parsed.config, { log });
  t.after(() => edge.stop(0));
  assert.equal(edge.metrics, null);
  const on = validateConfig({ ...raw, admin: '127.0.0.1:0' }, 'on');
  assert.ok(on.ok);
  await edge.reload(on.config);
  assert.ok(log.named('reload_partial').some((e) => e.key === 'admin'));
  const { status } = await scrape(edge.ports.admin[0]!);
  assert.equal(status, 503);
  const health = await request(`http://127.0.0.1:${edge.ports.admin[0]}/healthz`);
  assert.equal(health.statusCode, 200);
  assert.equal(await health.body.text(), 'ok\n');
});

test('two workers: /metrics sums the workers, state gauges are not summed, a replaced worker keeps its counts', { timeout: 60_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const origin = await startOrigin();
  t.after(() => origin.close());
  const cert = await makeCert({ names: ['opam.test'], dir });
  const deadPeer = `http://127.0.0.1:${await freePort()}/`;
  // Port 0: the workers share the primary's socket, which hands connections out in turn.
  const edge = await startEdgeProcess(
    {
      listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] },
      workers: 2,
      admin: '127.0.0.1:0',
      tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
      challenges: { peers: [deadPeer] },
      access_log: 'off',
      sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.1:${origin.port}` }],
    },
    { waitFor: 'workers_started' },
  );
  t.after(() => edge.stop());
  const admin = edge.ports.admin[0]!;
  const https = edge.ports.https[0]!;
  const http = edge.ports.http[0]!;
  const health = async () => {
    const res = await request(`http://127.0.0.1:${admin}/healthz`);
    return { status: res.statusCode, body: await res.body.text() };
  };
  assert.deepEqual(await health(), { status: 200, body: 'ok\n' });

  for (let i = 0; i < 20; i++) assert.equal(await httpsStatus(https, 'opam.test'), 200);
  for (let i = 0; i < 6; i++) assert.equal(await challenge(http, `missing-${i}`), 404);
  const requests = { site: 'opam.test', code_class: '2xx', proto: 'http/1.1' };
  let { samples } = await scrape(admin);
  assert.equal(valueOf(samples, 'opam_edge_requests_total', requests), 20, 'both workers served; the sum is the node');
  assert.equal(valueOf(samples, 'opam_edge_tls_handshakes_total', { result: 'full' }), 20);
  assert.equal(valueOf(samples, 'opam_edge_challenge_requests_total', { source: 'miss' }), 6);
  assert.equal(valueOf(samples, 'opam_edge_request_duration_seconds_count', { site: 'opam.test' }), 20);
  // Reported by the primary only: not doubled or tripled.
  assert.equal(valueOf(samples, 'opam_edge_certificate_not_after_seconds', { name: 'opam.test' }), Math.floor(cert.notAfter.getTime() / 1000));
  assert.equal(valueOf(samples, 'opam_edge_upstream_addresses', { site: 'opam.test' }), 1);
  assert.ok(valueOf(samples, 'process_cpu_seconds_total')! > 0);

  // A worker killed outright: /healthz says so until its successor is ready, and the node's
  // counters do not go down (the dead worker's last report is kept).
  const ready = edge.events.filter((e) => e.event === 'worker_ready');
  const from = edge.events.length;
  process.kill(Number(ready[0]!.worker_pid), 'SIGKILL');
  await edge.waitForEvent((e) => e.event === 'worker_exited' && edge.events.indexOf(e) >= from);
  // One worker still serves: degraded (200), not failing.
  const sick = await health();
  assert.equal(sick.status, 200);
  assert.match(sick.body, /^degraded: 1 of 2 workers ready\n$/);
  assert.equal(valueOf((await scrape(admin)).samples, 'opam_edge_health', { state: 'degraded' }), 1);
  await edge.waitForEvent((e) => e.event === 'worker_ready' && edge.events.indexOf(e) >= from, 15_000);
  assert.equal((await health()).status, 200);
  ({ samples } = await scrape(admin));
  assert.equal(valueOf(samples, 'opam_edge_requests_total', requests), 20);
  for (let i = 0; i < 4; i++) assert.equal(await httpsStatus(https, 'opam.test'), 200);
  ({ samples } = await scrape(admin));
  assert.equal(valueOf(samples, 'opam_edge_requests_total', requests), 24);
  assert.equal(valueOf(samples, 'opam_edge_challenge_requests_total', { source: 'miss' }), 6);

  const status = (await (await request(`http://127.0.0.1:${admin}/status`)).body.json()) as StatusDocument;
  assert.equal(status.workers.configured, 2);
  assert.equal(status.workers.ready, 2);
  assert.equal(status.workers.list.length, 2);
  assert.deepEqual(status.listeners.map((l) => [l.role, l.bound.length, l.missing]), [['http', 1, []], ['https', 1, []], ['admin', 1, []]]);
  // Only workers forward to peers: their view reaches /status through the primary.
  assert.equal(status.peers[0]?.peer, deadPeer);
  assert.equal(status.peers[0]?.reached, false);
  assert.equal(status.peers[0]?.last_error, 'ECONNREFUSED');
});
