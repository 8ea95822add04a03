// Edge.reload is all or nothing (issue 13, point 1): a reload that start-up would refuse
// changes nothing (certificates, listeners, upstreams, ACME) and lists every problem in
// `reload_refused`; a good one applies whole. Real sockets and TLS handshakes on loopback.

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { Edge } from '../src/edge.ts';
import { makeCert } from './helpers/certs.ts';
import type { TestCert } from './helpers/certs.ts';
import { tempDir } from './helpers/edge-process.ts';
import { testConfig } from './helpers/edge-in-process.ts';
import { memoryLog } from './helpers/event-log.ts';
import { serialFor } from './helpers/tls-client.ts';
import { startOrigin } from './helpers/origin.ts';

type World = { dir: string; cert: TestCert; other: TestCert; busy: number; edge: Edge; log: ReturnType<typeof memoryLog>; base: Record<string, any> };

const build = testConfig;

/** A port something else holds, so binding it fails (EADDRINUSE). */
async function holdPort(t: TestContext): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

async function world(t: TestContext, upstream = 'http://127.0.0.1:1'): Promise<World> {
  const dir = tempDir('opam-edge-reload-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['e.test'], dir, stem: 'e' });
  const other = await makeCert({ names: ['other.test'], dir, stem: 'other' });
  const base = {
    listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] },
    tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
    access_log: 'off',
    sites: [{ hosts: ['e.test'], upstream }],
  };
  const log = memoryLog();
  const edge = await Edge.start(build(base), { log, certWatchIntervalMs: 60_000 });
  t.after(() => edge.stop(1000));
  return { dir, cert, other, busy: await holdPort(t), edge, log, base };
}

/** What must not move when a reload is refused. */
async function running(w: World) {
  return {
    addresses: w.edge.addresses,
    serial: await serialFor(w.edge.ports.https[0]!, 'e.test'),
    certificates: w.edge.certificates.certificates().map((c) => c.serial),
    config: w.edge.config,
  };
}

const refusals: { name: string; change: (w: World) => Record<string, unknown>; problems: (w: World) => RegExp[] }[] = [
  {
    name: 'a tls.certificates cert path that does not exist (the typo of the issue)',
    change: (w) => ({ tls: { certificates: [{ cert: join(w.dir, 'typo.pem'), key: w.cert.keyPath }] } }),
    problems: (w) => [new RegExp(`^tls\\.certificates\\[0\\]\\.cert: cannot read ${join(w.dir, 'typo.pem')}: no such file$`)],
  },
  {
    name: 'a key that does not match its certificate',
    change: (w) => ({ tls: { certificates: [{ cert: w.cert.certPath, key: w.other.keyPath }] } }),
    problems: () => [/^tls\.certificates\[0\]\.key: \S+: does not match tls\.certificates\[0\]\.cert/],
  },
  {
    name: 'a new listen address that cannot be bound',
    change: (w) => ({ listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0', `127.0.0.1:${w.busy}`] } }),
    problems: (w) => [new RegExp(`^listen\\.https\\[1\\]: .*127\\.0\\.0\\.1:${w.busy}: EADDRINUSE`)],
  },
  {
    name: 'ACME settings start-up refuses (ca_bundle unreadable, storage not a directory)',
    change: (w) => {
      writeFileSync(join(w.dir, 'a-file'), 'not a directory');
      return { acme: { directory: 'https://127.0.0.1:1/dir', storage: join(w.dir, 'a-file', 'storage'), ca_bundle: join(w.dir, 'no-ca.pem') } };
    },
    problems: () => [/^acme\.ca_bundle: cannot read .*no-ca\.pem: no such file$/, /^acme\.storage: cannot use .*a-file\/storage: a parent is not a directory$/],
  },
  {
    name: 'a missing tls.certbot directory when nothing else provides a certificate',
    change: (w) => ({ tls: { certificates: [], certbot: join(w.dir, 'letsencrypt') } }),
    problems: () => [/^tls\.certbot: cannot read .*letsencrypt\/live: no such file; nothing else provides a certificate/],
  },
  {
    name: 'the access log directory cannot be created',
    change: (w) => ({ access_log: join(w.dir, 'a-file', 'access.log') }),
    problems: () => [/^access_log: cannot open .*a-file\/access\.log: (a parent is not a directory|EEXIST)$/],
  },
];

for (const refusal of refusals) {
  test(`reload refused, nothing changes: ${refusal.name}`, async (t) => {
    const w = await world(t);
    writeFileSync(join(w.dir, 'a-file'), 'not a directory');
    const before = await running(w);
    const problems = await w.edge.reload(build({ ...w.base, ...refusal.change(w) }));
    const expected = refusal.problems(w);
    assert.equal(problems.length, expected.length, problems.join('\n'));
    expected.forEach((re, i) => assert.match(problems[i]!, re));
    const event = w.log.named('reload_refused');
    assert.equal(event.length, 1);
    assert.equal(event[0]!.level, 'error');
    assert.equal(event[0]!.code, 'RELOAD_REFUSED');
    assert.deepEqual(event[0]!.problems, problems);
    assert.deepEqual(w.log.named('reloaded'), []);
    assert.deepEqual(w.log.named('certificate_removed'), []);
    assert.deepEqual(await running(w), before, 'the old certificate serves on the same listeners, with the same config');
  });
}

test('reload refused with several problems at once lists every one; then a good reload applies', async (t) => {
  const w = await world(t);
  writeFileSync(join(w.dir, 'a-file'), 'x');
  const before = await running(w);
  const problems = await w.edge.reload(
    build({
      ...w.base,
      listen: { http: [`127.0.0.1:${w.busy}`], https: ['127.0.0.1:0'] },
      tls: { certificates: [{ cert: join(w.dir, 'typo.pem'), key: w.cert.keyPath }, { cert: w.other.certPath, key: w.cert.keyPath }] },
      acme: { directory: 'https://127.0.0.1:1/dir', storage: join(w.dir, 'a-file', 'storage') },
    }),
  );
  assert.deepEqual(
    problems.map((p) => p.split(':')[0]),
    ['listen.http[0]', 'tls.certificates[0].cert', 'tls.certificates[1].key', 'acme.storage'],
    problems.join('\n'),
  );
  assert.deepEqual(await running(w), before);

  // The same edge then takes a good reload: a new certificate, a new https address.
  const v2 = await makeCert({ names: ['e.test'], dir: w.dir, stem: 'v2' });
  const problemsAfter = await w.edge.reload(
    build({ ...w.base, listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0', '[::1]:0'] }, tls: { certificates: [{ cert: v2.certPath, key: v2.keyPath }] } }),
  );
  assert.deepEqual(problemsAfter, []);
  assert.equal(w.log.named('reloaded').length, 1);
  assert.equal(w.edge.ports.https.length, 2);
  assert.equal(await serialFor(w.edge.ports.https[0]!, 'e.test'), v2.serial);
  assert.equal(await serialFor(w.edge.ports.https[1]!, 'e.test', { host: '::1' }), v2.serial);
});

test('under load: requests run through three refused reloads and one accepted, none fails', { timeout: 30_000 }, async (t) => {
  const origin = await startOrigin();
  t.after(() => origin.close());
  const w = await world(t, `http://127.0.0.1:${origin.port}`);
  const port = w.edge.ports.https[0]!;
  const v2 = await makeCert({ names: ['e.test'], dir: w.dir, stem: 'v2' });
    const agent = new Agent({ connect: { rejectUnauthorized: false, servername: 'e.test' }, connections: 4 });
  t.after(() => agent.close());
  let ok = 0;
  const failures: string[] = [];
  const serials = new Set<string>();
  let running_ = true;
  // Bounded even if an assertion below fails first: the loops end by themselves.
  const deadline = Date.now() + 10_000;
  const going = () => running_ && Date.now() < deadline;
  // Keep-alive requests on 4 connections, and a new TLS connection every 20 ms beside them.
  const keepAlive = async () => {
    while (going()) {
      try {
        const res = await request(`https://127.0.0.1:${port}/load`, { dispatcher: agent, headers: { host: 'e.test' } });
        await res.body.text();
        if (res.statusCode === 200) ok++;
        else failures.push(`status ${res.statusCode}`);
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  const handshakes = async () => {
    while (going()) {
      try {
        serials.add(await serialFor(port, 'e.test'));
      } catch (err) {
        failures.push(`handshake: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const load = [keepAlive(), keepAlive(), keepAlive(), keepAlive(), handshakes()];
  t.after(() => (running_ = false));
  const pause = () => new Promise((r) => setTimeout(r, 400));
  await pause();
  const refusedConfigs = [
    { tls: { certificates: [{ cert: join(w.dir, 'typo.pem'), key: w.cert.keyPath }] } },
    { tls: { certificates: [{ cert: w.cert.certPath, key: w.other.keyPath }] } },
    { listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0', `127.0.0.1:${w.busy}`] } },
  ];
  const answers: unknown[] = [];
  for (const change of refusedConfigs) {
    answers.push(await w.edge.reload(build({ ...w.base, ...change })));
    await pause();
  }
  answers.push(await w.edge.reload(build({ ...w.base, tls: { certificates: [{ cert: v2.certPath, key: v2.keyPath }] } })));
  await pause();
  running_ = false;
  await Promise.all(load);
  assert.deepEqual(answers.map((a) => Array.isArray(a) && a.length > 0), [true, true, true, false], 'three refused, the last accepted');
  assert.deepEqual(failures, []);
  assert.ok(ok > 100, `only ${ok} requests completed`);
  assert.equal(w.log.named('reload_refused').length, 3);
  assert.deepEqual([...serials].sort(), [w.cert.serial, v2.serial].sort(), 'the old certificate until the accepted reload, then the new one');
  t.diagnostic(`${ok} requests and ${serials.size} certificates seen through 3 refused and 1 accepted reload, 0 failed`);
});
