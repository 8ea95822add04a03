// The one place certificates enter the running TLS contexts. Producers (configured files,
// a certbot directory, the ACME issuer) hand whole sources to setSource(); each pair is
// validated, turned into a SecureContext once, and a new immutable snapshot
//   exact name -> context, wildcard parent -> context, fallback (default or none)
// replaces the old one whole. The handshake path only reads the snapshot: select() is a
// synchronous map lookup that never waits on disk or ACME.
//
// Precedence: for each name and key type the certificate with the latest notAfter wins
// (ties: the source set first, then the earlier pair). Where a name has both an ECDSA and
// an RSA certificate, one context carries both and OpenSSL picks by the client's
// signature algorithms. Every context shares the store's ticket keys and session id
// context, so sessions resume across swaps.

import { createSecureContext } from 'node:tls';
import type { SecureContext, SecureContextOptions } from 'node:tls';
import type { CertChange, CertInfo, CertRefusal, CertSource, CertificateSink, PemPair, SetSourceResult } from './certificate.ts';
import { daysLeft, isRefusal, parsePair } from './pem.ts';
import { checkTicketKeys, contextOptions, newTicketKeys } from './options.ts';
import type { EventLog } from '../log.ts';
import { silentLog } from '../log.ts';
import { HostMap } from '../host-name.ts';
import type { HostLookup } from '../host-name.ts';

export type UnknownSni = 'reject' | 'default';

export type CertStoreOptions = {
  /** What a handshake for a name no certificate covers (or without SNI) gets. */
  unknownSni?: UnknownSni;
  /**
   * 48 bytes for session tickets. Generated once per process when absent; pass the same
   * value to several processes (workers) to let a session resume on any of them.
   */
  ticketKeys?: Buffer;
  log?: EventLog;
  /** Clock for validity checks (ms). */
  now?: () => number;
};

type Entry = {
  readonly info: CertInfo;
  readonly chain: string;
  readonly key: string;
  /** This certificate alone. */
  readonly context: SecureContext;
};

type Snapshot = {
  /** Exact names, then wildcards one label deep (host-name.ts). */
  readonly names: HostLookup<SecureContext>;
  readonly fallback: SecureContext;
};

type KeySlots = { ecdsa?: Entry; rsa?: Entry };

export class CertStore implements CertificateSink {
  readonly ticketKeys: Buffer;
  /** Options every context (and each https server's own) is made with. */
  readonly contextOptions: Readonly<SecureContextOptions>;
  /** No certificate: a handshake that ends here fails with a handshake_failure alert. */
  readonly emptyContext: SecureContext;
  readonly #log: EventLog;
  readonly #now: () => number;
  readonly #sources = new Map<string, { source: CertSource; entries: Map<string, Entry> }>();
  /** Contexts carrying an ECDSA and an RSA certificate, by "fingerprint+fingerprint". */
  readonly #combined = new Map<string, SecureContext>();
  readonly #listeners = new Set<(change: CertChange) => void>();
  #unknownSni: UnknownSni;
  #snapshot: Snapshot;

  constructor(options: CertStoreOptions = {}) {
    this.ticketKeys = checkTicketKeys(options.ticketKeys ?? newTicketKeys());
    this.contextOptions = Object.freeze(contextOptions(this.ticketKeys));
    this.emptyContext = createSecureContext(this.contextOptions);
    this.#log = options.log ?? silentLog;
    this.#now = options.now ?? Date.now;
    this.#unknownSni = options.unknownSni ?? 'reject';
    this.#snapshot = this.#build();
  }

  /** The context for a handshake: exact name, then wildcard, then per `unknownSni`. */
  select(servername: string | null): SecureContext {
    const snapshot = this.#snapshot;
    if (servername !== null) {
      const context = snapshot.names.lookup(servername);
      if (context !== null) return context;
    }
    return snapshot.fallback;
  }

  get unknownSni(): UnknownSni {
    return this.#unknownSni;
  }

  setUnknownSni(mode: UnknownSni): void {
    if (mode === this.#unknownSni) return;
    this.#unknownSni = mode;
    this.#snapshot = this.#build();
  }

  setSource(id: string, source: CertSource, pairs: readonly PemPair[]): SetSourceResult {
    const previous = this.#sources.get(id)?.entries ?? new Map<string, Entry>();
    const next = new Map<string, Entry>();
    const now = this.#now();
    const loaded: CertInfo[] = [];
    const added: { info: CertInfo; replaces: CertInfo | undefined }[] = [];
    const refused: CertRefusal[] = [];
    const removed: CertInfo[] = [];
    for (const pair of pairs) {
      if (next.has(pair.origin)) {
        refused.push({ origin: pair.origin, reason: 'listed twice' });
        continue;
      }
      const old = previous.get(pair.origin);
      const parsed = parsePair(pair, now);
      if (isRefusal(parsed)) {
        refused.push({ origin: pair.origin, reason: parsed.reason, field: parsed.field });
        // The certificate serving from this origin keeps serving.
        if (old) next.set(pair.origin, old);
        continue;
      }
      if (old && old.info.fingerprint256 === parsed.info.fingerprint256) {
        next.set(pair.origin, old);
        loaded.push(old.info);
        continue;
      }
      const context = this.#context(parsed.chain, parsed.key);
      if (typeof context === 'string') {
        refused.push({ origin: pair.origin, reason: context });
        if (old) next.set(pair.origin, old);
        continue;
      }
      const info: CertInfo = { ...parsed.info, source, origin: pair.origin };
      next.set(pair.origin, { info, chain: parsed.chain, key: parsed.key, context });
      loaded.push(info);
      added.push({ info, replaces: old?.info });
      if (old) removed.push(old.info);
    }
    for (const [origin, old] of previous) if (!next.has(origin)) removed.push(old.info);
    this.#sources.set(id, { source, entries: next });
    this.#snapshot = this.#build();

    for (const { info, replaces } of added) {
      this.#log.info('certificate_loaded', {
        names: info.names,
        serial: info.serial,
        not_after: info.notAfter.toISOString(),
        days_left: daysLeft(info.notAfter, now),
        key_type: info.keyType,
        source: info.source,
        origin: info.origin,
        ...(replaces ? { replaces: replaces.serial } : {}),
      });
    }
    for (const r of refused) this.#log.error('certificate_refused', { code: 'CERT_INVALID', origin: r.origin, reason: r.reason, source });
    for (const info of removed) {
      if (!next.has(info.origin)) this.#log.info('certificate_removed', { names: info.names, serial: info.serial, origin: info.origin, source });
    }
    if (this.#listeners.size > 0 && (added.length > 0 || refused.length > 0 || removed.length > 0)) {
      const change: CertChange = { id, added: added.map((a) => a.info), refused, removed, certificates: this.certificates() };
      for (const listener of this.#listeners) {
        try {
          listener(change);
        } catch (err) {
          this.#log.error('certificate_listener_failed', { error: String(err) });
        }
      }
    }
    return { loaded, refused };
  }

  /**
   * What setSource() would refuse of `pairs`, changing nothing (a reload checks its
   * candidate certificates before anything is swapped).
   */
  check(pairs: readonly PemPair[]): CertRefusal[] {
    const now = this.#now();
    const refused: CertRefusal[] = [];
    // A pair already serving (same certificate) passed OpenSSL once: no new context for it.
    const serving = new Set<string>();
    for (const { entries } of this.#sources.values()) for (const entry of entries.values()) serving.add(entry.info.fingerprint256);
    for (const pair of pairs) {
      const parsed = parsePair(pair, now);
      if (isRefusal(parsed)) refused.push({ origin: pair.origin, reason: parsed.reason, field: parsed.field });
      else if (!serving.has(parsed.info.fingerprint256)) {
        const context = this.#context(parsed.chain, parsed.key);
        if (typeof context === 'string') refused.push({ origin: pair.origin, reason: context });
      }
    }
    return refused;
  }

  /** A context for one certificate, or why OpenSSL refused it. */
  #context(chain: string, key: string): SecureContext | string {
    try {
      return createSecureContext({ ...this.contextOptions, cert: chain, key });
    } catch (err) {
      return `OpenSSL refused it (${(err as Error).message.split('\n')[0]})`;
    }
  }

  certificates(): CertInfo[] {
    const out: CertInfo[] = [];
    for (const { entries } of this.#sources.values()) for (const entry of entries.values()) out.push(entry.info);
    return out;
  }

  /** Calls `listener` after every setSource() that changed or refused something. */
  onChange(listener: (change: CertChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #build(): Snapshot {
    const best = new Map<string, KeySlots>();
    let firstName: string | null = null;
    for (const { entries } of this.#sources.values()) {
      for (const entry of entries.values()) {
        firstName ??= entry.info.names[0]!;
        for (const name of entry.info.names) {
          let slots = best.get(name);
          if (slots === undefined) best.set(name, (slots = {}));
          const current = slots[entry.info.keyType];
          if (current === undefined || entry.info.notAfter.getTime() > current.info.notAfter.getTime()) {
            slots[entry.info.keyType] = entry;
          }
        }
      }
    }
    const names = new HostMap<SecureContext>();
    const used = new Set<string>();
    for (const [name, slots] of best) names.set(name, this.#contextFor(slots, used));
    for (const id of this.#combined.keys()) if (!used.has(id)) this.#combined.delete(id);
    let fallback = this.emptyContext;
    if (this.#unknownSni === 'default' && firstName !== null) {
      fallback = names.get(firstName) ?? fallback;
    }
    return { names, fallback };
  }

  /** One context per name: the certificate alone, or ECDSA and RSA together. */
  #contextFor(slots: KeySlots, used: Set<string>): SecureContext {
    const { ecdsa, rsa } = slots;
    if (ecdsa === undefined || rsa === undefined) return (ecdsa ?? rsa)!.context;
    const id = `${ecdsa.info.fingerprint256}+${rsa.info.fingerprint256}`;
    used.add(id);
    let context = this.#combined.get(id);
    if (context === undefined) {
      try {
        context = createSecureContext({ ...this.contextOptions, cert: [ecdsa.chain, rsa.chain], key: [ecdsa.key, rsa.key] });
      } catch (err) {
        this.#log.error('certificate_pair_failed', { names: ecdsa.info.names, error: (err as Error).message });
        return ecdsa.context;
      }
      this.#combined.set(id, context);
    }
    return context;
  }
}
