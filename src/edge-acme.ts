// Built-in ACME for one Edge (edge.ts): started once the node's http listeners answer port 80,
// replaced by a reload that changes its settings, stopped first on stop.

import type { Config } from './config.ts';
import type { EventLog } from './log.ts';
import type { ChallengeStore } from './acme/challenges.ts';
import { AcmeManager } from './acme/manager.ts';
import type { AcmeDeps } from './acme/manager.ts';
import type { CertStore } from './tls/cert-store.ts';
import type { CertificateSink, CertSourceUpdate } from './tls/certificate.ts';
import type { EdgeMetrics } from './admin/metrics.ts';

export type EdgeAcmeDeps = {
  certificates: CertStore;
  challenges: ChallengeStore;
  log: EventLog;
  metrics: EdgeMetrics | null;
  /** Every certificate ACME hands to the store (a primary passes them to workers). */
  onAcmeCertificates?: (update: CertSourceUpdate) => void;
  /** Tests: a clock and shorter ACME timeouts. */
  acme?: Pick<AcmeDeps, 'clock' | 'issuerOptions'>;
};

export class EdgeAcme {
  readonly #deps: EdgeAcmeDeps;
  #manager: AcmeManager | null = null;
  /** Set by the first enable(): until then (and for workers, always) reloads start nothing. */
  #enabled = false;

  constructor(deps: EdgeAcmeDeps) {
    this.#deps = deps;
  }

  /** The running manager, when `acme` is set and enabled. */
  get manager(): AcmeManager | null {
    return this.#manager;
  }

  /** Starts the manager when `acme` is set; from now on reloads follow the config. */
  async enable(config: Config, stopping: boolean): Promise<void> {
    this.#enabled = true;
    if (config.acme && !this.#manager && !stopping) this.#manager = await this.#start(config);
  }

  /** Whether a reload to `config` replaces the running manager (or starts or stops one). */
  changes(config: Config): boolean {
    if (!this.#enabled) return false;
    return !(this.#manager?.matches(config) || (!this.#manager && !config.acme));
  }

  /** ACME settings changed: the old loop stops, a new one starts from the stored state. */
  async reload(config: Config): Promise<void> {
    if (!this.changes(config)) return;
    await this.stop();
    if (!config.acme) return;
    try {
      this.#manager = await this.#start(config);
    } catch (err) {
      this.#deps.log.error('acme_start_failed', { code: 'ACME_START_FAILED', reason: (err as Error).message });
    }
  }

  async stop(): Promise<void> {
    const manager = this.#manager;
    this.#manager = null;
    await manager?.stop();
  }

  #start(config: Config): Promise<AcmeManager> {
    const { certificates: store, onAcmeCertificates: forward, challenges, log, metrics, acme } = this.#deps;
    const sink: CertificateSink = forward
      ? {
          setSource(id, source, pairs) {
            const result = store.setSource(id, source, pairs);
            forward({ id, source, pairs });
            return result;
          },
          certificates: () => store.certificates(),
        }
      : store;
    return AcmeManager.start(config, { sink, challenges, log, onRenewal: metrics?.renewal, ...acme });
  }
}
