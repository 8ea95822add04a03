import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickInWindow } from '../../src/acme/ari.ts';
import {
  ARI_POLL_DEFAULT_MS,
  DAY,
  HOUR,
  MINUTE,
  backoffDelay,
  nextAriPoll,
  nextAttemptAfterFailure,
  nextCheck,
  parseRetryAfter,
  renewalTime,
} from '../../src/acme/schedule.ts';

test('renewal when a third of the lifetime is left: 90 d, 64 d, 45 d, 160 h, 2 min', () => {
  const t0 = Date.UTC(2026, 0, 1);
  const cases: [number, number][] = [
    [90 * DAY, 30 * DAY],
    [64 * DAY, Math.floor((64 * DAY) / 3)],
    [45 * DAY, 15 * DAY],
    [160 * HOUR, Math.floor((160 * HOUR) / 3)],
    [120_000, 40_000],
  ];
  for (const [lifetime, left] of cases) {
    assert.equal(renewalTime(t0, t0 + lifetime), t0 + lifetime - left, `lifetime ${lifetime / HOUR} h`);
    // Every one is renewed well before expiry, and after the twice-daily check could miss it
    // only for lifetimes shorter than a check interval (hence the wake at the due time).
    assert.ok(renewalTime(t0, t0 + lifetime) < t0 + lifetime);
  }
});

test('back-off: about 1 min, 10 min, 100 min, then daily, with +-10 % jitter', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 9].map((n) => backoffDelay(n, () => 0.5)), [MINUTE, 10 * MINUTE, 100 * MINUTE, DAY, DAY, DAY]);
  assert.equal(backoffDelay(1, () => 0), 0.9 * MINUTE);
  assert.equal(backoffDelay(1, () => 1), 1.1 * MINUTE);
  const now = 1_000_000;
  assert.equal(nextAttemptAfterFailure(now, 1, null, () => 0.5), now + MINUTE);
  assert.equal(nextAttemptAfterFailure(now, 1, 2 * HOUR, () => 0.5), now + 2 * HOUR, 'a longer Retry-After wins');
  assert.equal(nextAttemptAfterFailure(now, 4, 2 * HOUR, () => 0.5), now + DAY, 'a longer back-off wins');
  assert.equal(nextAttemptAfterFailure(now, 1, 365 * DAY, () => 0.5), now + 7 * DAY, 'a broken Retry-After is capped');
});

test('routine checks about twice a day; ARI polls follow Retry-After within bounds', () => {
  const now = 0;
  assert.equal(nextCheck(now, () => 0), 11 * HOUR);
  assert.ok(nextCheck(now, () => 0.999999) < 13 * HOUR && nextCheck(now, () => 0.999999) > 12.9 * HOUR);
  assert.equal(nextAriPoll(now, null), ARI_POLL_DEFAULT_MS);
  assert.equal(nextAriPoll(now, 2 * HOUR), 2 * HOUR);
  assert.equal(nextAriPoll(now, 1000), MINUTE);
  assert.equal(nextAriPoll(now, 30 * DAY), DAY);
  assert.equal(pickInWindow(100, 200, () => 0.5), 150);
  assert.equal(pickInWindow(100, 100, () => 0.5), 100);
});

test('Retry-After: seconds or an HTTP date', () => {
  const now = Date.UTC(2026, 10, 26, 10, 0, 0);
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter('Thu, 26 Nov 2026 11:00:00 GMT', now), HOUR);
  assert.equal(parseRetryAfter('Thu, 26 Nov 2026 09:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter(undefined, now), null);
});
