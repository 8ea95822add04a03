import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChallengeStore, isValidToken } from '../../src/acme/challenges.ts';
import type { ChallengeChange } from '../../src/acme/challenges.ts';

test('tokens: base64url, 1 to 256 characters, nothing else', () => {
  for (const ok of ['a', 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0', 'A-b_c', 'x'.repeat(256)]) assert.ok(isValidToken(ok), ok);
  for (const bad of ['', '..', '.', '%2e%2e%2f', 'a/b', 'a\\b', 'a.b', 'a b', 'a=', 'x'.repeat(257), 'x'.repeat(300), 'é', 'a\n', 'a\x00']) {
    assert.equal(isValidToken(bad), false, JSON.stringify(bad));
  }
});

test('set, get, delete; an invalid token is never stored', () => {
  const store = new ChallengeStore();
  store.set('tok', 'tok.thumb');
  assert.equal(store.get('tok'), 'tok.thumb');
  assert.equal(store.size, 1);
  store.delete('tok');
  assert.equal(store.get('tok'), undefined);
  assert.throws(() => store.set('../x', 'y'), TypeError);
  assert.equal(store.size, 0);
});

test('a token expires after its time to live', async () => {
  const store = new ChallengeStore();
  store.set('short', 'short.k', 30);
  store.set('long', 'long.k');
  assert.equal(store.get('short'), 'short.k');
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(store.get('short'), undefined);
  assert.equal(store.get('long'), 'long.k');
});

test('changes reach listeners; a copy built from snapshot() and apply() answers the same tokens', () => {
  const primary = new ChallengeStore();
  const seen: ChallengeChange[] = [];
  const off = primary.onChange((c) => seen.push(c));
  primary.set('a', 'a.k', 60_000);
  primary.set('b', 'b.k');
  primary.delete('a');
  off();
  primary.set('c', 'c.k');
  assert.deepEqual(
    seen.map((c) => [c.op, c.token]),
    [['set', 'a'], ['set', 'b'], ['delete', 'a']],
  );
  const worker = new ChallengeStore();
  for (const change of primary.snapshot()) worker.apply(change);
  assert.equal(worker.get('a'), undefined);
  assert.equal(worker.get('b'), 'b.k');
  assert.equal(worker.get('c'), 'c.k');
  for (const change of primary.snapshot()) assert.ok(change.op === 'set' && change.ttlMs > 0);
  // apply() does not echo: a worker's copy never sends changes back.
  const echoed: ChallengeChange[] = [];
  worker.onChange((c) => echoed.push(c));
  worker.apply({ op: 'delete', token: 'b' });
  assert.equal(worker.get('b'), undefined);
  assert.deepEqual(echoed, []);
});
