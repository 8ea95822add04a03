// nodejs/node#56703: node:http2 does not reset a stream carrying malformed header fields
// (RFC 9113 8.2.1); it drops the fields and goes on. This pins, through a running Edge, that
// nothing malformed reaches the upstream.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import { makeCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { startOrigin } from '../helpers/origin.ts';
import { h2RawRequest } from '../helpers/h2-raw.ts';
import type { RawField } from '../helpers/h2-raw.ts';

test('nodejs/node#56703: malformed h2 header fields never reach the upstream (node:http2 drops them; upper-case names reset the stream)', async (t) => {
  // RFC 9113 8.2.1 calls such a request malformed (nginx resets the stream). node:http2
  // ignores invalid fields (its nghttp2 on_invalid_header callback returns 0, and no option
  // changes that), so the request goes on without them; this pins that nothing malformed is
  // forwarded. If Node starts resetting these streams, the expected outcomes change here.
  const d = tempDir('opam-edge-56703-');
  t.after(() => rmSync(d, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['e.test'], dir: d, stem: 'e' });
  const origin = await startOrigin();
  t.after(() => origin.close());
  const result = validateConfig(
    { listen: { http: [], https: ['127.0.0.1:0'] }, tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] }, access_log: 'off', sites: [{ hosts: ['e.test'], upstream: `http://127.0.0.1:${origin.port}` }] },
    'test',
  );
  assert.ok(result.ok);
  const edge = await Edge.start(result.config, { log: memoryLog() });
  t.after(() => edge.stop(1000));
  const port = edge.ports.https[0]!;
  const request: RawField[] = [[':method', 'GET'], [':scheme', 'https'], [':authority', 'e.test'], [':path', '/m']];
  const cases: [string, RawField, 'dropped' | 'reset'][] = [
    ['CR in a value', ['x-bad', 'a\rb'], 'dropped'],
    ['LF in a value', ['x-bad', 'a\nInjected: 1'], 'dropped'],
    ['NUL in a value', ['x-bad', 'a\0b'], 'dropped'],
    ['trailing space in a value', ['x-bad', 'v '], 'dropped'],
    [': in a name', ['x:bad', 'v'], 'dropped'],
    ['space in a name', ['x bad', 'v'], 'dropped'],
    ['empty name', ['', 'v'], 'dropped'],
    ['upper case in a name', ['X-Bad', 'v'], 'reset'],
  ];
  for (const [label, field, expected] of cases) {
    const before = origin.seen.length;
    const outcome = await h2RawRequest(port, 'e.test', [...request, ['x-good', 'kept'], field]);
    const seen = origin.seen.slice(before);
    if (expected === 'reset') {
      assert.deepEqual(outcome, { kind: 'reset', code: 1 }, `${label}: RST_STREAM PROTOCOL_ERROR`);
      assert.equal(seen.length, 0, `${label}: nothing forwarded`);
      continue;
    }
    assert.deepEqual(outcome, { kind: 'headers', status: 200 }, label);
    assert.equal(seen.length, 1, label);
    const names = seen[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.equal(seen[0]!.headers['x-good'], 'kept', `${label}: the valid fields are forwarded`);
    assert.ok(!names.some((n) => n.includes('bad') || n === 'injected'), `${label}: ${names.join(',')}`);
    assert.ok(!seen[0]!.rawHeaders.some((v) => /[\r\n\0]/.test(v)), label);
  }
});
