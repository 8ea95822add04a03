// Managed mode: when `acme` is set, the storage, the issuer and the renewal loop are built
// from the config and run until stop(). It needs only a CertificateSink and the node's
// ChallengeStore, so it can live in the process that serves requests or in a primary
// that broadcasts both to its workers.

import type { Config } from '../config.ts';
import { EdgeError } from '../errors.ts';
import { isIpLiteral, isWildcard } from '../host-name.ts';
import type { EventLog } from '../log.ts';
import type { CertificateSink } from '../tls/certificate.ts';
import type { ChallengeStore } from './challenges.ts';
import { AcmeIssuer } from './issuer.ts';
import type { AcmeIssuerOptions, CertificateIssuer } from './issuer.ts';
import { Renewer } from './renewer.ts';
import type { Clock } from './renewer.ts';
import type { AcmeStorage } from './storage.ts';
import { openStorage, readCaBundle } from './preflight.ts';

export type AcmeDeps = {
  sink: CertificateSink;
  challenges: ChallengeStore;
  log: EventLog;
  clock?: Clock;
  /** Each order that ends (metrics). */
  onRenewal?: (name: string, result: 'success' | 'failure') => void;
  /** Tests: shorter polls and timeouts. */
  issuerOptions?: Partial<Pick<AcmeIssuerOptions, 'orderTimeoutMs' | 'requestTimeoutMs' | 'poll'>>;
};

/** `acme.names`, or every exact (non-wildcard, non-IP) host of every site. */
export function acmeNames(config: Config): string[] {
  if (config.acme?.names) return [...config.acme.names];
  const names = config.sites.flatMap((s) => s.hosts).filter((h) => !isWildcard(h) && !isIpLiteral(h));
  return [...new Set(names)];
}

/** What a reload must compare: a change restarts ACME; anything else leaves it running. */
function settingsKey(config: Config): string {
  return JSON.stringify({ acme: config.acme, names: acmeNames(config) });
}

export class AcmeManager {
  readonly storage: AcmeStorage;
  readonly issuer: CertificateIssuer;
  readonly renewer: Renewer;
  readonly #key: string;

  private constructor(key: string, storage: AcmeStorage, issuer: CertificateIssuer, renewer: Renewer) {
    this.#key = key;
    this.storage = storage;
    this.issuer = issuer;
    this.renewer = renewer;
  }

  /**
   * Loads stored certificates into the sink, then starts the loop (names without a valid
   * certificate are ordered in the background: the http listener must already be up).
   */
  static async start(config: Config, deps: AcmeDeps): Promise<AcmeManager> {
    const acme = config.acme;
    if (!acme) throw new EdgeError('ACME_START_FAILED', 'no acme section');
    const bundle = await readCaBundle(acme);
    if ('message' in bundle) throw new EdgeError('ACME_START_FAILED', `acme.ca_bundle: ${bundle.message}`);
    const opened = await openStorage(acme, deps.log);
    if ('message' in opened) throw new EdgeError('ACME_START_FAILED', `acme.storage: ${opened.message}`);
    const { caBundle } = bundle;
    const { storage } = opened;
    const issuer = new AcmeIssuer({
      directory: acme.directory,
      email: acme.email,
      keyType: acme.key_type,
      profile: acme.profile,
      caBundle,
      storage,
      challenges: deps.challenges,
      log: deps.log,
      ...deps.issuerOptions,
    });
    const names = acmeNames(config);
    const renewer = new Renewer({ names, issuer, storage, sink: deps.sink, log: deps.log, clock: deps.clock, onRenewal: deps.onRenewal });
    const manager = new AcmeManager(settingsKey(config), storage, issuer, renewer);
    try {
      await renewer.start();
    } catch (err) {
      await manager.stop();
      throw new EdgeError('ACME_START_FAILED', (err as Error).message, { cause: err });
    }
    deps.log.info('acme_started', { directory: acme.directory, storage: acme.storage, names, key_type: acme.key_type, profile: acme.profile });
    return manager;
  }

  /** True when `config` would run ACME exactly as this manager does. */
  matches(config: Config): boolean {
    return config.acme !== null && settingsKey(config) === this.#key;
  }

  async stop(): Promise<void> {
    await this.renewer.stop();
    await this.issuer.close();
  }
}
