// The drain on stop (connection-tracker.ts) through a real edge.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { get, startEdge } from '../helpers/edge-in-process.ts';
import { refused } from '../helpers/ports.ts';

test('stop: idle keep-alive connections close at once, a request in flight finishes, new connections are refused', async (t) => {
  const peer = createServer((req, res) => setTimeout(() => res.end(`${req.url!.split('/').pop()}.slow`), 500));
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => peer.close(() => r())));
  const node = await startEdge(t, { challenges: { peers: [`http://127.0.0.1:${(peer.address() as AddressInfo).port}`] } });
  // An idle kept-alive connection: one answered request, then nothing.
  const idle = connect({ host: '127.0.0.1', port: node.port });
  const idleClosed = new Promise<void>((r) => idle.once('close', () => r()));
  idle.on('error', () => {});
  idle.write('GET / HTTP/1.1\r\nHost: opam.test\r\n\r\n');
  await new Promise((r) => idle.once('data', r));
  const slow = get(node.port, '/.well-known/acme-challenge/tok');
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  const stopped = node.edge.stop(30_000);
  await idleClosed;
  assert.equal(await refused(node.port), true);
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.body, 'tok.slow');
  assert.equal(res.headers.connection, 'close');
  await stopped;
  assert.ok(Date.now() - started < 5000);
});

test('stop: what is still open when the grace period ends is cut, and the stop says so', async (t) => {
  const node = await startEdge(t);
  // A client that sent half a request and went quiet (header_timeout is 60 s by default).
  const half = connect({ host: '127.0.0.1', port: node.port });
  half.on('error', () => {});
  const halfClosed = new Promise<void>((r) => half.once('close', () => r()));
  await new Promise((r) => half.once('connect', r));
  half.write('GET / HTTP/1.1\r\nHost: opam.test\r\n');
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  await node.edge.stop(300);
  await halfClosed;
  assert.ok(Date.now() - started < 3000);
  assert.ok(node.events.some((e) => e.event === 'stop_forced' && e.connections === 1));
  assert.ok(node.events.some((e) => e.event === 'stopped' && e.drained === false));
});
