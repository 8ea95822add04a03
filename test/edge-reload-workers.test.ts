// Reload with workers (issue 13, point 1): the primary decides once for the whole node.
// Every worker prepares (certificates, its own SO_REUSEPORT sockets); one problem anywhere
// rolls every process back, and `reload_refused` is logged once with every problem.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startEdgeProcess, tempDir } from './helpers/edge-process.ts';
import type { EdgeEvent } from './helpers/edge-process.ts';
import { makeCert } from './helpers/certs.ts';
import { freePorts } from './helpers/ports.ts';
import { serialFor } from './helpers/tls-client.ts';

test('workers: a refused reload is refused by every process, logged once; a good one reaches all', { timeout: 60_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const v1 = await makeCert({ names: ['opam.test'], dir, stem: 'v1' });
  const v2 = await makeCert({ names: ['opam.test'], dir, stem: 'v2' });
  const [http, https] = await freePorts(2);
  // A port held without SO_REUSEPORT: no worker can bind it.
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => holder.close(() => r())));
  const busy = (holder.address() as AddressInfo).port;
  const config = {
    listen: { http: [`127.0.0.1:${http}`], https: [`127.0.0.1:${https}`] },
    workers: 2,
    tls: { certificates: [{ cert: v1.certPath, key: v1.keyPath }] },
    access_log: 'off',
    sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:1' }],
  };
  const edge = await startEdgeProcess(config, { waitFor: 'workers_started' });
  t.after(() => edge.stop());
  const serials = async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(await serialFor(https, 'opam.test'));
    return [...seen];
  };
  const since = (from: number, name: string) => edge.events.slice(from).filter((e) => e.event === name);
  const refuse = async (change: Record<string, unknown>): Promise<EdgeEvent> => {
    const from = edge.events.length;
    edge.writeConfig({ ...config, ...change });
    edge.signal('SIGHUP');
    const event = await edge.waitForEvent((e) => e.event === 'reload_refused' && edge.events.indexOf(e) >= from, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(since(from, 'reload_refused').length, 1, 'logged once, by the primary');
    assert.equal(event.pid, edge.child.pid);
    assert.deepEqual(since(from, 'reloaded'), []);
    assert.deepEqual(since(from, 'certificate_removed'), []);
    assert.deepEqual(await serials(), [v1.serial]);
    return event;
  };

  const typo = await refuse({ tls: { certificates: [{ cert: join(dir, 'typo.pem'), key: v1.keyPath }] } });
  // The config check's wording (key path and line), and not again in each process's words.
  assert.deepEqual(typo.problems, [`tls.certificates[0].cert (line 9): cannot read ${join(dir, 'typo.pem')}: no such file`], 'the same problem from every process, listed once');

  const from = edge.events.length;
  const both = await refuse({
    listen: { http: [`127.0.0.1:${http}`], https: [`127.0.0.1:${https}`, `127.0.0.1:${busy}`] },
    tls: { certificates: [{ cert: v1.certPath, key: v2.keyPath }] },
  });
  assert.deepEqual(
    (both.problems as string[]).map((p) => p.split(/[ :]/)[0]),
    ['tls.certificates[0].key', 'listen.https[1]'],
    String(both.problems),
  );
  assert.deepEqual(since(from, 'listening'), [], 'the busy port never bound anywhere, nothing else was bound');

  const good = edge.events.length;
  edge.writeConfig({ ...config, tls: { certificates: [{ cert: v2.certPath, key: v2.keyPath }] } });
  edge.signal('SIGHUP');
  await edge.waitForEvent(() => since(good, 'reloaded').length === 3, 20_000);
  assert.equal(new Set(since(good, 'reloaded').map((e) => e.pid)).size, 3, 'the primary and both workers reloaded');
  assert.deepEqual(await serials(), [v2.serial]);
});
