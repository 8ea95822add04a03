// The contract between whoever produces certificates (configured files, a certbot
// directory, the ACME issuer) and the certificate store that serves them. The store is
// the one place certificates enter the running TLS contexts.

export type CertSource = 'file' | 'certbot' | 'acme';

/** A certificate (full chain, leaf first) and its private key, both PEM. */
export type PemPair = {
  cert: string;
  key: string;
  /** Where it came from, for logs and errors: usually the certificate's path. */
  origin: string;
};

/** What the store knows of a loaded certificate. */
export type CertInfo = {
  /** The SANs (DNS names, lower-case; "*.example.org" for wildcards). */
  names: string[];
  /** Upper-case hex, as node:tls reports it. */
  serial: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  keyType: 'ecdsa' | 'rsa';
  source: CertSource;
  origin: string;
  fingerprint256: string;
};

export type CertRefusal = {
  origin: string;
  reason: string;
  /** Which half of the pair is at fault, when one is (config errors name its key). */
  field?: 'cert' | 'key';
};

export type SetSourceResult = {
  loaded: CertInfo[];
  /** Pairs that failed validation (key mismatch, unparsable, expired, no DNS names). */
  refused: CertRefusal[];
};

/** What one setSource() changed, for listeners (events, metrics). */
export type CertChange = {
  id: string;
  /** Certificates new in this source (first load or a different certificate at an origin). */
  added: CertInfo[];
  refused: CertRefusal[];
  /** Certificates no longer served: replaced at their origin, or the origin is gone. */
  removed: CertInfo[];
  /** Every certificate serving after the change. */
  certificates: CertInfo[];
};

export interface CertificateSink {
  /**
   * Replaces the certificates of one source id (e.g. "file", "certbot", "acme:opam.ocaml.org")
   * with `pairs`, validated first. A refused pair never replaces the one serving: the
   * previous certificate of the same origin stays. New handshakes see the result at once.
   */
  setSource(id: string, source: CertSource, pairs: readonly PemPair[]): SetSourceResult;
  /** Every certificate currently serving, from every source. */
  certificates(): CertInfo[];
}

/** One source's certificates as handed over between processes (ACME primary -> workers). */
export type CertSourceUpdate = { id: string; source: CertSource; pairs: readonly PemPair[] };
