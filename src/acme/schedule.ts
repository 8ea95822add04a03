// The arithmetic of the renewal loop, as pure functions of time so tests can check it for
// every certificate lifetime without waiting: when a certificate is due, how long to back
// off after a failure, when the next routine check runs, what a Retry-After means.

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Routine checks run about twice a day (certbot's cron runs twice a day too). */
export const CHECK_INTERVAL_MS = 12 * HOUR;
/** Each routine check lands at a random point of [11 h, 13 h) after the previous one. */
export const CHECK_JITTER_MS = 2 * HOUR;

/** Failed attempts wait about 1 min, 10 min, 100 min, then a day, each +-10 %. */
export const BACKOFF_MS: readonly number[] = [MINUTE, 10 * MINUTE, 100 * MINUTE, DAY];
const BACKOFF_JITTER = 0.1;
/** A Retry-After beyond this is taken as this: a broken header must not stop renewals for good. */
export const MAX_RETRY_AFTER_MS = 7 * DAY;

/** ARI polling: the server's Retry-After within these bounds; 6 h when it sends none. */
export const ARI_POLL_DEFAULT_MS = 6 * HOUR;
export const ARI_POLL_MIN_MS = MINUTE;
export const ARI_POLL_MAX_MS = DAY;

/**
 * When a certificate should be renewed: once less than a third of its lifetime is left.
 * 90 days -> 30 days before expiry; 64 d -> ~21.3 d; 45 d -> 15 d; 160 h -> ~53.3 h.
 */
export function renewalTime(notBefore: number, notAfter: number): number {
  const lifetime = Math.max(0, notAfter - notBefore);
  return notAfter - Math.floor(lifetime / 3);
}

/** Delay before attempt number `failures + 1`, after `failures` consecutive failures (>= 1). */
export function backoffDelay(failures: number, random: () => number = Math.random): number {
  const base = BACKOFF_MS[Math.min(Math.max(failures, 1), BACKOFF_MS.length) - 1]!;
  return Math.round(base * (1 - BACKOFF_JITTER + 2 * BACKOFF_JITTER * random()));
}

/** The next attempt after a failure: the back-off, or later if the server said so. */
export function nextAttemptAfterFailure(now: number, failures: number, retryAfterMs: number | null, random: () => number = Math.random): number {
  const backoff = backoffDelay(failures, random);
  const asked = retryAfterMs === null ? 0 : Math.min(retryAfterMs, MAX_RETRY_AFTER_MS);
  return now + Math.max(backoff, asked);
}

export function nextCheck(now: number, random: () => number = Math.random): number {
  return now + CHECK_INTERVAL_MS - CHECK_JITTER_MS / 2 + Math.floor(random() * CHECK_JITTER_MS);
}

/** When to ask the renewalInfo endpoint again. */
export function nextAriPoll(now: number, retryAfterMs: number | null): number {
  const wait = retryAfterMs === null ? ARI_POLL_DEFAULT_MS : Math.min(ARI_POLL_MAX_MS, Math.max(ARI_POLL_MIN_MS, retryAfterMs));
  return now + wait;
}

/** Retry-After (RFC 9110): delay-seconds or an HTTP-date. Returns ms from `now`, or null. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (!Number.isFinite(at)) return null;
  return Math.max(0, at - now);
}
