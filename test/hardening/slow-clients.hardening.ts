// Slow clients, each cut at its limit while a well-behaved client is served throughout:
//   slowloris headers (a field line every 300 ms)   cut at header_timeout + ~1 s, on both ports
//   a 1 byte/s request body                         cut by limits.min_body_rate (header_timeout, then 1 s per min_body_rate bytes)
//   clients that never read a 10 MB response        cut after idle_timeout without progress, the
//                                                   upstream request aborted, the proxy's memory bounded

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';
import { startWorld, HOST } from './lib/world.ts';
import { startSteadyClient } from './lib/steady-client.ts';
import { sample, mib, MiB } from './lib/process-stats.ts';
import { recordFigures } from './lib/figures.ts';

const HEADER_TIMEOUT_MS = 2000;
const IDLE_TIMEOUT_MS = 3000;

function open(port: number, tls: boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tls ? tlsConnect({ host: '127.0.0.1', port, servername: HOST, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) : connect({ host: '127.0.0.1', port });
    socket.once(tls ? 'secureConnect' : 'connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Writes `head`, then `drip()` every `everyMs` until the server closes; resolves with ms and what came back. */
async function drip(port: number, tls: boolean, head: string, next: () => string, everyMs: number, maxMs: number): Promise<{ ms: number | null; answer: string }> {
  const socket = await open(port, tls);
  const started = Date.now();
  return new Promise((resolve) => {
    let answer = '';
    socket.write(head);
    const timer = setInterval(() => {
      if (Date.now() - started > maxMs) return finish(false);
      if (socket.writable) socket.write(next());
    }, everyMs);
    const finish = (closed: boolean) => {
      clearInterval(timer);
      socket.destroy();
      resolve({ ms: closed ? Date.now() - started : null, answer });
    };
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => finish(true));
  });
}

test('slow clients are cut at their limits, memory stays bounded, others are served', { timeout: 180_000 }, async (t) => {
  const world = await startWorld(t, { probe: true, limits: { header_timeout: `${HEADER_TIMEOUT_MS}ms`, idle_timeout: `${IDLE_TIMEOUT_MS}ms`, min_body_rate: '1k' } });
  const { edge, httpsPort, httpPort, origin } = world;
  const rows: [string, string][] = [];
  const steady = startSteadyClient({ httpsPort, httpPort });

  await t.test('slowloris headers: cut at header_timeout + about a second, on both ports', async () => {
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        drip(i % 2 ? httpsPort : httpPort, i % 2 === 1, `GET / HTTP/1.1\r\nHost: ${HOST}\r\n`, () => `X-Slow-${Math.random().toString(36).slice(2, 6)}: a\r\n`, 300, 10_000),
      ),
    );
    const ms = runs.map((r) => r.ms ?? Infinity);
    const answered408 = runs.filter((r) => r.answer.startsWith('HTTP/1.1 408')).length;
    rows.push(['slowloris headers (20 connections, both ports)', `cut after ${Math.min(...ms)}–${Math.max(...ms)} ms (header_timeout ${HEADER_TIMEOUT_MS} ms); ${answered408} answered 408 first`]);
    for (const r of runs) {
      assert.ok(r.ms !== null, 'cut');
      assert.ok(r.ms >= HEADER_TIMEOUT_MS - 100 && r.ms <= HEADER_TIMEOUT_MS + 1500, `${r.ms} ms`);
    }
  });

  await t.test('a 1 byte/s request body is cut by min_body_rate; the upstream request is aborted', async () => {
    const cutBefore = origin.cutMidRequest;
    const runs = await Promise.all(
      Array.from({ length: 10 }, () => drip(httpsPort, true, `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100000\r\n\r\n`, () => 'x', 1000, 15_000)),
    );
    await new Promise((r) => setTimeout(r, 300));
    const ms = runs.map((r) => r.ms ?? Infinity);
    const events = edge.events.filter((e) => e.event === 'client_body_too_slow').length;
    rows.push(['1 byte/s request bodies (10 connections)', `cut after ${Math.min(...ms)}–${Math.max(...ms)} ms (header_timeout ${HEADER_TIMEOUT_MS} ms + 1 s per 1 KiB); ${events} client_body_too_slow events; ${origin.cutMidRequest - cutBefore} upstream requests aborted`]);
    for (const r of runs) {
      assert.ok(r.ms !== null, 'cut');
      assert.ok(r.ms >= HEADER_TIMEOUT_MS && r.ms <= HEADER_TIMEOUT_MS + 2000, `${r.ms} ms`);
    }
    assert.equal(events, 10);
    assert.equal(origin.completed, origin.seen.filter((s) => s.method !== 'POST').length, 'no POST completed upstream');
  });

  await t.test('clients that never read a 10 MB response: cut after idle_timeout, the proxy does not buffer it', async () => {
    await new Promise((r) => setTimeout(r, 500));
    const baseline = await sample(edge);
    const size = 10 * MiB;
    const cutBefore = origin.cutMidRequest;
    const sockets = await Promise.all(Array.from({ length: 5 }, () => open(httpsPort, true)));
    const started = Date.now();
    for (const s of sockets) {
      s.on('error', () => {});
      s.write(`GET /size/${size} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      s.pause();
    }
    // While they are stalled: the heap must not hold the responses.
    await new Promise((r) => setTimeout(r, 1500));
    const stalled = await sample(edge);
    // The proxy cuts them after idle_timeout without progress; the origin sees its requests aborted.
    const deadline = Date.now() + IDLE_TIMEOUT_MS + 5000;
    while (origin.cutMidRequest - cutBefore < sockets.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const cutMs = Date.now() - started;
    const aborted = origin.cutMidRequest - cutBefore;
    // The clients now read what reached them: less than the whole response.
    const received = await Promise.all(
      sockets.map(
        (s) =>
          new Promise<number>((resolve) => {
            let n = 0;
            s.on('data', (d: Buffer) => (n += d.length));
            s.on('close', () => resolve(n));
            s.resume();
            setTimeout(() => {
              s.destroy();
              resolve(n);
            }, 5000);
          }),
      ),
    );
    const heapGrowth = stalled.heapUsed - baseline.heapUsed;
    rows.push([
      'clients that never read a 10 MB response (5 connections)',
      `upstream requests aborted ${aborted}/5 after ${cutMs} ms (idle_timeout ${IDLE_TIMEOUT_MS} ms); each client got ${mib(Math.min(...received))}–${mib(Math.max(...received))} MiB of 10; heap while stalled ${mib(baseline.heapUsed)} → ${mib(stalled.heapUsed)} MiB, RSS ${mib(baseline.rss)} → ${mib(stalled.rss)} MiB`,
    ]);
    assert.equal(aborted, sockets.length, 'every stalled response was cut and its upstream request aborted');
    assert.ok(cutMs <= IDLE_TIMEOUT_MS + 5000, `${cutMs} ms`);
    for (const n of received) assert.ok(n < size, `a cut response is not complete (${n} bytes)`);
    assert.ok(heapGrowth < 8 * MiB, `heap grew ${mib(heapGrowth)} MiB with 50 MB of responses stalled`);
  });

  const served = await steady.stop();
  rows.push(['well-behaved requests served / failed meanwhile', `${served.ok} / ${served.failed}`]);
  recordFigures('slow-clients', { title: 'Slow clients', by: 'npm run test:hardening (slow-clients.hardening.ts)', rows });
  assert.equal(served.failed, 0, served.errors.join('\n'));
  assert.equal(edge.child.exitCode, null);
});
