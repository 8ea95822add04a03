import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressPools } from '../../src/upstream/pools.ts';
import { startFront } from '../helpers/front.ts';
import { h1Request, h2Request, h2Session } from '../helpers/clients.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { CHALLTESTSRV, startDnsServer } from '../helpers/dns-server.ts';
import { requireTool } from '../helpers/tools.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Handler, Origin } from '../helpers/origin.ts';
import { until } from '../helpers/until.ts';

const settings = { connectTimeoutMs: 1000, readTimeoutMs: 1000 };

/** Origins on several loopback addresses, all on the same port (DNS gives addresses only). */
async function originsOnOnePort(hosts: string[], handler?: Handler): Promise<Origin[]> {
  for (let attempt = 0; ; attempt++) {
    const first = await startOrigin({ host: hosts[0], handler });
    const rest: Origin[] = [];
    try {
      for (const host of hosts.slice(1)) rest.push(await startOrigin({ host, port: first.port, handler }));
      return [first, ...rest];
    } catch (err) {
      await Promise.all([first, ...rest].map((o) => o.close()));
      if (attempt > 5) throw err;
    }
  }
}

test('round-robin across the current addresses; a snapshot swap keeps kept pools', async (t) => {
  const pools = new AddressPools(8080, settings, memoryLog(), 'u');
  t.after(() => pools.close());
  assert.equal(pools.pick(), null);
  pools.setAddresses(['127.0.0.2', '127.0.0.3']);
  const picks = [pools.pick()!.address, pools.pick()!.address, pools.pick()!.address, pools.pick()!.address];
  assert.deepEqual(picks.sort(), ['127.0.0.2:8080', '127.0.0.2:8080', '127.0.0.3:8080', '127.0.0.3:8080']);
  const kept = pools.entries.find((e) => e.ip === '127.0.0.3')!;
  pools.setAddresses(['127.0.0.3', '::1']);
  assert.equal(pools.entries.find((e) => e.ip === '127.0.0.3'), kept, 'the pool of an address that stays is kept');
  assert.deepEqual(pools.addresses, ['127.0.0.3:8080', '[::1]:8080']);
  assert.ok(Object.isFrozen(pools.entries));
});

test('DNS moves traffic from 127.0.0.2 to 127.0.0.3 within valid + 1 s; nothing fails during the switch; in-flight requests finish and the old pool closes', async (t) => {
  if (!requireTool(t, CHALLTESTSRV, 'pebble')) return;
  const server = await startDnsServer();
  t.after(() => server.stop());
  const [a, b] = await originsOnOnePort(['127.0.0.2', '127.0.0.3'], (req, res) => {
    req.resume();
    const delay = req.url === '/slow' ? 1500 : 0;
    setTimeout(() => res.end(`${req.socket.localAddress}`), delay);
  });
  await server.setA('opam.test', ['127.0.0.2']);
  const front = await startFront({ resolver: { servers: [server.server], valid: '1s' }, sites: [{ hosts: ['opam.test'], upstream: `http://opam.test:${a!.port}` }] });
  t.after(async () => {
    await front.close();
    await a!.close();
    await b!.close();
  });
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  assert.equal((await h1Request(front.h1Port, front.ca)).body.toString(), '127.0.0.2');

  // A bounded loop of requests over both protocols runs across the switch.
  const results: { status: number; from: string; at: number }[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < 2000; i++) {
      const r = i % 2 === 0 ? await h1Request(front.h1Port, front.ca) : await h2Request(session);
      results.push({ status: r.status, from: r.body.toString(), at: Date.now() });
    }
  })();
  const slow = h1Request(front.h1Port, front.ca, { path: '/slow' });
  await new Promise((r) => setTimeout(r, 200));
  const switchedAt = Date.now();
  await server.setA('opam.test', ['127.0.0.3']);
  const moved = await until(() => results.some((r) => r.from === '127.0.0.3' && r.at > switchedAt), 2000 + 1000, 'traffic on 127.0.0.3');
  assert.ok(moved <= 2000, `moved after ${moved} ms (valid 1 s + 1 s)`);
  await new Promise((r) => setTimeout(r, 300));
  running = false;
  await loop;
  const inFlight = await slow;
  assert.equal(inFlight.status, 200, 'a request in flight on the old address finishes');
  assert.equal(inFlight.body.toString(), '127.0.0.2');
  assert.deepEqual(results.filter((r) => r.status !== 200), [], 'no request failed during the switch');
  const firstOnB = results.findIndex((r) => r.from === '127.0.0.3');
  assert.ok(results.slice(firstOnB).every((r) => r.from === '127.0.0.3'), 'once moved, no request goes to the old address');
  // The old pool was drained, then closed: the old origin holds no connection.
  await until(() => a!.open === 0, 3000, 'the old origin to see its connections closed');
  assert.ok(front.log.events.some((e) => e.event === 'upstream_addresses_changed' && (e.new as string[])[0] === '127.0.0.3'));
});

test('SERVFAIL during traffic: the last answer keeps serving', async (t) => {
  if (!requireTool(t, CHALLTESTSRV, 'pebble')) return;
  const server = await startDnsServer();
  t.after(() => server.stop());
  const origin = await startOrigin({ host: '127.0.0.2' });
  await server.setA('opam.test', ['127.0.0.2']);
  const front = await startFront({ resolver: { servers: [server.server], valid: '1s' }, sites: [{ hosts: ['opam.test'], upstream: `http://opam.test:${origin.port}` }] });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  await server.setServfail('opam.test', true);
  await until(() => front.log.events.some((e) => e.event === 'upstream_resolve_failed'), 4000, 'a failed lookup');
  assert.equal((await h1Request(front.h1Port, front.ca)).status, 200);
});

test('round-robin over two A records, and an AAAA-only name to ::1', async (t) => {
  if (!requireTool(t, CHALLTESTSRV, 'pebble')) return;
  const server = await startDnsServer();
  t.after(() => server.stop());
  const [a, b, v6] = await originsOnOnePort(['127.0.0.2', '127.0.0.3', '::1'], (req, res) => {
    req.resume();
    res.end(`${req.socket.localAddress}`);
  });
  await server.setA('rr.test', ['127.0.0.2', '127.0.0.3']);
  await server.setAAAA('six.test', ['::1']);
  const front = await startFront({
    resolver: { servers: [server.server], valid: '1s' },
    sites: [
      { hosts: ['opam.test'], upstream: `http://rr.test:${a!.port}` },
      { hosts: ['six.opam.test'], upstream: `http://six.test:${a!.port}` },
    ],
  });
  t.after(async () => {
    await front.close();
    await Promise.all([a!, b!, v6!].map((o) => o.close()));
  });
  const from: string[] = [];
  for (let i = 0; i < 6; i++) from.push((await h1Request(front.h1Port, front.ca)).body.toString());
  assert.deepEqual([...new Set(from)].sort(), ['127.0.0.2', '127.0.0.3']);
  assert.equal(from.filter((f) => f === '127.0.0.2').length, 3);
  const r = await h1Request(front.h1Port, front.ca, { headers: { host: 'six.opam.test' } });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), '::1');
  assert.equal(front.access.records.at(-1)!.upstreamAddr, `[::1]:${a!.port}`);
});

test('reload: a kept upstream keeps its pools, a removed one is drained and closed', async (t) => {
  const one = await startOrigin({ host: '127.0.0.2' });
  const two = await startOrigin({ host: '127.0.0.3' });
  const sites = [
    { hosts: ['opam.test'], upstream: `http://127.0.0.2:${one.port}` },
    { hosts: ['two.test'], upstream: `http://127.0.0.3:${two.port}` },
  ];
  const front = await startFront({ sites });
  t.after(async () => {
    await front.close();
    await one.close();
    await two.close();
  });
  await h1Request(front.h1Port, front.ca);
  await h1Request(front.h1Port, front.ca, { headers: { host: 'two.test' } });
  assert.equal(two.open, 1);
  await front.reload({ sites: [sites[0]] });
  await until(() => two.open === 0, 3000, 'the removed upstream to be closed');
  assert.equal(one.open, 1, 'the kept upstream keeps its connection');
  assert.equal((await h1Request(front.h1Port, front.ca, { headers: { host: 'two.test' } })).status, 421);
  assert.equal((await h1Request(front.h1Port, front.ca)).status, 200);
  assert.equal(one.accepted, 1);
});
