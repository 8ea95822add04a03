// limits.min_body_rate: a request body that falls behind header_timeout + 1 s per
// min_body_rate bytes is cut, over HTTP/1.1 (the connection) and h2 (the stream); the
// upstream request is aborted; a body that keeps up passes; null turns the check off.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { startOrigin } from '../helpers/origin.ts';
import { startFront } from '../helpers/front.ts';
import { h2Session } from '../helpers/clients.ts';
import type { Front } from '../helpers/front.ts';

async function setup(t: import('node:test').TestContext, limits: Record<string, unknown>) {
  const origin = await startOrigin();
  const front = await startFront({ sites: [{ hosts: ['opam.test', '127.0.0.1'], upstream: `http://127.0.0.1:${origin.port}` }], limits });
  t.after(async () => {
    await front.close();
    await origin.close();
  });
  return { origin, front };
}

/** POST over HTTP/1.1 with a 1 MB Content-Length, 10 bytes every 100 ms: resolves when the server closes. */
function tricklingH1(front: Front, maxMs: number): Promise<{ closedAfterMs: number | null; answer: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = tlsConnect({ host: '127.0.0.1', port: front.h1Port, servername: 'opam.test', ca: front.ca.cert });
    let answer = '';
    let timer: NodeJS.Timeout;
    const end = (closed: boolean) => {
      clearInterval(timer);
      socket.destroy();
      resolve({ closedAfterMs: closed ? Date.now() - started : null, answer });
    };
    socket.once('secureConnect', () => {
      socket.write('POST /upload HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 1000000\r\n\r\n');
      timer = setInterval(() => {
        if (Date.now() - started > maxMs) return end(false);
        socket.write('x'.repeat(10));
      }, 100);
    });
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => end(true));
  });
}

test('a trickling HTTP/1.1 body is cut once it falls behind min_body_rate; the upstream request is aborted', async (t) => {
  const { origin, front } = await setup(t, { header_timeout: '1s', min_body_rate: '1k' });
  const got = await tricklingH1(front, 6000);
  assert.ok(got.closedAfterMs !== null, 'the connection was cut');
  // 1 s of grace, plus the few hundred bytes sent buying well under a second, plus the 1 s tick.
  assert.ok(got.closedAfterMs >= 1000 && got.closedAfterMs < 3500, `${got.closedAfterMs} ms`);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(origin.completed, 0);
  assert.equal(origin.open, 0, 'the upstream connection of the aborted request is gone');
  assert.equal(front.log.events.filter((e) => e.event === 'client_body_too_slow').length, 1);
});

test('a trickling h2 body: its stream is reset, the session serves on', async (t) => {
  const { origin, front } = await setup(t, { header_timeout: '1s', min_body_rate: '1k' });
  const session = h2Session(front.h2Port, front.ca);
  t.after(() => session.destroy());
  const started = Date.now();
  const stream = session.request({ ':method': 'POST', ':path': '/upload', ':authority': 'opam.test', 'content-length': '1000000' });
  const timer = setInterval(() => stream.write('x'.repeat(10)), 100);
  const closed = await new Promise<{ code: number; ms: number }>((resolve) => {
    stream.on('error', () => {});
    stream.on('close', () => resolve({ code: stream.rstCode ?? -1, ms: Date.now() - started }));
  });
  clearInterval(timer);
  assert.ok(closed.ms >= 1000 && closed.ms < 3500, `${closed.ms} ms`);
  assert.notEqual(closed.code, 0, 'reset, not ended');
  const ok = session.request({ ':path': '/', ':authority': 'opam.test' });
  const status = await new Promise<number>((resolve) => ok.on('response', (h) => resolve(Number(h[':status']))));
  ok.resume();
  assert.equal(status, 200);
  assert.equal(origin.completed, 1, 'only the GET completed upstream');
});

test('a body that keeps up passes; min_body_rate: null turns the check off', async (t) => {
  const { front } = await setup(t, { header_timeout: '1s', min_body_rate: null });
  const got = await tricklingH1(front, 2500);
  assert.equal(got.closedAfterMs, null, 'not cut without the limit');
  const { front: limited } = await setup(t, { header_timeout: '1s', min_body_rate: '1k' });
  // 20 KiB over ~1.5 s is far above 1 KiB/s: it passes.
  const body = await new Promise<string>((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: limited.h1Port, servername: 'opam.test', ca: limited.ca.cert });
    let answer = '';
    socket.once('secureConnect', async () => {
      socket.write('POST /upload HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 20480\r\nConnection: close\r\n\r\n');
      for (let i = 0; i < 15; i++) {
        socket.write('y'.repeat(1365));
        await new Promise((r) => setTimeout(r, 100));
      }
      socket.write('y'.repeat(20480 - 15 * 1365));
    });
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => {});
  });
  assert.match(body, /^HTTP\/1\.1 200 /);
  assert.match(body, /"bodyLength":20480/);
});
