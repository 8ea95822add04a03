// Checks one certificate/key pair before it may serve: every PEM block of the chain parses,
// the key parses and matches the leaf, the leaf is valid now, it names at least one DNS
// host, and its key is ECDSA or RSA. A refusal says which half is at fault ("cert" or
// "key") so callers can name the config key.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { CertInfo, PemPair } from './certificate.ts';
import { isHostPattern, normalizeHostName } from '../host-name.ts';

export type ParsedPair = {
  info: Omit<CertInfo, 'source' | 'origin'>;
  /** The chain as parsed (leaf first), PEM blocks re-joined without stray text. */
  chain: string;
  key: string;
};

export type PairRefusal = { field: 'cert' | 'key'; reason: string };

const BEGIN_CERT = '-----BEGIN CERTIFICATE-----';
const END_CERT = '-----END CERTIFICATE-----';
const DAY_MS = 86_400_000;

/** Splits a PEM chain into its certificate blocks; null when a block is cut short. */
export function certificateBlocks(pem: string): string[] | null {
  const blocks: string[] = [];
  let from = pem.indexOf(BEGIN_CERT);
  while (from >= 0) {
    const end = pem.indexOf(END_CERT, from);
    if (end < 0) return null;
    const next = pem.indexOf(BEGIN_CERT, from + BEGIN_CERT.length);
    // A BEGIN before this block's END: the block was truncated and another pasted after it.
    if (next >= 0 && next < end) return null;
    blocks.push(`${pem.slice(from, end + END_CERT.length)}\n`);
    from = next;
  }
  return blocks;
}

/** The DNS names of a certificate's subjectAltName, lower-case ("*.example.org" kept). */
export function dnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  const names: string[] = [];
  // Node writes "DNS:a.example, DNS:b.example, IP Address:127.0.0.1" and quotes values
  // with unusual characters; a quoted value is not a host name we could serve anyway.
  for (const part of san.split(', ')) {
    if (!part.startsWith('DNS:')) continue;
    const name = normalizeHostName(part.slice(4));
    if (!name.startsWith('[') && isHostPattern(name) && !names.includes(name)) names.push(name);
  }
  return names;
}

export function daysLeft(notAfter: Date, now: number): number {
  return Math.floor((notAfter.getTime() - now) / DAY_MS);
}

/** Validates a pair at time `now` (ms). Never throws. */
export function parsePair(pair: PemPair, now: number): ParsedPair | PairRefusal {
  const blocks = certificateBlocks(pair.cert);
  if (blocks === null) return { field: 'cert', reason: 'truncated PEM certificate (a BEGIN without its END)' };
  if (blocks.length === 0) return { field: 'cert', reason: 'no PEM certificate in the file' };
  const chain: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      chain.push(new X509Certificate(block));
    } catch (err) {
      return { field: 'cert', reason: `certificate ${i + 1} of the chain does not parse (${shortError(err)})` };
    }
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pair.key);
  } catch (err) {
    return { field: 'key', reason: `not a readable PEM private key (${shortError(err)})` };
  }
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) return { field: 'key', reason: 'does not match the certificate' };
  const type = leaf.publicKey.asymmetricKeyType;
  if (type !== 'ec' && type !== 'rsa') {
    return { field: 'cert', reason: `unsupported key type "${type}" (ECDSA or RSA)` };
  }
  const notBefore = leaf.validFromDate;
  const notAfter = leaf.validToDate;
  if (notAfter.getTime() <= now) return { field: 'cert', reason: `expired on ${notAfter.toISOString()}` };
  if (notBefore.getTime() > now) return { field: 'cert', reason: `not valid before ${notBefore.toISOString()}` };
  const names = dnsNames(leaf);
  if (names.length === 0) return { field: 'cert', reason: 'no DNS names in its subjectAltName' };
  return {
    info: {
      names,
      serial: leaf.serialNumber.toUpperCase(),
      issuer: leaf.issuer.replace(/\n/g, ', '),
      notBefore,
      notAfter,
      keyType: type === 'ec' ? 'ecdsa' : 'rsa',
      fingerprint256: leaf.fingerprint256,
    },
    chain: blocks.join(''),
    key: pair.key,
  };
}

export function isRefusal(result: ParsedPair | PairRefusal): result is PairRefusal {
  return 'reason' in result;
}

function shortError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.code ?? e.message?.split('\n')[0] ?? String(err);
}
