// The node's own HTTP-01 tokens: token -> key authorization, each with an expiry so a token
// whose order died is not served forever. The ACME issuer fills it; http/plain.ts reads it.
// With several workers the primary owns the store and every worker holds a copy (see
// `onChange`), so whichever worker the CA's request lands on can answer.

import { LRUCache } from 'lru-cache';

/** RFC 8555 tokens are base64url; nothing else is ever looked up, on disk or anywhere. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

export function isValidToken(token: string): boolean {
  return TOKEN.test(token);
}

export type ChallengeChange =
  | { op: 'set'; token: string; keyAuthorization: string; ttlMs: number }
  | { op: 'delete'; token: string };

/** Orders finish in seconds; an hour covers a slow CA and a long Retry-After. */
export const DEFAULT_TOKEN_TTL_MS = 60 * 60 * 1000;

export class ChallengeStore {
  #tokens = new LRUCache<string, string>({ max: 10_000, ttl: DEFAULT_TOKEN_TTL_MS, ttlAutopurge: false });
  #listeners = new Set<(change: ChallengeChange) => void>();

  get(token: string): string | undefined {
    return this.#tokens.get(token);
  }

  set(token: string, keyAuthorization: string, ttlMs = DEFAULT_TOKEN_TTL_MS): void {
    if (!isValidToken(token)) throw new TypeError(`invalid ACME token ${JSON.stringify(token)}`);
    this.#tokens.set(token, keyAuthorization, { ttl: ttlMs });
    this.#emit({ op: 'set', token, keyAuthorization, ttlMs });
  }

  delete(token: string): void {
    this.#tokens.delete(token);
    this.#emit({ op: 'delete', token });
  }

  /** Applies a change made elsewhere (a worker receiving the primary's store). */
  apply(change: ChallengeChange): void {
    if (change.op === 'set') this.#tokens.set(change.token, change.keyAuthorization, { ttl: change.ttlMs });
    else this.#tokens.delete(change.token);
  }

  /** Every live entry, to bring a newly started worker up to date. */
  snapshot(): ChallengeChange[] {
    const out: ChallengeChange[] = [];
    for (const [token, keyAuthorization] of this.#tokens.entries()) {
      const ttlMs = Math.max(1, this.#tokens.getRemainingTTL(token));
      out.push({ op: 'set', token, keyAuthorization, ttlMs });
    }
    return out;
  }

  get size(): number {
    return this.#tokens.size;
  }

  onChange(listener: (change: ChallengeChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(change: ChallengeChange): void {
    for (const listener of this.#listeners) listener(change);
  }
}
