// Host names: the one rule for "does this pattern cover that name" (certmagic's
// MatchWildcard), used by the config checks, routing, TLS contexts and ACME alike, so that
// what `check` accepts is what the proxy serves.
//
// Normal form: lower-case ASCII without a trailing dot ("OPAM.ocaml.org." and
// "opam.ocaml.org" name one host, as nginx's $host has it). Host headers and SNI arrive in
// this form (http/headers.ts, tls/client-hello.ts); config values and certificate names are
// normalised once when they are read. IPv6 literals keep their brackets: "[::1]".
//
// A pattern is a name or "*." + name. The wildcard covers exactly one label, as in
// RFC 6125 6.4.3, nginx and Caddy: "*.example.org" covers "a.example.org", not
// "example.org" nor "a.b.example.org". An IP literal is never covered by a wildcard.

import { isIP } from 'node:net';

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/i;
const NUMERIC_LABEL = /^\d+$/;

/** Lower-case, one trailing dot removed. */
export function normalizeHostName(value: string): string {
  const lower = value.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** "10.0.0.1" or "[::1]" (the bracketed form a Host header carries). */
export function isIpLiteral(name: string): boolean {
  if (name.startsWith('[')) return name.endsWith(']') && isIP(name.slice(1, -1)) === 6;
  return isIP(name) === 4;
}

/**
 * A DNS name (letters, digits, hyphen, underscore; dot-separated labels, case-insensitive,
 * no trailing dot: normalise first) or an IP literal.
 */
export function isHostName(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  if (value.startsWith('[')) return isIpLiteral(value);
  return value.split('.').every((label) => LABEL.test(label));
}

export function isWildcard(pattern: string): boolean {
  return pattern.startsWith('*.');
}

/**
 * A host name, or "*." and a DNS name whose last label is not all digits (such a wildcard
 * could only ever meet an IPv4 literal, which wildcards never cover).
 */
export function isHostPattern(value: string): boolean {
  if (!isWildcard(value)) return isHostName(value);
  const parent = value.slice(2);
  return !parent.startsWith('[') && isHostName(parent) && !NUMERIC_LABEL.test(parent.slice(parent.lastIndexOf('.') + 1));
}

/** Does `pattern` cover `name`? Both are normalised here; not for the request path. */
export function covers(pattern: string, name: string): boolean {
  const p = normalizeHostName(pattern);
  const n = normalizeHostName(name);
  if (p === n) return true;
  if (!isHostPattern(p) || !isWildcard(p) || isIpLiteral(n)) return false;
  const dot = n.indexOf('.');
  return dot > 0 && n.slice(dot + 1) === p.slice(2);
}

/** The lookup side of a HostMap: what snapshots hand to the request and handshake paths. */
export type HostLookup<T> = {
  /** `name` in normal form. The exact name first, then the wildcard one label up. */
  lookup(name: string): T | null;
  /** The value stored under `pattern` itself (exact or wildcard), no matching. */
  get(pattern: string): T | null;
  readonly size: number;
};

/**
 * Patterns -> values in two maps: exact names, and wildcards keyed by their parent
 * ("*.example.org" under "example.org"). A lookup is at most two Map gets and one slice.
 * Filled once while a snapshot is built, then only read.
 */
export class HostMap<T> implements HostLookup<T> {
  readonly #exact = new Map<string, T>();
  readonly #wildcard = new Map<string, T>();

  /**
   * Stores `value` under a normalised pattern (a later set replaces an earlier one). A
   * pattern isHostPattern refuses covers nothing and is not stored: returns false.
   */
  set(pattern: string, value: T): boolean {
    if (!isHostPattern(pattern)) return false;
    if (isWildcard(pattern)) this.#wildcard.set(pattern.slice(2), value);
    else this.#exact.set(pattern, value);
    return true;
  }

  get(pattern: string): T | null {
    return (isWildcard(pattern) ? this.#wildcard.get(pattern.slice(2)) : this.#exact.get(pattern)) ?? null;
  }

  lookup(name: string): T | null {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    if (this.#wildcard.size === 0) return null;
    const dot = name.indexOf('.');
    // An IPv4 literal's parent ends in digits, which no stored wildcard parent does.
    return dot > 0 ? (this.#wildcard.get(name.slice(dot + 1)) ?? null) : null;
  }

  get size(): number {
    return this.#exact.size + this.#wildcard.size;
  }
}
