import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkUpstreamNames, createLookup, Resolver, sortAddresses } from '../../src/upstream/resolver.ts';
import type { Lookup } from '../../src/upstream/resolver.ts';
import { Upstreams } from '../../src/upstream/upstreams.ts';
import { makeConfig, startFront } from '../helpers/front.ts';
import { h1Request } from '../helpers/clients.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { CHALLTESTSRV, startDnsServer } from '../helpers/dns-server.ts';
import { requireTool } from '../helpers/tools.ts';
import type { DnsServer } from '../helpers/dns-server.ts';
import { startOrigin } from '../helpers/origin.ts';
import { until } from '../helpers/until.ts';

async function dns(t: import('node:test').TestContext): Promise<DnsServer | null> {
  if (!requireTool(t, CHALLTESTSRV, 'pebble')) return null;
  const server = await startDnsServer();
  t.after(() => server.stop());
  return server;
}

test('A and AAAA through the configured server; a change is logged with old and new', async (t) => {
  const server = await dns(t);
  if (!server) return;
  await server.setA('opam.test', ['127.0.0.2']);
  await server.setAAAA('opam.test', ['::1']);
  const log = memoryLog();
  const seen: (readonly string[])[] = [];
  const resolver = new Resolver({ name: 'opam.test', label: 'http://opam.test:80', validMs: 200, lookup: createLookup([server.server]), log, onChange: (a) => void seen.push(a) });
  t.after(() => resolver.stop());
  await resolver.start();
  assert.deepEqual(resolver.addresses, ['127.0.0.2', '::1']);
  await server.setA('opam.test', ['127.0.0.3', '127.0.0.2']);
  await until(() => resolver.addresses.includes('127.0.0.3'), 1500, 'the new answer');
  assert.deepEqual(seen, [['127.0.0.2', '::1'], ['127.0.0.2', '127.0.0.3', '::1']]);
  const changed = log.events.filter((e) => e.event === 'upstream_addresses_changed');
  assert.deepEqual(changed.at(-1)!.old, ['127.0.0.2', '::1']);
  assert.deepEqual(changed.at(-1)!.new, ['127.0.0.2', '127.0.0.3', '::1']);
});

test('SERVFAIL keeps the last good answer and is logged; the loop carries on', async (t) => {
  const server = await dns(t);
  if (!server) return;
  await server.setA('opam.test', ['127.0.0.2']);
  const log = memoryLog();
  const resolver = new Resolver({ name: 'opam.test', label: 'u', validMs: 150, lookup: createLookup([server.server]), log, onChange: () => {} });
  t.after(() => resolver.stop());
  await resolver.start();
  await server.setServfail('opam.test', true);
  await until(() => log.events.some((e) => e.event === 'upstream_resolve_failed'), 3000, 'a failure event');
  const failure = log.events.find((e) => e.event === 'upstream_resolve_failed')!;
  assert.equal(failure.code, 'RESOLVE_FAILED');
  assert.match(String(failure.reason), /ESERVFAIL/);
  assert.deepEqual(failure.keeping, ['127.0.0.2']);
  assert.deepEqual(resolver.addresses, ['127.0.0.2']);
  // Records gone entirely (the name answers nothing): still the last good answer.
  await server.setServfail('opam.test', false);
  await server.setA('opam.test', []);
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(resolver.addresses, ['127.0.0.2']);
  await server.setA('opam.test', ['127.0.0.3']);
  await until(() => resolver.addresses[0] === '127.0.0.3', 2000, 'recovery');
});

test('an unreachable DNS server: start() returns, nothing resolved, logged, no crash', async (t) => {
  const log = memoryLog();
  // A port nobody serves DNS on.
  const resolver = new Resolver({ name: 'opam.test', label: 'u', validMs: 60_000, lookup: createLookup(['127.0.0.1:9']), log, onChange: () => {} });
  t.after(() => resolver.stop());
  await resolver.start();
  assert.deepEqual(resolver.addresses, []);
  assert.ok(log.events.some((e) => e.event === 'upstream_resolve_failed'));
});

test('the system resolver (servers: []) reads /etc/hosts', async () => {
  const answer = await createLookup([])('localhost');
  assert.ok(answer.v4.ok && answer.v4.addresses.includes('127.0.0.1'), JSON.stringify(answer));
});

test('a lookup that throws or a callback that throws does not stop the loop', async (t) => {
  let calls = 0;
  const lookup: Lookup = async () => {
    calls++;
    if (calls === 1) throw new Error('boom');
    return { v4: { ok: true, addresses: [`127.0.0.${calls}`] }, v6: { ok: true, addresses: [] } };
  };
  const log = memoryLog();
  const resolver = new Resolver({ name: 'x', label: 'x', validMs: 100, lookup, log, onChange: () => { throw new Error('listener'); } });
  t.after(() => resolver.stop());
  await resolver.start();
  await until(() => calls >= 3, 5000, 'more lookups');
  resolver.stop();
  const after = calls;
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(calls <= after + 1, 'stop() ends the loop');
  assert.ok(log.events.some((e) => e.event === 'upstream_update_failed'));
});

test('IP literal upstreams are never resolved', async (t) => {
  let lookups = 0;
  const upstreams = new Upstreams({ log: memoryLog(), lookup: () => async () => (lookups++, { v4: { ok: true, addresses: [] }, v6: { ok: true, addresses: [] } }) });
  await upstreams.start(makeConfig({ sites: [{ hosts: ['a.test'], upstream: 'http://127.0.0.9:8080' }, { hosts: ['b.test'], upstream: 'http://[::1]:8081' }] }));
  t.after(() => upstreams.stop());
  assert.equal(lookups, 0);
  assert.deepEqual(upstreams.status().map((s) => s.addresses), [['127.0.0.9:8080'], ['[::1]:8081']]);
});

test('no address yet: 503 with a request id until the name resolves; start-up does not wait for DNS', async (t) => {
  const server = await dns(t);
  if (!server) return;
  const origin = await startOrigin({ host: '127.0.0.2' });
  const front = await startFront({ resolver: { servers: [server.server], valid: '1s' }, sites: [{ hosts: ['opam.test'], upstream: `http://opam.test:${origin.port}` }] });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  const r = await h1Request(front.h1Port, front.ca);
  assert.equal(r.status, 503);
  assert.match(r.body.toString(), /request id: [0-9a-f]+/);
  assert.equal(front.metrics[0]!.error, 'UPSTREAM_NO_ADDRESS');
  await server.setA('opam.test', ['127.0.0.2']);
  // While there is no address the resolver retries sooner than `valid`.
  await until(() => front.upstreams.status()[0]!.addresses.length === 1, 3000, 'the first address');
  assert.equal((await h1Request(front.h1Port, front.ca)).status, 200);
});

test('sortAddresses: IPv4 first, stable, no duplicates', () => {
  assert.deepEqual(sortAddresses(['::1', '127.0.0.3', '127.0.0.2', '127.0.0.3']), ['127.0.0.2', '127.0.0.3', '::1']);
});

test('check: an upstream name that does not resolve through the configured resolver is reported', async (t) => {
  const server = await dns(t);
  if (!server) return;
  await server.setA('opam.test', ['127.0.0.2']);
  const config = makeConfig({
    resolver: { servers: [server.server] },
    sites: [
      { hosts: ['a.test'], upstream: 'http://opam.test:80' },
      { hosts: ['b.test'], upstream: 'http://missing.test:80' },
      { hosts: ['c.test'], upstream: 'http://192.0.2.1:80' },
    ],
  });
  const problems = await checkUpstreamNames(config.sites, config.resolver.servers);
  assert.equal(problems.length, 1, JSON.stringify(problems));
  assert.equal(problems[0]!.site, 1);
  assert.match(problems[0]!.message, /^"missing\.test" does not resolve through resolver\.servers/);
});
