import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRoutes } from '../../src/http/route.ts';
import { startOrigin } from '../helpers/origin.ts';
import { startFront } from '../helpers/front.ts';
import { h1Request, h2Request, h2Session } from '../helpers/clients.ts';

const sites = [
  { hosts: ['opam.ocaml.org', 'opam-4.ocaml.org'], upstream: 'a' },
  { hosts: ['*.example.org'], upstream: 'b' },
  { hosts: ['deep.sub.example.org', '[::1]'], upstream: 'c' },
];

test('exact names first, then a wildcard one label deep', () => {
  const routes = buildRoutes(sites, (s) => s.upstream);
  assert.equal(routes.lookup('opam.ocaml.org'), 'a');
  assert.equal(routes.lookup('opam-4.ocaml.org'), 'a');
  assert.equal(routes.lookup('www.example.org'), 'b');
  assert.equal(routes.lookup('deep.sub.example.org'), 'c', 'an exact name beats a wildcard');
  assert.equal(routes.lookup('[::1]'), 'c');
  assert.equal(routes.lookup('example.org'), null, '*.example.org does not match example.org');
  assert.equal(routes.lookup('a.b.example.org'), null, 'only one label deep');
  assert.equal(routes.lookup('ocaml.org'), null);
  assert.equal(routes.lookup('.example.org'), null);
  assert.equal(routes.size, 5);
  assert.ok(Object.isFrozen(routes));
});

test('an unknown host is answered 421 over HTTP/1.1 and h2, and reaches no upstream', async (t) => {
  const origin = await startOrigin();
  const front = await startFront({ sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.1:${origin.port}` }] });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  const r1 = await h1Request(front.h1Port, front.ca, { headers: { host: 'other.test' } });
  assert.equal(r1.status, 421);
  assert.match(r1.body.toString(), /request id: [0-9a-f]+/);
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.close());
  const r2 = await h2Request(session, { authority: 'other.test:443' });
  assert.equal(r2.status, 421);
  assert.equal(origin.seen.length, 0);
  assert.equal(front.metrics.filter((m) => m.status === 421 && m.error === 'UNKNOWN_HOST').length, 2);
  // The request id of the body is the one in the access log.
  const id = /request id: ([0-9a-f]+)/.exec(r1.body.toString())![1];
  assert.ok(front.access.records.some((r) => r.requestId === id && r.status === 421));
});
