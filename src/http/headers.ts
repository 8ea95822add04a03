// Pure helpers on the request path: Host checks, client addresses, request ids. No
// allocation beyond the returned value, no regex or URL construction per request.

import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';

const CHAR = {
  dot: 0x2e,
  colon: 0x3a,
  openBracket: 0x5b,
  closeBracket: 0x5d,
} as const;

function isNameChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2d || // -
    c === 0x2e || // .
    c === 0x5f // _
  );
}

function isDigits(value: string, from: number, to: number): boolean {
  if (to - from < 1 || to - from > 5) return false;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
    n = n * 10 + (c - 0x30);
  }
  return n <= 65535;
}

/**
 * A Host header value (or :authority) -> the host without port, lower-cased, trailing dot
 * removed (nginx's $host). null when missing, empty or not a valid `host[:port]`.
 * IPv6 literals keep their brackets: "[::1]:8443" -> "[::1]".
 */
export function hostWithoutPort(value: string | undefined): string | null {
  if (value === undefined) return null;
  const length = value.length;
  if (length === 0 || length > 260) return null;
  let end: number;
  if (value.charCodeAt(0) === CHAR.openBracket) {
    const close = value.indexOf(']');
    if (close < 3 || !isIPv6(value.slice(1, close))) return null;
    end = close + 1;
    if (end < length && (value.charCodeAt(end) !== CHAR.colon || !isDigits(value, end + 1, length))) return null;
  } else {
    end = length;
    let lower = true;
    for (let i = 0; i < length; i++) {
      const c = value.charCodeAt(i);
      if (c === CHAR.colon) {
        if (!isDigits(value, i + 1, length)) return null;
        end = i;
        break;
      }
      if (!isNameChar(c)) return null;
      if (c >= 0x41 && c <= 0x5a) lower = false;
    }
    if (end === 0) return null;
    // A trailing dot names the same host ("opam.ocaml.org."); nginx drops it too.
    if (value.charCodeAt(end - 1) === CHAR.dot) end--;
    if (end === 0 || value.charCodeAt(0) === CHAR.dot || value.includes('..')) return null;
    const host = end === length ? value : value.slice(0, end);
    return lower ? host : host.toLowerCase();
  }
  const host = end === length ? value : value.slice(0, end);
  return host.toLowerCase();
}

/** How many Host fields the request carried (node:http keeps only the first). */
export function hostFieldCount(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/** "::ffff:192.0.2.1" -> "192.0.2.1": an IPv4 client on a dual-stack socket is written as IPv4. */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return '-';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}

const idPrefix = randomBytes(6).toString('hex');
let idCounter = 0;

/** A request id unique within this process and distinct across processes: 12 hex + counter. */
export function requestId(): string {
  idCounter = (idCounter + 1) % 0x7fffffff;
  return idPrefix + idCounter.toString(16).padStart(8, '0');
}
