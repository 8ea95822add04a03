// One running opam-edge: the listeners, the state they read, and the control plane that
// swaps that state. Start order: logs -> stores -> listeners -> loops; stop reverses it.
// Request handlers only read `this.#state`; reload builds a new one and swaps it whole.

import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { Config } from './config.ts';
import { EdgeError } from './errors.ts';
import { createAccessLog } from './log.ts';
import type { AccessLog, EventLog } from './log.ts';
import { ChallengeStore } from './acme/challenges.ts';
import { PeerForwarder } from './acme/peers.ts';
import { createPlainHandler } from './http/plain.ts';
import type { ChallengeSource } from './http/plain.ts';
import { applyLimits, ConnectionTracker, ListenerGroup, onClientError, serverOptions } from './http/listeners.ts';
import type { CertificateSink } from './tls/certificate.ts';
import { AcmeManager } from './acme/manager.ts';
import type { AcmeDeps } from './acme/manager.ts';
import { createAdminHandler, renewRoute } from './admin.ts';
import type { AdminRoute } from './admin.ts';

export const DEFAULT_GRACE_MS = 30_000;

/** What request handlers read. Replaced whole, never mutated. */
type State = {
  readonly config: Config;
  readonly accessLog: AccessLog;
  readonly stopping: boolean;
};

export type EdgeDeps = {
  log: EventLog;
  /** Shared with the ACME issuer (and, with workers, filled from the primary). */
  challenges?: ChallengeStore;
  onChallenge?: (source: ChallengeSource) => void;
  /** Where ACME-issued certificates go (the TLS certificate store). Needed when `acme` is set. */
  certificates?: CertificateSink;
  /** Tests: a clock and shorter ACME timeouts. */
  acme?: Pick<AcmeDeps, 'clock' | 'issuerOptions'>;
};

export class Edge {
  readonly challenges: ChallengeStore;
  readonly peers: PeerForwarder;
  readonly certificates: CertificateSink | null;
  readonly #log: EventLog;
  readonly #deps: EdgeDeps;
  readonly #connections = new ConnectionTracker();
  readonly #http: ListenerGroup<HttpServer>;
  readonly #admin: ListenerGroup<HttpServer>;
  #acme: AcmeManager | null = null;
  #state: State;
  #stopped: Promise<void> | null = null;

  private constructor(config: Config, deps: EdgeDeps) {
    this.#log = deps.log;
    this.#deps = deps;
    this.certificates = deps.certificates ?? null;
    this.challenges = deps.challenges ?? new ChallengeStore();
    this.peers = new PeerForwarder(deps.log);
    this.peers.setPeers(config.challenges.peers);
    this.#state = { config, accessLog: createAccessLog(config.access_log, config.access_log_format), stopping: false };

    const handlePlain = createPlainHandler({
      challenges: this.challenges,
      peers: this.peers,
      settings: () => ({ webroot: this.#state.config.challenges.webroot, stopping: this.#state.stopping }),
      accessLog: () => this.#state.accessLog,
      onChallenge: deps.onChallenge,
    });
    this.#http = new ListenerGroup('http', deps.log, () => {
      const server = createServer(serverOptions(this.#state.config.limits), handlePlain);
      applyLimits(server, this.#state.config.limits);
      server.on('clientError', onClientError);
      this.#connections.track(server);
      return server;
    });
    const handleAdmin = createAdminHandler(() => this.#adminRoutes(), deps.log);
    this.#admin = new ListenerGroup('admin', deps.log, () => {
      const server = createServer(serverOptions(this.#state.config.limits), handleAdmin);
      server.on('clientError', onClientError);
      this.#connections.track(server);
      return server;
    });
  }

  /** Binds every listener. On failure, whatever was started is stopped and the error thrown. */
  static async start(config: Config, deps: EdgeDeps): Promise<Edge> {
    const edge = new Edge(config, deps);
    try {
      await (await edge.#http.sync(config.listen.http))();
      await (await edge.#admin.sync(config.admin ? [config.admin] : []))();
      // After the http listener is up: orders at start need it for HTTP-01.
      if (config.acme) edge.#acme = await edge.#startAcme(config);
    } catch (err) {
      await edge.stop(0);
      throw err;
    }
    deps.log.info('started', { source: config.source, sites: config.sites.length });
    return edge;
  }

  get config(): Config {
    return this.#state.config;
  }

  /** Bound addresses by role, e.g. { http: ["[::]:80"] }; with port 0 the kernel's port. */
  get addresses(): { http: string[]; admin: string[] } {
    return { http: this.#http.listeners.map((l) => l.bound), admin: this.#admin.listeners.map((l) => l.bound) };
  }

  /** Ports actually bound, in config order (tests listen on port 0). */
  get ports(): { http: number[]; admin: number[] } {
    return { http: this.#http.listeners.map((l) => l.port), admin: this.#admin.listeners.map((l) => l.port) };
  }

  /** Built-in ACME, when `acme` is set. */
  get acme(): AcmeManager | null {
    return this.#acme;
  }

  #adminRoutes(): AdminRoute[] {
    const routes: AdminRoute[] = [];
    const acme = this.#acme;
    if (acme) routes.push(renewRoute((name) => acme.renewer.renewNow(name)));
    return routes;
  }

  async #startAcme(config: Config): Promise<AcmeManager> {
    if (!this.certificates) throw new EdgeError('ACME_START_FAILED', 'acme is set but this process has no certificate store');
    return AcmeManager.start(config, { sink: this.certificates, challenges: this.challenges, log: this.#log, ...this.#deps.acme });
  }

  /**
   * Moves to a new config without dropping connections. Listeners are synced first; if
   * one cannot be bound the reload is refused and the running config stays.
   */
  async reload(config: Config): Promise<void> {
    if (this.#state.stopping) return;
    const closeRemovedHttp = await this.#http.sync(config.listen.http);
    let closeRemovedAdmin: () => Promise<void>;
    try {
      closeRemovedAdmin = await this.#admin.sync(config.admin ? [config.admin] : []);
    } catch (err) {
      await (await this.#http.sync(this.#state.config.listen.http))();
      throw err;
    }
    const previous = this.#state;
    const accessLog =
      config.access_log === previous.config.access_log && config.access_log_format === previous.config.access_log_format
        ? previous.accessLog
        : createAccessLog(config.access_log, config.access_log_format);
    this.peers.setPeers(config.challenges.peers);
    this.#state = { config, accessLog, stopping: false };
    for (const { server } of this.#http.listeners) applyLimits(server, config.limits);
    await closeRemovedHttp();
    await closeRemovedAdmin();
    await this.#reloadAcme(config);
    if (accessLog !== previous.accessLog) await previous.accessLog.close();
    else accessLog.reopen();
    this.#log.info('reloaded', { source: config.source });
  }

  /** ACME settings changed: the old loop stops, a new one starts from the stored state. */
  async #reloadAcme(config: Config): Promise<void> {
    if (this.#acme?.matches(config) || (!this.#acme && !config.acme)) return;
    const previous = this.#acme;
    this.#acme = null;
    await previous?.stop();
    if (!config.acme) return;
    try {
      this.#acme = await this.#startAcme(config);
    } catch (err) {
      this.#log.error('acme_start_failed', { code: 'ACME_START_FAILED', reason: (err as Error).message });
    }
  }

  /** Reopens the access log file (logrotate). */
  reopenLogs(): void {
    this.#state.accessLog.reopen();
  }

  /**
   * Graceful stop: stop accepting, let in-flight requests finish (keep-alive connections
   * are closed as they go idle), destroy what is left after `graceMs`.
   */
  stop(graceMs = DEFAULT_GRACE_MS): Promise<void> {
    this.#stopped ??= this.#stop(graceMs);
    return this.#stopped;
  }

  async #stop(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    this.#state = { ...this.#state, stopping: true };
    this.#log.info('stopping', { connections: this.#connections.size, grace_ms: graceMs });
    const acme = this.#acme;
    this.#acme = null;
    await acme?.stop();
    await this.#http.stopAccepting();
    await this.#admin.stopAccepting();
    const closeIdle = () => {
      for (const { server } of [...this.#http.listeners, ...this.#admin.listeners]) server.closeIdleConnections();
    };
    closeIdle();
    const timer = setInterval(closeIdle, 50);
    const drained = await this.#connections.idle(deadline);
    clearInterval(timer);
    if (!drained) {
      this.#log.warn('stop_forced', { connections: this.#connections.size });
      this.#connections.destroyAll();
    }
    await this.peers.close();
    await this.#state.accessLog.close();
    this.#log.info('stopped', { drained });
  }
}
