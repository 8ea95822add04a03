// The corpus harness tested on its own: the recording origin's strict parser, the response
// splitter, the expectation language, and a TLS exchange (the https proxy target's path).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { RecordingOrigin } from './recording-origin.ts';
import { parseResponses } from './responses.ts';
import { matchExpectation, parseExpectation } from './expectations.ts';
import type { Observation } from './expectations.ts';
import { observe, judge } from './runner.ts';
import { loadCorpus } from './corpus.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { makeCert } from '../helpers/certs.ts';

async function feed(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(Buffer.from(bytes, 'latin1')));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve(text));
    setTimeout(() => socket.destroy(), 300);
  });
}

test('the recording origin counts what a strict parser reads, and nothing else', async (t) => {
  const origin = new RecordingOrigin();
  const port = await origin.listen();
  t.after(() => origin.close());
  const H = 'Host: a\r\n';
  const cases: [string, string, { started: number; complete: number; errors: number; smuggled?: boolean }][] = [
    ['content-length body', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, { started: 1, complete: 1, errors: 0 }],
    ['chunked body with a trailer', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n`, { started: 1, complete: 1, errors: 0 }],
    ['two pipelined', `GET /a HTTP/1.1\r\n${H}\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, { started: 2, complete: 2, errors: 0, smuggled: true }],
    ['CL and TE', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, { started: 0, complete: 0, errors: 1 }],
    ['bare LF', `GET / HTTP/1.1\n${H}\r\n`, { started: 0, complete: 0, errors: 1 }],
    ['obs-fold', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`, { started: 0, complete: 0, errors: 1 }],
    ['TE not exactly chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n`, { started: 0, complete: 0, errors: 1 }],
    ['bad chunk size after the head', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`, { started: 1, complete: 0, errors: 1 }],
    ['cut off in the body', `POST / HTTP/1.1\r\n${H}Content-Length: 50\r\n\r\nhello`, { started: 1, complete: 0, errors: 0 }],
  ];
  for (const [name, bytes, want] of cases) {
    const answer = await feed(port, bytes);
    const seen = origin.take();
    assert.equal(seen.started, want.started, `${name}: started`);
    assert.equal(seen.complete, want.complete, `${name}: complete`);
    assert.equal(seen.errors.length, want.errors, `${name}: errors ${seen.errors.join('; ')}`);
    assert.equal(seen.requests.some((r) => r.target === '/smuggled'), !!want.smuggled, `${name}: targets`);
    if (want.complete > 0) assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, name);
  }
});

test('responses are split by their framing, interim answers apart', () => {
  const stream = Buffer.from(
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 301 Moved\r\nLocation: https://a/\r\nContent-Length: 3\r\n\r\nabc' +
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n',
    'latin1',
  );
  const parsed = parseResponses(stream, true);
  assert.deepEqual(parsed.interim, [100]);
  assert.deepEqual(parsed.responses.map((r) => r.status), [301, 200, 400]);
  assert.equal(parsed.responses[0]!.headers.get('location'), 'https://a/');
  assert.deepEqual(parseResponses(Buffer.from('<html>0.9</html>'), true).responses.map((r) => r.status), [0]);
  assert.equal(parseResponses(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc'), false).partial, true);
});

test('the expectation language: sequences, alternatives, closes', () => {
  const seen = (statuses: number[], closed: boolean, fromOrigin = false): Observation => ({
    responses: statuses.map((status) => ({ status, fromOrigin })),
    interim: [],
    closed,
    ms: 0,
  });
  assert.ok(matchExpectation(parseExpectation('reject-400', 'http'), seen([400], true), 'http'));
  assert.equal(matchExpectation(parseExpectation('reject-400', 'http'), seen([400], false), 'http'), null, 'a rejection must close');
  assert.equal(matchExpectation(parseExpectation('redirect', 'http'), seen([301, 301], false), 'http'), null, 'an extra answer is no match');
  assert.ok(matchExpectation(parseExpectation('redirect+reject-400', 'http'), seen([301, 400], true), 'http'));
  assert.ok(matchExpectation(parseExpectation('reject-400-body', 'http'), seen([301, 400], true), 'http'), 'port 80 may redirect before the body');
  assert.equal(matchExpectation(parseExpectation('reject-400-body', 'proxy'), seen([200], true, true), 'proxy'), null);
  assert.ok(matchExpectation(parseExpectation('forward|reject-400', 'proxy'), seen([200], false, true), 'proxy'));
  assert.equal(matchExpectation(parseExpectation('forward', 'proxy'), seen([200], false, false), 'proxy'), null, 'a 200 not from the origin is no forward');
  assert.ok(matchExpectation(parseExpectation('close|reject-400', 'http'), seen([], true), 'http'));
  assert.ok(matchExpectation(parseExpectation('wait', 'proxy'), seen([], false), 'proxy'));
  assert.throws(() => parseExpectation('forward', 'http'), /not an outcome of the http role/);
  assert.throws(() => parseExpectation('reject-400+redirect', 'http'), /must be the last step/);
});

test('a case is sent over TLS as over TCP (the https proxy target)', async (t) => {
  const dir = tempDir('opam-edge-harness-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['edge.test'], dir });
  const server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    res.writeHead(301, { location: `https://edge.test${req.url}`, 'content-length': 0 });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.on('secureConnection', (s) => t.after(() => s.destroy()));
  const testCase = loadCorpus().find((c) => c.id === 'pipeline-two-valid')!;
  const target = { key: 'edge-http' as const, port: (server.address() as AddressInfo).port, tls: { servername: 'edge.test' }, version: 'test' };
  const seen = await observe(target, testCase, { firstByteMs: 2000, quietMs: 200, settleMs: 0 });
  assert.deepEqual(seen.responses.map((r) => r.location), ['https://edge.test/a', 'https://edge.test/b']);
  assert.equal(judge(testCase, 'http', seen).statusOk, true);
});
