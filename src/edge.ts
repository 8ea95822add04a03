// One running opam-edge: the listeners, the state they read, and the control plane that
// swaps that state. Start order: logs -> stores -> listeners -> loops; stop reverses it.
// Request handlers only read `this.#state`; reload builds a new one and swaps it whole.
// The parts: edge-listeners (the servers), edge-facts (health, status, admin routes),
// edge-reload (reload's steps), edge-acme (built-in ACME), edge-state (what they all read).

import type { Config } from './config.ts';
import { createAccessLog } from './log.ts';
import type { EventLog } from './log.ts';
import { ChallengeStore } from './acme/challenges.ts';
import { PeerForwarder } from './acme/peers.ts';
import type { ChallengeSource } from './http/plain.ts';
import { CertStore } from './tls/cert-store.ts';
import { CertificateFiles, certFileSettings } from './tls/cert-files.ts';
import type { CertSourceUpdate } from './tls/certificate.ts';
import { EdgeError } from './errors.ts';
import { Upstreams } from './upstream/upstreams.ts';
import type { AcmeDeps, AcmeManager } from './acme/manager.ts';
import { reloadProblems, step } from './reload.ts';
import type { PreparedStep } from './reload.ts';
import { createGateway } from './http/gateway.ts';
import type { Gateway, RequestMetrics } from './http/gateway.ts';
import { EdgeMetrics } from './admin/metrics.ts';
import type { Health } from './admin/health.ts';
import type { NodeExtension, StatusDocument } from './admin/status.ts';
import { edgeState } from './edge-state.ts';
import type { EdgeReads, EdgeState } from './edge-state.ts';
import { EdgeListeners } from './edge-listeners.ts';
import { EdgeFacts } from './edge-facts.ts';
import { EdgeAcme } from './edge-acme.ts';
import { prepareEdgeReload } from './edge-reload.ts';

export const DEFAULT_GRACE_MS = 30_000;

export type EdgeDeps = {
  log: EventLog;
  /** Shared with the ACME issuer (and, with workers, filled from the primary). */
  challenges?: ChallengeStore;
  onChallenge?: (source: ChallengeSource) => void;
  /**
   * Session ticket keys (48 bytes) for every TLS context; generated once per process when
   * absent. Workers of one node pass the same keys so a session resumes on any of them.
   */
  ticketKeys?: Buffer;
  /** How often certificate files are polled for changes (ms); tests make it short. */
  certWatchIntervalMs?: number;
  /** How long each challenge peer may take (5 s by default, docs/behaviour.md, "Port 80"); tests
   * shorten it. */
  peerTimeoutMs?: number;
  /**
   * false: ACME waits for startAcme() (a cluster primary starts it once its workers serve
   * port 80) or never runs here (workers: the primary owns it).
   */
  startAcme?: boolean;
  /** Every certificate ACME hands to this edge's store (a primary passes them to workers). */
  onAcmeCertificates?: (update: CertSourceUpdate) => void;
  /** Certificates to serve before any listener is bound (a worker's copy of the primary's). */
  initialCertificates?: readonly CertSourceUpdate[];
  /** Bind with SO_REUSEPORT, each process its own socket (cluster workers; port 0 excepted). */
  reusePort?: boolean;
  /** Tests: a clock and shorter ACME timeouts. */
  acme?: Pick<AcmeDeps, 'clock' | 'issuerOptions'>;
  /** Called once per https request (metrics). */
  onRequest?: (m: RequestMetrics) => void;
  /**
   * Prometheus metrics. Absent: made (role 'node') when `admin` is set at start, so with
   * admin off the request path records nothing. Workers pass theirs, or null.
   */
  metrics?: EdgeMetrics | null;
  /** A cluster primary: the workers' part of /healthz, /status and /metrics. */
  node?: NodeExtension;
};

export class Edge {
  readonly challenges: ChallengeStore;
  readonly peers: PeerForwarder;
  /** Every certificate serving on the https listeners; the ACME issuer hands new ones here. */
  readonly certificates: CertStore;
  readonly #certFiles: CertificateFiles;
  /** Resolvers and keep-alive pools of every upstream. */
  readonly upstreams: Upstreams;
  /**
   * The https request path, for the https listeners: `request` and `checkContinue` take
   * node:http and node:http2 compat requests, `upgrade` the HTTP/1.1 upgrade event.
   */
  readonly gateway: Gateway;
  /** null when admin was off at start: then no hook records anything. */
  readonly metrics: EdgeMetrics | null;
  readonly #log: EventLog;
  readonly #deps: EdgeDeps;
  readonly #listeners: EdgeListeners;
  readonly #facts: EdgeFacts;
  readonly #acme: EdgeAcme;
  #state: EdgeState;
  #stopped: Promise<void> | null = null;

  private constructor(config: Config, deps: EdgeDeps) {
    const { log } = deps;
    this.#log = log;
    this.#deps = deps;
    this.challenges = deps.challenges ?? new ChallengeStore();
    this.peers = new PeerForwarder(log, deps.peerTimeoutMs);
    this.peers.setPeers(config.challenges.peers);
    this.upstreams = new Upstreams({ log });
    // No routes until the upstreams are started (start() builds them).
    this.#state = edgeState(config, createAccessLog(config.access_log, config.access_log_format, log), false, this.upstreams, false);
    const metrics = deps.metrics === undefined ? (config.admin ? new EdgeMetrics({ role: 'node' }) : null) : deps.metrics;
    this.metrics = metrics;
    this.gateway = createGateway({ state: () => this.#state, log, onRequest: both(metrics?.request, deps.onRequest) });
    this.certificates = new CertStore({ unknownSni: config.tls.unknown_sni, ticketKeys: deps.ticketKeys, log });
    this.#certFiles = new CertificateFiles({ store: this.certificates, log, intervalMs: deps.certWatchIntervalMs });
    this.#acme = new EdgeAcme({ certificates: this.certificates, challenges: this.challenges, log, metrics, onAcmeCertificates: deps.onAcmeCertificates, acme: deps.acme });

    const reads: EdgeReads = {
      state: () => this.#state,
      challenges: this.challenges,
      peers: this.peers,
      certificates: this.certificates,
      upstreams: this.upstreams,
      gateway: this.gateway,
      metrics,
    };
    // The admin listener asks for its routes per request, so it may be made before the facts.
    const onChallenge = both(metrics?.challenge, deps.onChallenge);
    this.#listeners = new EdgeListeners({ ...reads, adminRoutes: () => this.#facts.routes() }, { log, reusePort: deps.reusePort, onChallenge });
    this.#facts = new EdgeFacts({ ...reads, listeners: this.#listeners, acme: this.#acme, node: deps.node, startedAt: Date.now() });
  }

  /** Binds every listener. On failure, whatever was started is stopped and the error thrown. */
  static async start(config: Config, deps: EdgeDeps): Promise<Edge> {
    const edge = new Edge(config, deps);
    try {
      // A configured certificate that does not load stops the start before any port is bound.
      const problems = await edge.#certFiles.load(certFileSettings(config));
      if (problems.length > 0) throw new EdgeError('CERT_INVALID', problems.join('; '));
      for (const { id, source, pairs } of deps.initialCertificates ?? []) edge.certificates.setSource(id, source, pairs);
      if (config.listen.https.length > 0 && config.acme === null && edge.certificates.certificates().length === 0) {
        deps.log.warn('https_without_certificates', { message: 'no tls.certificates, tls.certbot or acme: every TLS handshake will fail' });
      }
      // Never fails on DNS: names that do not resolve yet answer 503 until they do.
      await edge.upstreams.start(config);
      edge.#state = edgeState(config, edge.#state.accessLog, false, edge.upstreams);
      await edge.#listeners.start(config);
      edge.#certFiles.start();
      // After the http listener is up (orders at start need it for HTTP-01) and after the
      // certificate files are loaded (a valid certbot certificate is adopted, not re-ordered).
      if (deps.startAcme !== false) await edge.startAcme();
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

  /** Bound addresses by role, e.g. { http: ["[::]:80"], https: ["[::]:443"] }; with port 0 the kernel's port. */
  get addresses(): { http: string[]; https: string[]; admin: string[] } {
    return this.#listeners.addresses;
  }

  /** Ports actually bound, in config order (tests listen on port 0). */
  get ports(): { http: number[]; https: number[]; admin: number[] } {
    return this.#listeners.ports;
  }

  /** Built-in ACME, when `acme` is set. */
  get acme(): AcmeManager | null {
    return this.#acme.manager;
  }

  /** TLS handshakes that failed (bad versions, scanners, unknown names with reject). */
  get tlsClientErrors(): number {
    return this.#listeners.tlsClientErrors;
  }

  /** This edge's (with workers: the node's) health and why (GET /healthz). */
  health(): Health {
    return this.#facts.health();
  }

  /** GET /status: the node as one document. */
  status(): Promise<StatusDocument> {
    return this.#facts.status();
  }

  /**
   * Starts built-in ACME when `acme` is set (Edge.start does it unless deps.startAcme is
   * false). The http listeners of the node must answer port 80 by then.
   */
  startAcme(): Promise<void> {
    return this.#acme.enable(this.#state.config, this.#state.stopping);
  }

  /**
   * Moves to a new config without dropping connections, all or nothing: when anything
   * start-up would refuse is wrong (a certificate file, a listen address, the ACME
   * settings, the access log), nothing changes, `reload_refused` lists every problem and
   * they are returned. Otherwise every certificate file is re-read and the config applied.
   * `checked`: what the config check (check.ts) found, with key paths and lines.
   */
  async reload(config: Config, checked: readonly string[] = []): Promise<string[]> {
    const prepared = await this.prepareReload(config);
    const problems = reloadProblems(checked, prepared.problems);
    if (problems.length > 0) {
      await prepared.rollback();
      this.#log.error('reload_refused', { code: 'RELOAD_REFUSED', source: config.source, problems });
      return problems;
    }
    await prepared.commit();
    return [];
  }

  /**
   * The first phase of reload(): everything is read, checked and bound, nothing that
   * serves is changed. The caller commits or rolls back (a cluster primary does so once
   * every worker has prepared too).
   */
  prepareReload(config: Config): Promise<PreparedStep> {
    if (this.#state.stopping) return Promise.resolve(step(['stopping']));
    const parts = {
      log: this.#log,
      listeners: this.#listeners,
      certFiles: this.#certFiles,
      certificates: this.certificates,
      peers: this.peers,
      upstreams: this.upstreams,
      acme: this.#acme,
      metricsSkipped: !this.metrics && this.#deps.metrics === undefined,
    };
    return prepareEdgeReload(parts, this.#state, config, (accessLog) => {
      this.#state = edgeState(config, accessLog, this.#state.stopping, this.upstreams);
    });
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
    this.#log.info('stopping', { connections: this.#listeners.connections, grace_ms: graceMs });
    await this.#acme.stop();
    await this.#listeners.stopAccepting();
    this.#certFiles.stop();
    const drained = await this.#listeners.drain(deadline);
    // In-flight upstream requests have finished with their clients; what is left is idle.
    await this.upstreams.stop(Math.max(0, deadline - Date.now()));
    await this.peers.close();
    await this.#state.accessLog.close();
    this.#log.info('stopped', { drained });
  }
}

/** One hook calling both, either, or none (undefined: the caller computes nothing for it). */
function both<A>(a: ((arg: A) => void) | undefined, b: ((arg: A) => void) | undefined): ((arg: A) => void) | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return (arg) => {
    a(arg);
    b(arg);
  };
}
