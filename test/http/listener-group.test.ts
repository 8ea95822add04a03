import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import { ListenerGroup } from '../../src/http/listener-group.ts';
import { silentLog } from '../../src/log.ts';
import { parseListen } from '../../src/units.ts';
import type { ListenAddress } from '../../src/units.ts';
import { get } from '../helpers/edge-in-process.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { freePort, refused } from '../helpers/ports.ts';

const address = (text: string) => parseListen(text) as ListenAddress;

test('[::] binds one dual-stack socket; a named address binds what it resolves to', async (t) => {
  const group = new ListenerGroup('http', silentLog, { reusePort: false }, () => createServer((_req, res) => res.end('ok')));
  t.after(() => group.stopAccepting());
  await (await group.sync([address('[::]:0'), address('localhost:0')]))();
  const [dual, named] = group.listeners;
  assert.match(dual!.bound, /^\[::\]:\d+$/);
  assert.equal(await refused(dual!.port, '127.0.0.1'), false);
  assert.equal(await refused(dual!.port, '::1'), false);
  assert.ok(named!.port > 0);
});

test('a listener that cannot be bound: start fails with LISTEN_FAILED and what it had bound is released', async (t) => {
  const blocker = createNetServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const busy = (blocker.address() as AddressInfo).port;
  const free = await freePort();
  const config = validateConfig(
    { listen: { http: [`127.0.0.1:${free}`, `127.0.0.1:${busy}`], https: [] }, access_log: 'off', sites: [{ hosts: ['a.test'], upstream: 'http://a' }] },
    'test',
  );
  assert.ok(config.ok);
  await assert.rejects(Edge.start(config.config, { log: silentLog }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'LISTEN_FAILED');
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${busy}: EADDRINUSE`));
    return true;
  });
  assert.equal(await refused(free), true);
});

test('reload moves listeners: new addresses bound, removed ones closed, kept ones keep their socket', async (t) => {
  const log = memoryLog();
  const { events } = log;
  const make = (http: string[]) => {
    const r = validateConfig({ listen: { http, https: [] }, access_log: 'off', sites: [{ hosts: ['a.test'], upstream: 'http://a' }] }, 'test');
    assert.ok(r.ok);
    return r.config;
  };
  const edge = await Edge.start(make(['127.0.0.1:0', '[::1]:0']), { log });
  t.after(() => edge.stop(500));
  const [v4, v6] = edge.ports.http;
  await edge.reload(make(['[::1]:0', '127.0.0.2:0']));
  assert.equal(edge.ports.http.length, 2);
  assert.equal(edge.ports.http[0], v6);
  assert.equal(await refused(v4!), true);
  assert.equal((await get(edge.ports.http[1]!, '/', { address: '127.0.0.2', host: 'a.test' })).status, 301);
  assert.equal((await get(v6!, '/', { address: '::1', host: 'a.test' })).status, 301);
  assert.ok(events.some((e) => e.event === 'listener_closed' && e.address === '127.0.0.1:0'));
  // A reload whose address cannot be bound is refused as a whole: nothing changes.
  const blocker = createNetServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const before = edge.addresses.http;
  const problems = await edge.reload(make(['127.0.0.3:0', `127.0.0.1:${(blocker.address() as AddressInfo).port}`]));
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^listen\.http\[1\]: .*EADDRINUSE/);
  assert.deepEqual(edge.addresses.http, before);
});
