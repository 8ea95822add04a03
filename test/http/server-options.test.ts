import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import { silentLog } from '../../src/log.ts';
import { rawRequest } from '../helpers/raw-http.ts';

test('reload applies new limits to the next connections on listeners that stay', async (t) => {
  const make = (limits: Record<string, string>) => {
    const r = validateConfig({ listen: { http: ['127.0.0.1:0'], https: [] }, access_log: 'off', limits, sites: [{ hosts: ['a.test'], upstream: 'http://a' }] }, 'test');
    assert.ok(r.ok);
    return r.config;
  };
  const edge = await Edge.start(make({ max_header_size: '16k' }), { log: silentLog });
  t.after(() => edge.stop(500));
  const port = edge.ports.http[0]!;
  const big = `GET / HTTP/1.1\r\nHost: a.test\r\nX-A: ${'a'.repeat(6000)}\r\n\r\n`;
  assert.equal((await rawRequest(port, big, { quietMs: 300 })).status, 301);
  await edge.reload(make({ max_header_size: '4k', header_timeout: '1s' }));
  assert.equal(edge.ports.http[0], port);
  assert.equal((await rawRequest(port, big, { quietMs: 2000 })).status, 431);
  const slow = await rawRequest(port, 'GET / HTTP/1.1\r\n', { quietMs: 5000 });
  assert.equal(slow.status, 408);
  assert.ok(slow.ms < 2500, `${slow.ms} ms`);
});
