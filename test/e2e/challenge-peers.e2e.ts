// Two opam-edge processes behind round-robin DNS, as opam-4 and opam-5 (docs/behaviour.md,
// "Certificates": two nodes): the CA's request can land on either node, which must answer
// the other's tokens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { freePort, hangingPort } from '../helpers/ports.ts';
import { join } from 'node:path';
import { startEdgeProcess } from '../helpers/edge-process.ts';
import type { EdgeProcess } from '../helpers/edge-process.ts';
import { get } from '../helpers/edge-in-process.ts';

const PREFIX = '/.well-known/acme-challenge/';
const TOKEN = 'e2eToken-_0123456789';
const site = { hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' };
const PEER_UA = '"opam-edge (challenge peer)"';

function node(peers: string[], extra: Record<string, unknown> = {}) {
  return { listen: { http: ['127.0.0.1:0'], https: [] }, access_log: 'stdout', challenges: { peers, ...extra }, sites: [site] };
}

/** Access lines arrive on stdout within the log's flush interval (1 s). */
async function accessLines(edge: EdgeProcess, count: number, settleMs = 1500): Promise<string[]> {
  const deadline = Date.now() + 5000;
  while (edge.stdout.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  // Then wait a little more: a line too many must be seen too.
  await new Promise((r) => setTimeout(r, settleMs));
  return [...edge.stdout];
}

test('a token found only on the peer: answered through it, the peer answering from its webroot', async (t) => {
  const b = await startEdgeProcess(node([]));
  t.after(() => b.stop());
  const root = join(b.dir, 'www');
  mkdirSync(join(root, '.well-known', 'acme-challenge'), { recursive: true });
  writeFileSync(join(root, '.well-known', 'acme-challenge', TOKEN), `${TOKEN}.onB`);
  b.writeConfig(node([], { webroot: root }));
  b.signal('SIGHUP');
  await b.waitForEvent((e) => e.event === 'reloaded');
  const a = await startEdgeProcess(node([`http://127.0.0.1:${b.ports.http![0]}`]));
  t.after(() => a.stop());
  const res = await get(a.ports.http![0]!, `${PREFIX}${TOKEN}`, { host: 'OPAM.test:80' });
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/plain');
  assert.equal(res.body, `${TOKEN}.onB`);
  const bLines = await accessLines(b, 1);
  assert.equal(bLines.length, 1, bLines.join('\n'));
  assert.ok(bLines[0]!.includes(`"GET ${PREFIX}${TOKEN} HTTP/1.1" 200 ${TOKEN.length + 4} "-" ${PEER_UA}`), bLines[0]);
});

test('a token found nowhere, two nodes naming each other: 404 in under 2 s after exactly one hop', async (t) => {
  const a = await startEdgeProcess(node([]));
  t.after(() => a.stop());
  const b = await startEdgeProcess(node([`http://127.0.0.1:${a.ports.http![0]}`]));
  t.after(() => b.stop());
  a.writeConfig(node([`http://127.0.0.1:${b.ports.http![0]}`]));
  a.signal('SIGHUP');
  await a.waitForEvent((e) => e.event === 'reloaded');
  // A first miss warms both processes up (code compiled on first use, peer connections):
  // the bound below is about the forwarding, not a cold start on a loaded machine.
  assert.equal((await get(a.ports.http![0]!, `${PREFIX}warmup`)).status, 404);
  await accessLines(a, 1, 0);
  await accessLines(b, 1, 0);
  a.stdout.length = 0;
  b.stdout.length = 0;
  const started = Date.now();
  const res = await get(a.ports.http![0]!, `${PREFIX}${TOKEN}`);
  const elapsed = Date.now() - started;
  assert.equal(res.status, 404);
  // Far below the 5 s peer timeout: b answered from itself and did not ask a back.
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  const aLines = await accessLines(a, 1);
  const bLines = await accessLines(b, 1, 0);
  // a: the client's request only (b never asked a back); b: a's forwarded request only.
  assert.equal(aLines.length, 1, aLines.join('\n'));
  assert.ok(aLines[0]!.includes(`"GET ${PREFIX}${TOKEN} HTTP/1.1" 404 `) && !aLines[0]!.endsWith(PEER_UA), aLines[0]);
  assert.equal(bLines.length, 1, bLines.join('\n'));
  assert.ok(bLines[0]!.includes(`"GET ${PREFIX}${TOKEN} HTTP/1.1" 404 `) && bLines[0]!.endsWith(PEER_UA), bLines[0]);
  // The same from b's side.
  const back = await get(b.ports.http![0]!, `${PREFIX}other`);
  assert.equal(back.status, 404);
  assert.equal((await accessLines(a, 2)).length, 2);
  assert.equal((await accessLines(b, 2, 0)).length, 2);
});

test('a peer that is down, then one that accepts and never answers: 404 within the 5 s timeout', async (t) => {
  const down = `http://127.0.0.1:${await freePort()}/`;
  const hangs = `http://127.0.0.1:${await hangingPort(t)}/`;
  const a = await startEdgeProcess({ ...node([down, hangs]), access_log: 'off' });
  t.after(() => a.stop());
  const started = Date.now();
  const res = await get(a.ports.http![0]!, `${PREFIX}${TOKEN}`);
  const elapsed = Date.now() - started;
  assert.equal(res.status, 404);
  // The hanging peer costs the whole timeout (5 s), and no more.
  assert.ok(elapsed >= 4500 && elapsed < 8000, `took ${elapsed} ms`);
  await a.waitForEvent((e) => e.event === 'peer_forward_failed' && e.peer === hangs);
  const failures = a.events.filter((e) => e.event === 'peer_forward_failed');
  assert.deepEqual(failures.map((e) => [e.peer, e.code, e.level]), [
    [down, 'PEER_FORWARD_FAILED', 'warn'],
    [hangs, 'PEER_FORWARD_FAILED', 'warn'],
  ]);
  assert.equal(failures[0]!.reason, 'ECONNREFUSED');
});
