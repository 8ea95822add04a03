// workers > 1 (docs/behaviour.md, "Workers"): a primary and its workers, as real processes.
// Each worker binds its own SO_REUSEPORT socket; the primary owns ACME, tokens and the admin
// listener, and every worker answers the node's tokens and serves the certificates it obtains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startEdgeProcess, tempDir } from './helpers/edge-process.ts';
import type { EdgeProcess } from './helpers/edge-process.ts';
import { makeCert } from './helpers/certs.ts';
import { startOrigin } from './helpers/origin.ts';
import { requirePebble, startChallTestSrv, startPebble } from './helpers/pebble.ts';
import { freePort } from './helpers/ports.ts';
import { parseConfig } from '../src/config.ts';
import { configFromWire } from '../src/cluster.ts';

const pids = (edge: EdgeProcess, event: string, from = 0) => new Set(edge.events.slice(from).filter((e) => e.event === event).map((e) => e.pid));

async function get(url: string, agent: Agent, host = 'opam.test'): Promise<{ status: number; body: string }> {
  const res = await request(url, { dispatcher: agent, headers: { host } });
  return { status: res.statusCode, body: await res.body.text() };
}

test('two workers serve one port each on SO_REUSEPORT; reload reaches both; a dead worker is replaced; SIGTERM stops all', { timeout: 60_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const origin = await startOrigin();
  t.after(() => origin.close());
  const cert = await makeCert({ names: ['opam.test'], dir });
  const [http, https] = [await freePort(), await freePort()];
  const config = {
    listen: { http: [`127.0.0.1:${http}`], https: [`127.0.0.1:${https}`] },
    workers: 2,
    tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
    access_log: 'off',
    sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.1:${origin.port}` }],
  };
  const edge = await startEdgeProcess(config, { waitFor: 'workers_started' });
  t.after(() => edge.stop());
  const primary = edge.child.pid;
  const workers = pids(edge, 'worker_ready');
  assert.equal(workers.size, 1, 'worker_ready is logged by the primary');
  const ready = edge.events.filter((e) => e.event === 'worker_ready');
  assert.equal(new Set(ready.map((e) => e.worker_pid)).size, 2, 'two workers became ready');
  assert.equal(pids(edge, 'started').size, 3, 'the primary and two workers each started');
  assert.ok(!edge.events.some((e) => e.event === 'listening' && e.pid === primary && e.role !== 'admin'), 'the primary binds no http/https port');

  const agent = new Agent({ connect: { rejectUnauthorized: false, servername: 'opam.test' }, pipelining: 0 });
  t.after(() => agent.close());
  for (let i = 0; i < 20; i++) assert.equal((await get(`https://127.0.0.1:${https}/`, agent)).status, 200);
  assert.equal((await get(`http://127.0.0.1:${http}/x`, agent)).status, 301);

  // SIGHUP: the primary validates, then every worker reloads the same text.
  const from = edge.events.length;
  edge.signal('SIGHUP');
  await edge.waitForEvent((e) => e.event === 'reloaded' && e.pid === primary);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(pids(edge, 'reloaded', from).size, 3, 'the primary and both workers reloaded');

  // A broken config is refused by the primary; workers never see it.
  const refusedFrom = edge.events.length;
  edge.writeConfig('sites: []\nbogus: 1\n');
  edge.signal('SIGHUP');
  await edge.waitForEvent((e) => e.event === 'reload_refused' && edge.events.indexOf(e) >= refusedFrom);
  assert.equal((await get(`https://127.0.0.1:${https}/`, agent)).status, 200);
  edge.writeConfig(config);

  // A worker killed outright is replaced; the other keeps serving meanwhile.
  const killFrom = edge.events.length;
  process.kill(Number(ready[0]!.worker_pid), 'SIGKILL');
  await edge.waitForEvent((e) => e.event === 'worker_exited' && edge.events.indexOf(e) >= killFrom);
  for (let i = 0; i < 10; i++) assert.equal((await get(`https://127.0.0.1:${https}/`, agent)).status, 200);
  await edge.waitForEvent((e) => e.event === 'worker_ready' && edge.events.indexOf(e) >= killFrom, 15_000);

  edge.signal('SIGTERM');
  const exit = await edge.exited;
  assert.equal(exit.code, 0);
  assert.equal(pids(edge, 'stopped').size, 3, 'the primary and both workers stopped');
});

test('workers on port 0 share the primary\'s socket (node:cluster), so tests and ephemeral ports work', { timeout: 30_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const edge = await startEdgeProcess(
    { listen: { http: ['127.0.0.1:0'], https: [] }, workers: 2, access_log: 'off', sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }] },
    { waitFor: 'workers_started' },
  );
  t.after(() => edge.stop());
  const ports = new Set(edge.ports.http);
  assert.equal(ports.size, 1, `both workers got the same port (${[...ports].join(', ')})`);
  const agent = new Agent();
  t.after(() => agent.close());
  assert.equal((await get(`http://127.0.0.1:${[...ports][0]}/`, agent)).status, 301);
});

test('ACME with two workers: the primary orders, whichever worker the CA reaches answers, both serve the certificate', { timeout: 120_000 }, async (t) => {
  if (!requirePebble(t)) return;
  const dir = tempDir('opam-edge-cluster-');
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const origin = await startOrigin();
  cleanups.push(() => origin.close());
  const [http, https] = [await freePort(), await freePort()];
  const dns = await startChallTestSrv();
  cleanups.push(() => dns.stop());
  for (const name of ['opam.test', 'www.opam.test']) await dns.addA(name, ['127.0.0.1']);
  const pebble = await startPebble({ dir, httpPort: http, dnsServer: dns.dns });
  cleanups.push(() => pebble.stop());
  const edge = await startEdgeProcess(
    {
      listen: { http: [`127.0.0.1:${http}`], https: [`127.0.0.1:${https}`] },
      workers: 2,
      admin: '127.0.0.1:0',
      access_log: 'off',
      acme: { directory: pebble.directory, ca_bundle: pebble.caBundlePath, storage: join(dir, 'storage'), email: 'ops@example.org' },
      sites: [{ hosts: ['opam.test', 'www.opam.test'], upstream: `http://127.0.0.1:${origin.port}` }],
    },
    { waitFor: 'workers_started' },
  );
  cleanups.push(() => edge.stop());
  const primary = edge.child.pid;
  const issued = await edge.waitForEvent((e) => e.event === 'acme_certificate_issued' && e.name === 'opam.test', 60_000);
  await edge.waitForEvent((e) => e.event === 'acme_certificate_issued' && e.name === 'www.opam.test', 60_000);
  assert.equal(issued.pid, primary, 'the primary ran the order');
  // Validation requests were answered by workers (the primary has no port 80).
  const workerSet = [...pids(edge, 'started')].filter((p) => p !== primary);
  assert.equal(workerSet.length, 2);
  await new Promise((r) => setTimeout(r, 300));
  const loaded = edge.events.filter((e) => e.event === 'certificate_loaded' && (e.names as string[]).includes('opam.test') && e.serial === issued.serial);
  for (const pid of workerSet) assert.ok(loaded.some((e) => e.pid === pid), `worker ${pid} loaded the new certificate`);
  // New handshakes on the shared port (whichever worker takes them) get it, chained to Pebble.
  for (let i = 0; i < 10; i++) {
    const fresh = new Agent({ connect: { ca: pebble.roots(), servername: 'opam.test' } });
    const res = await get(`https://127.0.0.1:${https}/`, fresh);
    await fresh.close();
    assert.equal(res.status, 200);
  }
});

test('the config crosses to a worker parsed, as JSON: configFromWire() gives back the same frozen config, peers as URLs', () => {
  for (const example of ['opam-4.yaml', 'opam-5.yaml']) {
    const parsed = parseConfig(readFileSync(join(import.meta.dirname, '..', 'deploy', 'examples', example), 'utf8'), example);
    assert.ok(parsed.ok, example);
    const crossed = configFromWire(JSON.parse(JSON.stringify(parsed.config)));
    assert.deepEqual(crossed, parsed.config, example);
    assert.ok(crossed.challenges.peers.length > 0 && crossed.challenges.peers.every((p) => p instanceof URL), `${example}: peers are URLs`);
    assert.ok(Object.isFrozen(crossed.challenges) && Object.isFrozen(crossed.sites[0]), `${example}: frozen`);
  }
});
