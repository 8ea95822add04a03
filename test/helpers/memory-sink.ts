// An in-memory CertificateSink for tests of the certificate producers (ACME renewer): it
// validates pairs the way the contract in src/tls/certificate.ts asks (parsable, key
// matches, not expired, has DNS names) and remembers them per source id. It serves
// nothing: the TLS certificate store is the real sink.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { CertificateSink, CertInfo, CertSource, PemPair, SetSourceResult } from '../../src/tls/certificate.ts';
import type { EventLog } from '../../src/log.ts';

export class MemorySink implements CertificateSink {
  readonly #sources = new Map<string, CertInfo[]>();
  /** Every setSource call, in order (tests look at what was swapped in and when). */
  readonly calls: { id: string; source: CertSource; loaded: CertInfo[]; refused: SetSourceResult['refused'] }[] = [];
  readonly #log: EventLog | null;

  constructor(log: EventLog | null = null) {
    this.#log = log;
  }

  setSource(id: string, source: CertSource, pairs: readonly PemPair[]): SetSourceResult {
    const loaded: CertInfo[] = [];
    const refused: SetSourceResult['refused'] = [];
    for (const pair of pairs) {
      try {
        loaded.push(inspect(pair, source));
      } catch (err) {
        refused.push({ origin: pair.origin, reason: (err as Error).message });
      }
    }
    // A refused pair never replaces the one serving from the same origin.
    const previous = this.#sources.get(id) ?? [];
    const kept = previous.filter((p) => refused.some((r) => r.origin === p.origin) && !loaded.some((l) => l.origin === p.origin));
    this.#sources.set(id, [...loaded, ...kept]);
    this.calls.push({ id, source, loaded, refused });
    for (const info of loaded) this.#log?.info('certificate_loaded', { id, serial: info.serial, names: info.names, not_after: info.notAfter.toISOString() });
    return { loaded, refused };
  }

  certificates(): CertInfo[] {
    return [...this.#sources.values()].flat();
  }

  /** The certificates of one source id. */
  get(id: string): CertInfo[] {
    return this.#sources.get(id) ?? [];
  }
}

function inspect(pair: PemPair, source: CertSource): CertInfo {
  const leaf = new X509Certificate(pair.cert);
  const key = createPrivateKey(pair.key);
  if (!leaf.checkPrivateKey(key)) throw new Error('key does not match certificate');
  if (leaf.validToDate.getTime() <= Date.now()) throw new Error('certificate expired');
  const names = (leaf.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (names.length === 0) throw new Error('certificate has no DNS names');
  return {
    names,
    serial: leaf.serialNumber.toUpperCase(),
    issuer: leaf.issuer,
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
    keyType: key.asymmetricKeyType === 'rsa' ? 'rsa' : 'ecdsa',
    source,
    origin: pair.origin,
    fingerprint256: leaf.fingerprint256,
  };
}
