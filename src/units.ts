// Parsers for the config file's value syntaxes: durations, sizes, listen addresses.
// Each returns null for input it does not accept, so config.ts can name the key.

import { isIP } from 'node:net';

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** "15s", "2m", "30d", "1h30m", "250ms"; a bare number is seconds, as in nginx. Returns ms. */
export function parseDuration(value: string | number): number | null {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : null;
  }
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const part = /(\d+)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let end = 0;
  for (let match = part.exec(text); match; match = part.exec(text)) {
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!;
    end = part.lastIndex;
  }
  return end > 0 && end === text.length ? total : null;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** "8k", "1m", "512", "2g" (nginx's units, case-insensitive). Returns bytes. */
export function parseSize(value: string | number): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : null;
  const match = /^(\d+)([kmg]?)$/i.exec(value.trim());
  if (!match) return null;
  return Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!;
}

export type ListenAddress = {
  /** The text as the operator wrote it, for logs and errors. */
  readonly text: string;
  /** Address to bind: "::" (dual-stack), "0.0.0.0", "127.0.0.2", "::1", or a name. */
  readonly host: string;
  /** 0 asks the kernel for a free port; the bound port is logged. */
  readonly port: number;
};

/**
 * "[::]:80", "[::1]:8443", "127.0.0.1:80", "localhost:8080", or a bare port "8080"
 * (which means "[::]:8080", dual-stack).
 */
export function parseListen(value: string | number): ListenAddress | { error: string } {
  const text = String(value).trim();
  let host: string;
  let portText: string;
  const bracketed = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
    if (isIP(host) !== 6) return { error: `invalid IPv6 address "${host}"` };
  } else if (/^\d+$/.test(text)) {
    host = '::';
    portText = text;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0 || text.indexOf(':') !== colon) {
      return { error: 'expected "[IPv6]:PORT", "IPv4:PORT", "NAME:PORT" or "PORT"' };
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (!/^[A-Za-z0-9.-]+$/.test(host)) return { error: `invalid address "${host}"` };
    // All digits and dots is meant as IPv4: "999.1.1.1" must not go to the resolver.
    if (/^[\d.]+$/.test(host) && isIP(host) !== 4) return { error: `invalid IPv4 address "${host}"` };
  }
  if (!/^\d{1,5}$/.test(portText)) return { error: `invalid port "${portText}"` };
  const port = Number(portText);
  if (port > 65535) return { error: `port ${port} is out of range (0-65535)` };
  return { text, host, port };
}
