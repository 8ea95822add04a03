import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createAccessLog, createEventLog, escapeLogValue, headerText, renderCombined, renderJson, timeLocal } from '../src/log.ts';
import type { AccessRecord } from '../src/log.ts';
import { tempDir } from './helpers/edge-process.ts';
import { startEdge } from './helpers/edge-in-process.ts';
import { startOrigin, echo } from './helpers/origin.ts';
import { makeCert } from './helpers/certs.ts';
import { handshake } from './helpers/tls-client.ts';
import { h2RawRequest } from './helpers/h2-raw.ts';

const record = (over: Partial<AccessRecord> = {}): AccessRecord => ({
  remoteAddr: '192.0.2.1',
  method: 'GET',
  url: '/p?q=1',
  httpVersion: '1.1',
  status: 301,
  bytesSent: 162,
  referer: undefined,
  userAgent: 'curl/8.0',
  host: 'opam.ocaml.org',
  upstreamAddr: null,
  startedAt: Date.UTC(2026, 10, 26, 9, 9, 33, 250),
  requestId: null,
  ...over,
});

test('$time_local as nginx writes it (UTC)', () => {
  assert.equal(timeLocal(Date.UTC(2026, 10, 26, 9, 9, 33, 999)), '26/Nov/2026:09:09:33 +0000');
  assert.equal(timeLocal(Date.UTC(2027, 0, 2, 3, 4, 5)), '02/Jan/2027:03:04:05 +0000');
});

/** When the line is written: 1.5 s after the record's start. */
const END = Date.UTC(2026, 10, 26, 9, 9, 34, 750);

test('combined format: the nginx line, field by field', () => {
  assert.equal(
    renderCombined(record(), Date.UTC(2026, 10, 26, 9, 9, 33, 900)),
    '192.0.2.1 - - [26/Nov/2026:09:09:33 +0000] "GET /p?q=1 HTTP/1.1" 301 162 "-" "curl/8.0"\n',
  );
  assert.equal(
    renderCombined(record({ remoteAddr: '::1', method: 'HEAD', httpVersion: '1.0', status: 404, bytesSent: 0, referer: 'http://r/', userAgent: undefined }), Date.UTC(2026, 10, 26, 9, 9, 33)),
    '::1 - - [26/Nov/2026:09:09:33 +0000] "HEAD /p?q=1 HTTP/1.0" 404 0 "http://r/" "-"\n',
  );
});

test('logged values are escaped as nginx does: quotes, backslashes and non-printable bytes as \\xHH', () => {
  assert.equal(escapeLogValue('plain value/1.0 (x; y)'), 'plain value/1.0 (x; y)');
  assert.equal(escapeLogValue('say "hi"'), 'say \\x22hi\\x22');
  assert.equal(escapeLogValue('a\\b'), 'a\\x5Cb');
  assert.equal(escapeLogValue('tab\there\x7f'), 'tab\\x09here\\x7F');
  // node:http hands header values over as latin1: one char per byte.
  assert.equal(escapeLogValue('caf\xc3\xa9'), 'caf\\xC3\\xA9');
  const line = renderCombined(record({ userAgent: 'evil" 200 999 "x', referer: 'r"ef', url: '/a"b' }), Date.UTC(2026, 10, 26, 9, 9, 33));
  assert.equal(line, '192.0.2.1 - - [26/Nov/2026:09:09:33 +0000] "GET /a\\x22b HTTP/1.1" 301 162 "r\\x22ef" "evil\\x22 200 999 \\x22x"\n');
  // Exactly the eight fields of `combined` survive a hostile User-Agent: four quoted parts.
  assert.equal(line.split('"').length, 7);
});

test('json format: the same fields plus host, upstream, duration and request id', () => {
  const parsed = JSON.parse(renderJson(record({ upstreamAddr: '10.0.0.5:80', requestId: 'abc' }), END)) as Record<string, unknown>;
  assert.equal(parsed.time, '2026-11-26T09:09:34.750Z', 'when the line is written');
  assert.equal(parsed.request_time, 1.5);
  assert.equal(parsed.remote_addr, '192.0.2.1');
  assert.equal(parsed.request, 'GET /p?q=1 HTTP/1.1');
  assert.equal(parsed.status, 301);
  assert.equal(parsed.body_bytes_sent, 162);
  assert.equal(parsed.http_referer, null);
  assert.equal(parsed.http_user_agent, 'curl/8.0');
  assert.equal(parsed.host, 'opam.ocaml.org');
  assert.equal(parsed.upstream_addr, '10.0.0.5:80');
  assert.equal(parsed.request_id, 'abc');
});

test('combined $time_local is the end of the request (when nginx writes the line), not its start', () => {
  assert.match(renderCombined(record(), END), /\[26\/Nov\/2026:09:09:34 \+0000\]/);
});

test('json: UTF-8 bytes (given one char per byte by node) parse back as the same characters; other bytes stay one char each', () => {
  const latin1 = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
  assert.equal(headerText(latin1('Müller/1.0 ✓ 😀')), 'Müller/1.0 ✓ 😀');
  assert.equal(headerText('caf\xe9'), 'caf\xe9', 'a lone latin1 byte is not UTF-8');
  assert.equal(headerText(latin1('\ufeffbom')), '\ufeffbom', 'a BOM is kept');
  const line = renderJson(record({ userAgent: latin1('Müller/1.0 ✓'), referer: latin1('http://r/ü'), url: latin1('/ä') }), END);
  assert.match(line, /^[\x20-\x7e]+\n$/, 'the line stays ASCII');
  const parsed = JSON.parse(line) as Record<string, unknown>;
  assert.equal(parsed.http_user_agent, 'Müller/1.0 ✓');
  assert.equal(parsed.http_referer, 'http://r/ü');
  assert.equal(parsed.request, 'GET /ä HTTP/1.1');
  // combined keeps nginx's \xHH for every byte past ASCII.
  assert.match(renderCombined(record({ userAgent: latin1('Müller ✓') }), END), /"M\\xC3\\xBCller \\xE2\\x9C\\x93"\n$/);
  assert.equal(escapeLogValue('Müller ✓'), 'M\\xC3\\xBCller \\xE2\\x9C\\x93', 'a string that is text already: its UTF-8 bytes');
});

test('an access log file gets every line by close, and reopens after a rotation', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'logs', 'access.log');
  const log = createAccessLog(path, 'combined');
  assert.equal(log.enabled, true);
  log.write(record({ url: '/one' }));
  await new Promise((r) => setTimeout(r, 100));
  log.flush();
  await new Promise((r) => setTimeout(r, 100));
  renameSync(path, `${path}.1`);
  log.reopen();
  log.write(record({ url: '/two' }));
  await log.close();
  log.write(record({ url: '/after-close' }));
  assert.match(readFileSync(`${path}.1`, 'utf8'), /"GET \/one HTTP\/1.1"/);
  const current = readFileSync(path, 'utf8');
  assert.match(current, /"GET \/two HTTP\/1.1"/);
  assert.doesNotMatch(current, /after-close/);
});

test('access_log off writes nothing and reports itself disabled', async () => {
  const log = createAccessLog('off', 'combined');
  assert.equal(log.enabled, false);
  log.write(record());
  await log.close();
  assert.equal(existsSync('off'), false);
});

test('events are JSON lines with level, time, pid and event name', () => {
  const out = new PassThrough();
  const lines: string[] = [];
  out.setEncoding('utf8').on('data', (d: string) => lines.push(...d.trimEnd().split('\n')));
  const log = createEventLog(out, 'info');
  log.debug('hidden');
  log.info('listening', { role: 'http', bound: '[::]:80' });
  log.error('reload_refused', { errors: ['a: b'] });
  const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(events.length, 2);
  assert.equal(events[0]!.level, 'info');
  assert.equal(events[0]!.event, 'listening');
  assert.equal(events[0]!.bound, '[::]:80');
  assert.equal(events[0]!.pid, process.pid);
  assert.match(String(events[0]!.time), /^\d{4}-\d\d-\d\dT/);
  assert.equal(events[1]!.level, 'error');
  assert.deepEqual(events[1]!.errors, ['a: b']);
});

test('over real sockets: raw UTF-8 user agents on HTTP/1.1 and h2 come out as the same characters in JSON, as \\xHH in combined; combined time is the end', async (t) => {
  const origin = await startOrigin({ handler: (req, res) => setTimeout(() => echo(req, res), req.url === '/slow' ? 1500 : 0) });
  t.after(() => origin.close());
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['opam.test'], dir, stem: 'c' });
  const agent = 'Müller/1.0 ✓';
  const raw = Buffer.from(agent, 'utf8');
  const edges = [];
  for (const format of ['json', 'combined']) {
    const edge = await startEdge(t, {
      listen: { http: [], https: ['127.0.0.1:0'] },
      tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
      access_log_format: format,
      sites: [{ hosts: ['opam.test'], upstream: `http://127.0.0.1:${origin.port}` }],
    });
    const port = edge.edge.ports.https[0]!;
    const h = await handshake(port, { servername: 'opam.test', ALPNProtocols: ['http/1.1'] });
    const startedAt = Date.now();
    const answered = new Promise<void>((resolve) => h.socket.on('data', (d: Buffer) => d.includes('"bodyLength"') && resolve()));
    h.socket.write(Buffer.concat([Buffer.from('GET /slow HTTP/1.1\r\nHost: opam.test\r\nUser-Agent: '), raw, Buffer.from('\r\n\r\n')]));
    await answered;
    h.socket.destroy();
    const fields: [string, string | Buffer][] = [[':method', 'GET'], [':scheme', 'https'], [':authority', 'opam.test'], [':path', '/h2'], ['user-agent', raw]];
    assert.deepEqual(await h2RawRequest(port, 'opam.test', fields), { kind: 'headers', status: 200 });
    edges.push({ format, lines: await edge.accessLines(), startedAt });
  }
  const [json, combined] = edges;
  const parsed = json!.lines.map((l) => JSON.parse(l) as { http_user_agent: string; request: string });
  assert.deepEqual(parsed.map((p) => [p.request, p.http_user_agent]), [['GET /slow HTTP/1.1', agent], ['GET /h2 HTTP/2.0', agent]]);
  const escaped = '"M\\xC3\\xBCller/1.0 \\xE2\\x9C\\x93"';
  assert.equal(combined!.lines.length, 2);
  for (const line of combined!.lines) assert.ok(line.endsWith(escaped), line);
  // The slow request took 1.5 s: its line carries a second after the one it started in.
  const [, day, month, year, hh, mm, ss] = /\[(\d\d)\/(\w{3})\/(\d{4}):(\d\d):(\d\d):(\d\d) /.exec(combined!.lines[0]!)!;
  const logged = Date.UTC(Number(year), ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].indexOf(month!), Number(day), Number(hh), Number(mm), Number(ss));
  assert.ok(logged >= Math.floor((combined!.startedAt + 1500) / 1000) * 1000, `${combined!.lines[0]} (sent at ${new Date(combined!.startedAt).toISOString()})`);
});
