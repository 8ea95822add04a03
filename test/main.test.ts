// The process: signals, reload, graceful stop, as an operator drives them (real processes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEdgeProcess, tempDir } from './helpers/edge-process.ts';
import { get } from './helpers/edge-in-process.ts';
import { refused } from './helpers/ports.ts';
import { makeCert } from './helpers/certs.ts';
import { serialFor } from './helpers/tls-client.ts';

const TOKEN = 'mainTestToken_123';
const site = { hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' };

function webroot(dir: string, name: string, files: Record<string, string>): string {
  const root = join(dir, name);
  mkdirSync(join(root, '.well-known', 'acme-challenge'), { recursive: true });
  for (const [file, content] of Object.entries(files)) writeFileSync(join(root, '.well-known', 'acme-challenge', file), content);
  return root;
}

test('SIGHUP with a broken config: refused and logged, the running config keeps serving', async (t) => {
  const edge = await startEdgeProcess({ listen: { http: ['127.0.0.1:0'], https: [] }, access_log: 'off', sites: [site] });
  t.after(() => edge.stop());
  const port = edge.ports.http![0]!;
  edge.writeConfig('listen: {http: ["127.0.0.1:0"], https: []}\nlimits: {idle_timeout: forever}\nsites: []\n');
  edge.signal('SIGHUP');
  const refusedEvent = await edge.waitForEvent((e) => e.event === 'reload_refused');
  assert.equal(refusedEvent.level, 'error');
  assert.equal(refusedEvent.code, 'CONFIG_INVALID');
  assert.deepEqual(refusedEvent.problems, ['limits.idle_timeout (line 2): invalid duration "forever" (expected e.g. 15s, 2m, 30d)', 'sites (line 3): Too small: expected array to have >=1 items']);
  const res = await get(port, '/still');
  assert.equal(res.status, 301);
  assert.equal(res.headers.location, 'https://opam.test/still');
  assert.equal(edge.events.filter((e) => e.event === 'listening').length, 1);
  // A YAML syntax error is refused the same way.
  edge.writeConfig('listen: [\n');
  edge.signal('SIGHUP');
  await edge.waitForEvent((e) => e.event === 'reload_refused' && String(e.problems).includes('YAML'));
  assert.equal((await get(port, '/')).status, 301);
});

test('SIGHUP with a certificate path typo or an unreadable config file: refused, the old certificate keeps serving (issue 13)', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['opam.test'], dir });
  const config = { listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] }, tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] }, access_log: 'off', sites: [site] };
  const edge = await startEdgeProcess(config);
  t.after(() => edge.stop());
  const https = edge.ports.https![0]!;
  const refusal = async (problem: RegExp) => {
    const from = edge.events.length;
    edge.signal('SIGHUP');
    const event = await edge.waitForEvent((e) => e.event === 'reload_refused' && edge.events.indexOf(e) >= from);
    assert.equal(event.level, 'error');
    assert.equal((event.problems as string[]).length, 1, String(event.problems));
    assert.match((event.problems as string[])[0]!, problem);
    assert.equal(await serialFor(https, 'opam.test'), cert.serial);
    assert.deepEqual(edge.events.slice(from).filter((e) => ['reloaded', 'certificate_removed', 'reload_certificate_problems'].includes(e.event)), []);
    return event;
  };
  const typo = join(dir, 'fullchian.pem');
  edge.writeConfig({ ...config, tls: { certificates: [{ cert: typo, key: cert.keyPath }] } });
  // As `check` says it: key path and line (issue 13, point 1 and 2), once.
  assert.equal((await refusal(/^tls\.certificates\[0\]\.cert \(line \d+\): cannot read .*fullchian\.pem: no such file$/)).code, 'RELOAD_REFUSED');
  // The config file itself: gone, or not a file (root reads any mode, so no chmod test).
  rmSync(edge.configPath);
  assert.equal((await refusal(/cannot read the config file: no such file$/)).code, 'CONFIG_INVALID');
  mkdirSync(edge.configPath);
  await refusal(/cannot read the config file: it is a directory$/);
  rmSync(edge.configPath, { recursive: true });
  edge.writeConfig(config);
  edge.signal('SIGHUP');
  await edge.waitForEvent((e) => e.event === 'reloaded');
  assert.equal(await serialFor(https, 'opam.test'), cert.serial);
  assert.equal(edge.events.filter((e) => e.event === 'listening').length, 2, 'no listener was bound or unbound');
});

test('SIGHUP with a good config: a new webroot and a new http address take effect', async (t) => {
  const edge = await startEdgeProcess({
    listen: { http: ['127.0.0.1:0'], https: [] },
    access_log: 'off',
    challenges: { webroot: null },
    sites: [site],
  });
  t.after(() => edge.stop());
  const oldPort = edge.ports.http![0]!;
  assert.equal((await get(oldPort, `/.well-known/acme-challenge/${TOKEN}`)).status, 404);
  const root = webroot(edge.dir, 'www', { [TOKEN]: `${TOKEN}.fromfile` });
  edge.writeConfig({ listen: { http: ['[::1]:0'], https: [] }, access_log: 'off', challenges: { webroot: root }, sites: [site] });
  edge.signal('SIGHUP');
  await edge.waitForEvent((e) => e.event === 'reloaded');
  const newPort = edge.ports.http![1]!;
  assert.ok(newPort > 0);
  const res = await get(newPort, `/.well-known/acme-challenge/${TOKEN}`, { address: '::1' });
  assert.equal(res.status, 200);
  assert.equal(res.body, `${TOKEN}.fromfile`);
  assert.equal(await refused(oldPort), true);
  assert.ok(edge.events.some((e) => e.event === 'listener_closed' && e.address === '127.0.0.1:0'));
});

test('SIGTERM with a slow request in flight: it completes, new connections are refused, idle keep-alive does not hold the stop, exit 0', async (t) => {
  // A peer that takes 2 s to answer the challenge request.
  const slowPeer = createServer((req, res) => setTimeout(() => res.end(`${req.url!.split('/').pop()}.frompeer`), 2000));
  await new Promise<void>((r) => slowPeer.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => slowPeer.close(() => r())));
  const edge = await startEdgeProcess({
    listen: { http: ['127.0.0.1:0'], https: [] },
    access_log: 'stdout',
    challenges: { peers: [`http://127.0.0.1:${(slowPeer.address() as AddressInfo).port}`] },
    sites: [site],
  });
  t.after(() => edge.stop());
  const port = edge.ports.http![0]!;
  // An idle kept-alive connection (default idle_timeout 75 s, grace 30 s).
  const idle = connect({ host: '127.0.0.1', port });
  idle.on('error', () => {});
  const idleClosed = new Promise<void>((r) => idle.once('close', () => r()));
  idle.write('GET / HTTP/1.1\r\nHost: opam.test\r\n\r\n');
  await new Promise((r) => idle.once('data', r));

  const slow = get(port, `/.well-known/acme-challenge/${TOKEN}`);
  await new Promise((r) => setTimeout(r, 300));
  const signalledAt = Date.now();
  edge.signal('SIGTERM');
  let answered = false;
  void slow.then(() => (answered = true));
  await edge.waitForEvent((e) => e.event === 'stopping');
  await idleClosed;
  // The idle connections are closed a moment before the listening socket, in the same step.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await refused(port), true);
  assert.equal(answered, false, 'the slow request should still be in flight');
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.body, `${TOKEN}.frompeer`);
  const exit = await edge.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(Date.now() - signalledAt < 10_000, 'the idle connection held the stop');
  const stopped = edge.events.find((e) => e.event === 'stopped');
  assert.equal(stopped?.drained, true);
  // The access log was flushed before exit: both requests are in it.
  assert.equal(edge.stdout.filter((l) => / 301 | 200 /.test(l)).length, 2, edge.stdout.join('\n'));
});

test('SIGINT stops as SIGTERM does, exit 0', async (t) => {
  const edge = await startEdgeProcess({ listen: { http: ['127.0.0.1:0'], https: [] }, access_log: 'off', sites: [site] });
  t.after(() => edge.stop());
  edge.signal('SIGINT');
  assert.deepEqual(await edge.exited, { code: 0, signal: null });
  assert.ok(edge.events.some((e) => e.event === 'signal' && e.signal === 'SIGINT'));
});

test('SIGUSR1 reopens the access log file after a rotation (logrotate)', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'logs', 'access.log');
  const running = await startEdgeProcess({ listen: { http: ['127.0.0.1:0'], https: [] }, access_log: path, sites: [site] });
  t.after(() => running.stop());
  const port = running.ports.http![0]!;
  const waitFor = async (file: string, text: string) => {
    const deadline = Date.now() + 5000;
    while (!(existsSync(file) && readFileSync(file, 'utf8').includes(text))) {
      if (Date.now() > deadline) throw new Error(`${text} never reached ${file}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await get(port, '/before');
  await waitFor(path, '/before');
  renameSync(path, `${path}.1`);
  running.signal('SIGUSR1');
  await new Promise((r) => setTimeout(r, 200));
  await get(port, '/after');
  await waitFor(path, '/after');
  assert.doesNotMatch(readFileSync(`${path}.1`, 'utf8'), /\/after/);
});
