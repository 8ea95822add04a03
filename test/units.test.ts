import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, parseListen, parseSize } from '../src/units.ts';

test('durations: nginx units, combinations, bare seconds; anything else is refused', () => {
  assert.equal(parseDuration('15s'), 15_000);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('30d'), 30 * 86_400_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1w'), 604_800_000);
  assert.equal(parseDuration('60'), 60_000);
  assert.equal(parseDuration(' 5s '), 5000);
  assert.equal(parseDuration(1.5), 1500);
  assert.equal(parseDuration('0'), 0);
  for (const bad of ['', 'soon', 's', '5x', '5s junk', '-5s', '1.5s', '5 s', 'ms']) assert.equal(parseDuration(bad), null, bad);
  assert.equal(parseDuration(-1), null);
  assert.equal(parseDuration(Number.NaN), null);
});

test('sizes: bytes, k, m, g in either case', () => {
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('8k'), 8192);
  assert.equal(parseSize('16K'), 16_384);
  assert.equal(parseSize('1m'), 1_048_576);
  assert.equal(parseSize('2g'), 2 * 1024 ** 3);
  assert.equal(parseSize(4096), 4096);
  for (const bad of ['', 'k', '1.5k', '8kb', '-1', '12q']) assert.equal(parseSize(bad), null, bad);
  assert.equal(parseSize(1.5), null);
});

test('listen addresses: bracketed IPv6, IPv4, names, bare ports; ports and IPs checked', () => {
  assert.deepEqual(parseListen('[::]:80'), { text: '[::]:80', host: '::', port: 80 });
  assert.deepEqual(parseListen('[::1]:8443'), { text: '[::1]:8443', host: '::1', port: 8443 });
  assert.deepEqual(parseListen('127.0.0.2:80'), { text: '127.0.0.2:80', host: '127.0.0.2', port: 80 });
  assert.deepEqual(parseListen('localhost:8080'), { text: 'localhost:8080', host: 'localhost', port: 8080 });
  assert.deepEqual(parseListen(8080), { text: '8080', host: '::', port: 8080 });
  assert.deepEqual(parseListen('[::]:0'), { text: '[::]:0', host: '::', port: 0 });
  const error = (v: string | number) => {
    const r = parseListen(v);
    return 'error' in r ? r.error : null;
  };
  assert.match(error('[::]:65536')!, /out of range/);
  assert.match(error(70000)!, /out of range/);
  assert.match(error('[:::]:80')!, /invalid IPv6/);
  assert.match(error('999.1.1.1:80')!, /invalid IPv4/);
  assert.match(error('::1:80')!, /expected/);
  assert.match(error(':80')!, /expected/);
  assert.match(error('host:')!, /invalid port/);
  assert.match(error('ho st:80')!, /invalid address/);
  assert.match(error('host:8o')!, /invalid port/);
});
