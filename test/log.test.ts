import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createAccessLog, createEventLog, escapeLogValue, renderCombined, renderJson, timeLocal } from '../src/log.ts';
import type { AccessRecord } from '../src/log.ts';
import { tempDir } from './helpers/edge-process.ts';

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

test('combined format: the nginx line, field by field', () => {
  assert.equal(
    renderCombined(record()),
    '192.0.2.1 - - [26/Nov/2026:09:09:33 +0000] "GET /p?q=1 HTTP/1.1" 301 162 "-" "curl/8.0"\n',
  );
  assert.equal(
    renderCombined(record({ remoteAddr: '::1', method: 'HEAD', httpVersion: '1.0', status: 404, bytesSent: 0, referer: 'http://r/', userAgent: undefined })),
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
  const line = renderCombined(record({ userAgent: 'evil" 200 999 "x', referer: 'r"ef', url: '/a"b' }));
  assert.equal(line, '192.0.2.1 - - [26/Nov/2026:09:09:33 +0000] "GET /a\\x22b HTTP/1.1" 301 162 "r\\x22ef" "evil\\x22 200 999 \\x22x"\n');
  // Exactly the eight fields of `combined` survive a hostile User-Agent: four quoted parts.
  assert.equal(line.split('"').length, 7);
});

test('json format: the same fields plus host, upstream, duration and request id', () => {
  const parsed = JSON.parse(renderJson(record({ upstreamAddr: '10.0.0.5:80', requestId: 'abc' }))) as Record<string, unknown>;
  assert.equal(parsed.time, '2026-11-26T09:09:33.250Z');
  assert.equal(parsed.remote_addr, '192.0.2.1');
  assert.equal(parsed.request, 'GET /p?q=1 HTTP/1.1');
  assert.equal(parsed.status, 301);
  assert.equal(parsed.body_bytes_sent, 162);
  assert.equal(parsed.http_referer, null);
  assert.equal(parsed.http_user_agent, 'curl/8.0');
  assert.equal(parsed.host, 'opam.ocaml.org');
  assert.equal(parsed.upstream_addr, '10.0.0.5:80');
  assert.equal(parsed.request_id, 'abc');
  assert.equal(typeof parsed.request_time, 'number');
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
