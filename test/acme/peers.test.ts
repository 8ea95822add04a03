import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { PEER_HOP_HEADER, PEER_TIMEOUT_MS, PeerForwarder } from '../../src/acme/peers.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { freePort } from '../helpers/ports.ts';

type Seen = { url: string; headers: IncomingMessage['headers'] };

async function peer(t: import('node:test').TestContext, answer: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers });
    answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  t.after(() => server.closeAllConnections());
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), seen };
}

/** A peer that accepts connections and never answers. */
async function hangingPeer(t: import('node:test').TestContext) {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

const text = (body: string, status = 200) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(body);
};

test('the default timeout is 5 s (docs/behaviour.md, "Port 80")', () => {
  assert.equal(PEER_TIMEOUT_MS, 5000);
});

test('asks the peer for the same path, marked as a hop, with the original Host', async (t) => {
  const p = await peer(t, text('tok123.thumb\n'));
  const forwarder = new PeerForwarder(memoryLog());
  t.after(() => forwarder.close());
  forwarder.setPeers([p.url]);
  assert.equal(await forwarder.ask('tok123', 'opam.ocaml.org'), 'tok123.thumb');
  assert.equal(p.seen.length, 1);
  assert.equal(p.seen[0]!.url, '/.well-known/acme-challenge/tok123');
  assert.equal(p.seen[0]!.headers[PEER_HOP_HEADER], '1');
  assert.equal(p.seen[0]!.headers.host, 'opam.ocaml.org');
  assert.deepEqual(
    forwarder.status().map((s) => [s.peer, s.lastOk]),
    [[p.url.href, true]],
  );
});

test('peers are asked in order; the first real key authorization wins', async (t) => {
  const notFound = await peer(t, text('nope', 404));
  const catchAll = await peer(t, text('<html>welcome</html>'));
  const wrongToken = await peer(t, text('other.thumb'));
  const good = await peer(t, text('tok.thumb'));
  const after = await peer(t, text('tok.never'));
  const forwarder = new PeerForwarder(memoryLog());
  t.after(() => forwarder.close());
  forwarder.setPeers([notFound.url, catchAll.url, wrongToken.url, good.url, after.url]);
  assert.equal(await forwarder.ask('tok', 'a.test'), 'tok.thumb');
  assert.deepEqual([notFound, catchAll, wrongToken, good, after].map((p) => p.seen.length), [1, 1, 1, 1, 0]);
});

test('an oversized answer is not a key authorization', async (t) => {
  const big = await peer(t, text(`tok.${'a'.repeat(5000)}`));
  const forwarder = new PeerForwarder(memoryLog());
  t.after(() => forwarder.close());
  forwarder.setPeers([big.url]);
  assert.equal(await forwarder.ask('tok', 'a.test'), null);
});

test('a peer URL with a path keeps it as a prefix', async (t) => {
  const p = await peer(t, text('tok.k'));
  const forwarder = new PeerForwarder(memoryLog());
  t.after(() => forwarder.close());
  forwarder.setPeers([new URL('/edge/', p.url)]);
  assert.equal(await forwarder.ask('tok', 'a.test'), 'tok.k');
  assert.equal(p.seen[0]!.url, '/edge/.well-known/acme-challenge/tok');
});

test('a peer that is down or hangs costs at most the timeout, is logged, and the next peer is asked', async (t) => {
  // A port nothing listens on: connections are refused.
  const down = new URL(`http://127.0.0.1:${await freePort()}`);
  const hangs = await hangingPeer(t);
  const good = await peer(t, text('tok.k'));
  const log = memoryLog();
  const { events } = log;
  const forwarder = new PeerForwarder(log, 300);
  t.after(() => forwarder.close());
  forwarder.setPeers([down, hangs, good.url]);
  const started = Date.now();
  assert.equal(await forwarder.ask('tok', 'a.test'), 'tok.k');
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 250 && elapsed < 3000, `took ${elapsed} ms`);
  const failures = events.filter((e) => e.event === 'peer_forward_failed');
  assert.deepEqual(failures.map((e) => [e.peer, e.code]), [
    [down.href, 'PEER_FORWARD_FAILED'],
    [hangs.href, 'PEER_FORWARD_FAILED'],
  ]);
  assert.equal(failures[0]!.reason, 'ECONNREFUSED');
  const status = forwarder.status();
  assert.deepEqual(status.map((s) => s.lastOk), [false, false, true]);
});

test('setPeers replaces the list and keeps the state of peers that stay', async (t) => {
  const a = await peer(t, text('nope', 404));
  const b = await peer(t, text('tok.k'));
  const forwarder = new PeerForwarder(memoryLog());
  t.after(() => forwarder.close());
  forwarder.setPeers([a.url]);
  assert.equal(await forwarder.ask('tok', 'x.test'), null);
  const askedAt = forwarder.status()[0]!.lastAttemptAt;
  forwarder.setPeers([b.url, a.url]);
  assert.deepEqual(forwarder.peers.map((u) => u.href), [b.url.href, a.url.href]);
  assert.equal(forwarder.status()[1]!.lastAttemptAt, askedAt);
  assert.equal(await forwarder.ask('tok', 'x.test'), 'tok.k');
  forwarder.setPeers([]);
  assert.equal(await forwarder.ask('tok', 'x.test'), null);
  assert.equal(b.seen.length, 1);
});
