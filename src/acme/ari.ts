// ACME Renewal Information (RFC 9773): the CA suggests a window in which to renew each
// certificate, and may move it earlier (mass revocation). A certificate is named by its
// "certID": base64url(Authority Key Identifier) "." base64url(serial number DER bytes).
// node:crypto does not expose the AKI, so a minimal DER walk finds it.

import { X509Certificate } from 'node:crypto';

/** Picks a moment inside the window, uniformly: many clients do not all come at once. */
export function pickInWindow(start: number, end: number, random: () => number = Math.random): number {
  if (end <= start) return start;
  return start + Math.floor(random() * (end - start));
}

export type RenewalInfo = {
  start: number;
  end: number;
  explanationUrl: string | null;
  /** The server's Retry-After for the next poll, in ms; null when it sent none. */
  retryAfterMs: number | null;
};

/** Validates a renewalInfo response body. */
export function parseRenewalInfo(body: unknown, retryAfterMs: number | null): RenewalInfo {
  const window = (body as { suggestedWindow?: { start?: unknown; end?: unknown } } | null)?.suggestedWindow;
  const start = typeof window?.start === 'string' ? Date.parse(window.start) : NaN;
  const end = typeof window?.end === 'string' ? Date.parse(window.end) : NaN;
  if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) {
    throw new Error('renewalInfo has no valid suggestedWindow');
  }
  const explanation = (body as { explanationURL?: unknown }).explanationURL;
  return { start, end, explanationUrl: typeof explanation === 'string' ? explanation : null, retryAfterMs };
}

/** The RFC 9773 certificate identifier of a PEM certificate (its leaf). */
export function certId(pem: string): string {
  const der = new X509Certificate(pem).raw;
  const cert = readTlv(der, 0);
  const tbs = readTlv(der, cert.start);
  let at = tbs.start;
  let field = readTlv(der, at);
  if (field.tag === 0xa0) {
    at = field.end;
    field = readTlv(der, at);
  }
  if (field.tag !== 0x02) throw new Error('certificate has no serial number');
  const serial = der.subarray(field.start, field.end);
  // Walk the remaining TBSCertificate fields to the [3] extensions.
  for (at = field.end; at < tbs.end; ) {
    const next = readTlv(der, at);
    if (next.tag === 0xa3) {
      const keyId = authorityKeyId(der, readTlv(der, next.start));
      return `${keyId.toString('base64url')}.${serial.toString('base64url')}`;
    }
    at = next.end;
  }
  throw new Error('certificate has no extensions');
}

// OID 2.5.29.35 (authorityKeyIdentifier), DER-encoded body.
const AKI_OID = Buffer.from([0x55, 0x1d, 0x23]);

function authorityKeyId(der: Buffer, extensions: Tlv): Buffer {
  for (let at = extensions.start; at < extensions.end; ) {
    const ext = readTlv(der, at);
    const oid = readTlv(der, ext.start);
    if (oid.tag === 0x06 && der.subarray(oid.start, oid.end).equals(AKI_OID)) {
      let value = readTlv(der, oid.end);
      if (value.tag === 0x01) value = readTlv(der, value.end); // critical flag
      const aki = readTlv(der, value.start); // OCTET STRING holds AuthorityKeyIdentifier ::= SEQUENCE
      for (let inner = aki.start; inner < aki.end; ) {
        const part = readTlv(der, inner);
        if (part.tag === 0x80) return der.subarray(part.start, part.end); // [0] keyIdentifier
        inner = part.end;
      }
    }
    at = ext.end;
  }
  throw new Error('certificate has no authority key identifier');
}

type Tlv = { tag: number; start: number; end: number };

function readTlv(der: Buffer, at: number): Tlv {
  if (at + 2 > der.length) throw new Error('truncated DER');
  const tag = der[at]!;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  const end = start + length;
  if (end > der.length) throw new Error('truncated DER');
  return { tag, start, end };
}
