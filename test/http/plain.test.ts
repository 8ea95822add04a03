// Port 80 (docs/behaviour.md, "Port 80: challenges and the redirect") point by point,
// against a real Edge on a dual-stack socket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fsPromises from 'node:fs/promises';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { freePort, hangingPort } from '../helpers/ports.ts';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { ChallengeSource } from '../../src/http/plain.ts';
import { get, startEdge } from '../helpers/edge-in-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';

const PREFIX = '/.well-known/acme-challenge/';
const TOKEN = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';

function webroot(dir: string, files: Record<string, string> = {}): string {
  const root = join(dir, 'www');
  mkdirSync(join(root, '.well-known', 'acme-challenge'), { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(root, '.well-known', 'acme-challenge', name), content);
  return root;
}

/** Counts fs.promises.open calls made anywhere in the process while `body` runs. */
async function countingOpens<T>(body: () => Promise<T>): Promise<{ result: T; opened: string[] }> {
  const original = fsPromises.open;
  const opened: string[] = [];
  fsPromises.open = ((path: Parameters<typeof original>[0], ...rest: unknown[]) => {
    opened.push(String(path));
    return (original as (...args: unknown[]) => ReturnType<typeof original>)(path, ...rest);
  }) as typeof original;
  syncBuiltinESMExports();
  try {
    return { result: await body(), opened };
  } finally {
    fsPromises.open = original;
    syncBuiltinESMExports();
  }
}

test('the exact path /.well-known/acme-challenge/ is 404, for GET and HEAD, with or without a query', async (t) => {
  const node = await startEdge(t);
  for (const method of ['GET', 'HEAD']) {
    for (const path of [PREFIX, `${PREFIX}?x=1`]) {
      const res = await get(node.port, path, { method });
      assert.equal(res.status, 404, `${method} ${path}`);
    }
  }
  // Without the trailing slash it is an ordinary path: redirected.
  assert.equal((await get(node.port, '/.well-known/acme-challenge')).status, 301);
});

test('a token of this node answers 200 text/plain with its key authorization, from memory first', async (t) => {
  const dir = (await startEdge(t)).dir;
  const sources: ChallengeSource[] = [];
  const node = await startEdge(t, { challenges: { webroot: webroot(dir, { [TOKEN]: 'from-webroot' }) } }, { onChallenge: (s) => sources.push(s) });
  node.edge.challenges.set(TOKEN, `${TOKEN}.thumbprint`);
  const res = await get(node.port, `${PREFIX}${TOKEN}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/plain');
  assert.equal(res.body, `${TOKEN}.thumbprint`);
  const head = await get(node.port, `${PREFIX}${TOKEN}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(`${TOKEN}.thumbprint`.length));
  assert.equal(head.body, '');
  assert.deepEqual(sources, ['memory', 'memory']);
});

test('a token in the webroot answers 200 with the file, as certbot --webroot writes it', async (t) => {
  const sources: ChallengeSource[] = [];
  const first = await startEdge(t);
  const root = webroot(first.dir, { [TOKEN]: `${TOKEN}.fromfile`, big: 'x'.repeat(5000) });
  mkdirSync(join(root, '.well-known', 'acme-challenge', 'adir'));
  execFileSync('mkfifo', [join(root, '.well-known', 'acme-challenge', 'fifo')]);
  const node = await startEdge(t, { challenges: { webroot: root } }, { onChallenge: (s) => sources.push(s) });
  const res = await get(node.port, `${PREFIX}${TOKEN}?ignored=1`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/plain');
  assert.equal(res.body, `${TOKEN}.fromfile`);
  // Not a token file: too large, a directory, a FIFO (which must not block a thread).
  for (const name of ['big', 'adir', 'fifo', 'missing']) assert.equal((await get(node.port, `${PREFIX}${name}`)).status, 404, name);
  assert.deepEqual(sources, ['webroot', 'miss', 'miss', 'miss', 'miss']);
});

test('webroot: symlinks anywhere under it are 404 (file, acme-challenge, .well-known), /proc/self/environ is never served', async (t) => {
  // Before, a link in acme-challenge/ to /proc/self/environ served the process's
  // environment: procfs reports size 0, so the 4 KiB check passed.
  const first = await startEdge(t);
  const sources: ChallengeSource[] = [];
  const root = webroot(first.dir, { [TOKEN]: `${TOKEN}.ok` });
  const challengeDir = join(root, '.well-known', 'acme-challenge');
  symlinkSync('/proc/self/environ', join(challengeDir, 'environ'));
  symlinkSync(join(challengeDir, TOKEN), join(challengeDir, 'alias'));
  // Two more webroots whose token file is regular but reached through a linked directory.
  const linkedDir = webroot(join(first.dir, 'b'));
  rmSync(join(linkedDir, '.well-known', 'acme-challenge'), { recursive: true });
  symlinkSync(challengeDir, join(linkedDir, '.well-known', 'acme-challenge'));
  const linkedWellKnown = join(first.dir, 'c', 'www');
  mkdirSync(linkedWellKnown, { recursive: true });
  symlinkSync(join(root, '.well-known'), join(linkedWellKnown, '.well-known'));
  const node = await startEdge(t, { challenges: { webroot: root } }, { onChallenge: (s) => sources.push(s) });
  const environ = await get(node.port, `${PREFIX}environ`);
  assert.equal(environ.status, 404);
  assert.doesNotMatch(environ.body, /PATH=/);
  assert.equal((await get(node.port, `${PREFIX}alias`)).status, 404, 'a link to a real token file');
  const fifo = join(challengeDir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const started = Date.now();
  assert.equal((await get(node.port, `${PREFIX}fifo`)).status, 404);
  assert.ok(Date.now() - started < 2000, 'a FIFO does not hang the answer');
  assert.equal((await get(node.port, `${PREFIX}${TOKEN}`)).body, `${TOKEN}.ok`, 'the regular file');
  for (const linked of [linkedDir, linkedWellKnown]) {
    const other = await startEdge(t, { challenges: { webroot: linked } });
    assert.equal((await get(other.port, `${PREFIX}${TOKEN}`)).status, 404, linked);
  }
  // The webroot itself may be a link (the operator's choice): only what is below it is checked.
  symlinkSync(root, join(first.dir, 'www-link'));
  const viaLink = await startEdge(t, { challenges: { webroot: join(first.dir, 'www-link') } });
  assert.equal((await get(viaLink.port, `${PREFIX}${TOKEN}`)).body, `${TOKEN}.ok`);
  assert.deepEqual(sources, ['miss', 'miss', 'miss', 'webroot']);
});

test('invalid tokens are 404 without opening any file or asking any peer (.., %2e%2e%2f, a/b, 300 chars)', async (t) => {
  const asked: string[] = [];
  const { createServer } = await import('node:http');
  const peer = createServer((req, res) => {
    asked.push(req.url!);
    res.end('x');
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => peer.close(() => r())));
  const first = await startEdge(t);
  // A trap: files that a path traversal or a decoded token would reach.
  const root = webroot(first.dir, { [TOKEN]: `${TOKEN}.ok` });
  writeFileSync(join(root, 'secret'), 'SECRET');
  writeFileSync(join(root, '.well-known', 'secret'), 'SECRET');
  mkdirSync(join(root, '.well-known', 'acme-challenge', 'a'));
  writeFileSync(join(root, '.well-known', 'acme-challenge', 'a', 'b'), 'SECRET');
  writeFileSync(join(root, '.well-known', 'acme-challenge', 'tok.txt'), 'SECRET');
  const node = await startEdge(t, {
    challenges: { webroot: root, peers: [`http://127.0.0.1:${(peer.address() as AddressInfo).port}`] },
  });
  const bad = [
    '..',
    '%2e%2e%2f',
    '%2e%2e',
    '%2E%2E%2Fsecret',
    '..%2fsecret',
    '..%2f..%2fsecret',
    '../secret',
    'a/b',
    'a%2fb',
    '.',
    'tok.txt',
    'x'.repeat(257),
    'x'.repeat(300),
    '%00',
    'tok%20en',
  ];
  const { opened } = await countingOpens(async () => {
    for (const token of bad) {
      const res = await get(node.port, `${PREFIX}${token}`);
      assert.equal(res.status, 404, token);
      assert.doesNotMatch(res.body, /SECRET/);
    }
  });
  assert.deepEqual(opened, []);
  assert.deepEqual(asked, []);
  // The same spy sees the one file a valid token opens: the check above can fail.
  const control = await countingOpens(() => get(node.port, `${PREFIX}${TOKEN}`));
  assert.equal(control.result.status, 200);
  assert.deepEqual(control.opened, [join(root, '.well-known', 'acme-challenge', TOKEN)]);
});

test('a token found only on a peer is answered from it; the peer answers from its own stores without forwarding', async (t) => {
  const sources: ChallengeSource[] = [];
  const peer = await startEdge(t, {}, { onChallenge: (s) => sources.push(`peer:${s}` as ChallengeSource) });
  peer.edge.challenges.set(TOKEN, `${TOKEN}.onpeer`);
  const node = await startEdge(
    t,
    { challenges: { peers: [`http://127.0.0.1:${peer.port}`] } },
    { onChallenge: (s) => sources.push(s) },
  );
  const res = await get(node.port, `${PREFIX}${TOKEN}`, { host: 'Opam.Test:80' });
  assert.equal(res.status, 200);
  assert.equal(res.body, `${TOKEN}.onpeer`);
  assert.deepEqual(sources, ['peer:memory', 'peer']);
  const peerLog = await peer.accessLines();
  assert.equal(peerLog.length, 1);
  assert.match(peerLog[0]!, new RegExp(`"GET ${PREFIX}${TOKEN} HTTP/1.1" 200 \\d+ "-" "opam-edge \\(challenge peer\\)"$`));
});

test('a token found nowhere, two nodes naming each other as peers: 404 after one hop, no loop', async (t) => {
  const a = await startEdge(t, { challenges: { peers: [] } });
  const b = await startEdge(t, { challenges: { peers: [`http://127.0.0.1:${a.port}`] } });
  // a learns of b by reload, as an operator would do it.
  const { validateConfig } = await import('../../src/config.ts');
  const withPeer = validateConfig(
    {
      listen: { http: ['[::]:0'], https: [] },
      access_log: join(a.dir, 'access.log'),
      challenges: { peers: [`http://127.0.0.1:${b.port}`] },
      sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
    },
    'test',
  );
  assert.ok(withPeer.ok);
  await a.edge.reload(withPeer.config);
  const started = Date.now();
  const res = await get(a.port, `${PREFIX}nowhere`);
  assert.equal(res.status, 404);
  assert.ok(Date.now() - started < 2000);
  const aLog = await a.accessLines();
  const bLog = await b.accessLines();
  assert.equal(aLog.length, 1, aLog.join('\n'));
  assert.match(aLog[0]!, /"GET \/\.well-known\/acme-challenge\/nowhere HTTP\/1\.1" 404 .*"-"$/);
  assert.equal(bLog.length, 1, bLog.join('\n'));
  assert.match(bLog[0]!, /" 404 \d+ "-" "opam-edge \(challenge peer\)"$/);
});

test('a peer that is down or hangs: 404 within the peer timeout', async (t) => {
  for (const peer of [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await hangingPort(t)}`]) {
    const node = await startEdge(t, { challenges: { peers: [peer] } }, { peerTimeoutMs: 500 });
    const started = Date.now();
    const res = await get(node.port, `${PREFIX}${TOKEN}`);
    const elapsed = Date.now() - started;
    assert.equal(res.status, 404, peer);
    assert.ok(elapsed < 3000, `${peer}: ${elapsed} ms`);
    assert.ok(node.events.some((e) => e.event === 'peer_forward_failed' && e.peer === `${peer}/`));
  }
});

test('everything else: 301 to https://host/path?query, host lower-cased without port', async (t) => {
  const node = await startEdge(t);
  const cases: [string, string, string][] = [
    ['opam.test', '/packages/?q=ocaml&x=%20y', 'https://opam.test/packages/?q=ocaml&x=%20y'],
    ['OPAM.Test:8080', '/A/B', 'https://opam.test/A/B'],
    ['opam.test.', '/', 'https://opam.test/'],
    ['[::1]:80', '/v6', 'https://[::1]/v6'],
    ['127.0.0.1:80', '/ip', 'https://127.0.0.1/ip'],
    ['any.other.host', '/x', 'https://any.other.host/x'],
  ];
  for (const [host, path, location] of cases) {
    const res = await get(node.port, path, { host });
    assert.equal(res.status, 301, host);
    assert.equal(res.headers.location, location);
    assert.equal(res.headers['content-type'], 'text/html');
    assert.match(res.body, /301 Moved Permanently/);
  }
  const head = await get(node.port, '/x?y', { method: 'HEAD' });
  assert.equal(head.status, 301);
  assert.equal(head.headers.location, 'https://opam.test/x?y');
  assert.equal(head.body, '');
  // Other methods are redirected too (nginx's `return 301`).
  assert.equal((await get(node.port, '/form', { method: 'POST' })).headers.location, 'https://opam.test/form');
  assert.equal((await get(node.port, `${PREFIX}${TOKEN}`, { method: 'POST' })).status, 301);
});

test('the redirect from an IPv6 client and an IPv4 client on the same dual-stack socket', async (t) => {
  const node = await startEdge(t);
  const v6 = await get(node.port, '/six?a=1', { address: '::1', host: '[::1]:8080' });
  assert.equal(v6.status, 301);
  assert.equal(v6.headers.location, 'https://[::1]/six?a=1');
  const v4 = await get(node.port, '/four', { address: '127.0.0.1' });
  assert.equal(v4.headers.location, 'https://opam.test/four');
  const lines = await node.accessLines();
  assert.match(lines[0]!, /^::1 - - \[/);
  assert.match(lines[1]!, /^127\.0\.0\.1 - - \[/);
});

test('absolute-form target: redirected in origin-form, host from the authority', async (t) => {
  const node = await startEdge(t);
  const res = await rawRequest(node.port, 'GET http://Other.Test:8080/p?q=1 HTTP/1.1\r\nHost: opam.test\r\n\r\n', { quietMs: 300 });
  assert.equal(res.status, 301);
  assert.match(res.text, /\r\nlocation: https:\/\/other\.test\/p\?q=1\r\n/i);
  const bare = await rawRequest(node.port, 'GET http://other.test HTTP/1.1\r\nHost: opam.test\r\n\r\n', { quietMs: 300 });
  assert.match(bare.text, /\r\nlocation: https:\/\/other\.test\/\r\n/i);
  const query = await rawRequest(node.port, 'GET http://other.test?x=1 HTTP/1.1\r\nHost: opam.test\r\n\r\n', { quietMs: 300 });
  assert.match(query.text, /\r\nlocation: https:\/\/other\.test\/\?x=1\r\n/i);
  const badAuthority = await rawRequest(node.port, 'GET http://user@other.test/ HTTP/1.1\r\nHost: opam.test\r\n\r\n', { quietMs: 300 });
  assert.equal(badAuthority.status, 400);
  // A challenge in absolute form is still a challenge.
  node.edge.challenges.set(TOKEN, `${TOKEN}.k`);
  const challenge = await rawRequest(node.port, `GET http://opam.test${PREFIX}${TOKEN} HTTP/1.1\r\nHost: opam.test\r\n\r\n`, { quietMs: 300 });
  assert.equal(challenge.status, 200);
  assert.ok(challenge.text.endsWith(`${TOKEN}.k`));
});

test('a missing, empty, repeated or invalid Host is 400 and the connection is closed', async (t) => {
  const node = await startEdge(t);
  const cases = [
    'GET / HTTP/1.1\r\n\r\n',
    'GET / HTTP/1.0\r\n\r\n',
    'GET / HTTP/1.1\r\nHost:\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: \r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a.test\r\nhost: b.test\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a b\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a.test:99999\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a..test\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n',
    `GET ${PREFIX}${TOKEN} HTTP/1.1\r\n\r\n`,
    'GET http://a.test/ HTTP/1.1\r\n\r\n',
    'GET http://a.test/ HTTP/1.1\r\nHost: a b\r\n\r\n',
  ];
  for (const payload of cases) {
    const res = await rawRequest(node.port, payload, { quietMs: 2000 });
    assert.equal(res.status, 400, JSON.stringify(payload));
    assert.ok(res.closed, JSON.stringify(payload));
    assert.match(res.text, /\r\nconnection: close\r\n/i);
  }
});

test('keep-alive: redirects and 404s keep the connection; a request with a body closes it after the answer', async (t) => {
  const node = await startEdge(t);
  const two = await rawRequest(node.port, `GET /a HTTP/1.1\r\nHost: opam.test\r\n\r\nGET ${PREFIX}x HTTP/1.1\r\nHost: opam.test\r\n\r\n`, { quietMs: 300 });
  assert.deepEqual([...two.text.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => m[1]), ['301', '404']);
  assert.equal(two.closed, false);
  // The body is never read: what follows it must not be taken for a request.
  const smuggle = await rawRequest(
    node.port,
    'POST /a HTTP/1.1\r\nHost: opam.test\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: opam.test\r\n\r\n',
    { quietMs: 1000 },
  );
  assert.deepEqual([...smuggle.text.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => m[1]), ['301']);
  assert.doesNotMatch(smuggle.text, /smuggled/);
  assert.ok(smuggle.closed);
  const chunked = await rawRequest(node.port, 'POST /a HTTP/1.1\r\nHost: opam.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n', { quietMs: 1000 });
  assert.equal(chunked.status, 301);
  assert.ok(chunked.closed);
});

test('access log: one combined line per request, IPv4 clients as plain IPv4, values escaped', async (t) => {
  const node = await startEdge(t);
  node.edge.challenges.set(TOKEN, `${TOKEN}.k`);
  await get(node.port, '/p?q=1', { headers: { referer: 'http://ref.test/', 'user-agent': 'agent "quoted" \\ x' } });
  await get(node.port, `${PREFIX}${TOKEN}`, { method: 'HEAD' });
  await get(node.port, `${PREFIX}${TOKEN}`, { headers: { 'user-agent': 'acme' } });
  await get(node.port, `${PREFIX}..`);
  await rawRequest(node.port, 'GET /old HTTP/1.0\r\nHost: opam.test\r\n\r\n', { quietMs: 300 });
  await rawRequest(node.port, 'GET / HTTP/1.1\r\n\r\n', { quietMs: 300 });
  await rawRequest(node.port, 'GET /nine\r\nHost: opam.test\r\n\r\n', { quietMs: 300 });
  const lines = await node.accessLines();
  const time = String.raw`\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\]`;
  const expected = [
    String.raw`^127\.0\.0\.1 - - ${time} "GET /p\?q=1 HTTP/1\.1" 301 \d+ "http://ref\.test/" "agent \\x22quoted\\x22 \\x5C x"$`,
    String.raw`^127\.0\.0\.1 - - ${time} "HEAD /\.well-known/acme-challenge/${TOKEN} HTTP/1\.1" 200 0 "-" "-"$`,
    String.raw`^127\.0\.0\.1 - - ${time} "GET /\.well-known/acme-challenge/${TOKEN} HTTP/1\.1" 200 ${TOKEN.length + 2} "-" "acme"$`,
    String.raw`^127\.0\.0\.1 - - ${time} "GET /\.well-known/acme-challenge/\.\. HTTP/1\.1" 404 \d+ "-" "-"$`,
    String.raw`^127\.0\.0\.1 - - ${time} "GET /old HTTP/1\.0" 301 \d+ "-" "-"$`,
    String.raw`^127\.0\.0\.1 - - ${time} "GET / HTTP/1\.1" 400 \d+ "-" "-"$`,
    // Closed without an answer: logged with nginx's 444.
    String.raw`^127\.0\.0\.1 - - ${time} "GET /nine HTTP/0\.9" 444 0 "-" "-"$`,
  ];
  assert.equal(lines.length, expected.length, lines.join('\n'));
  lines.forEach((line, i) => assert.match(line, new RegExp(expected[i]!)));
  // The byte count is the body sent.
  const redirectBytes = Number(/" 301 (\d+) /.exec(lines[0]!)![1]);
  assert.equal(redirectBytes, (await import('node:buffer')).Buffer.byteLength((await get((await startEdge(t)).port, '/')).body));
});

test('the http listener is one dual-stack socket: [::]:0 answers on 127.0.0.1 and ::1', async (t) => {
  const node = await startEdge(t);
  assert.equal(node.edge.addresses.http.length, 1);
  assert.match(node.edge.addresses.http[0]!, /^\[::\]:\d+$/);
  assert.equal((await get(node.port, '/', { address: '127.0.0.1' })).status, 301);
  assert.equal((await get(node.port, '/', { address: '::1' })).status, 301);
});
