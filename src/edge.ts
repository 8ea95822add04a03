// One running opam-edge: the listeners, the state they read, and the control plane that
// swaps that state. Start order: logs -> stores -> listeners -> loops; stop reverses it.
// Request handlers only read `this.#state`; reload builds a new one and swaps it whole.

import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { Server as TlsServer } from 'node:tls';
import type { Config } from './config.ts';
import { createAccessLog } from './log.ts';
import type { AccessLog, EventLog } from './log.ts';
import { ChallengeStore } from './acme/challenges.ts';
import { PeerForwarder } from './acme/peers.ts';
import { createPlainHandler } from './http/plain.ts';
import type { ChallengeSource } from './http/plain.ts';
import { applyLimits, serverOptions } from './http/server-options.ts';
import { onClientError, onConnectRequest } from './http/client-errors.ts';
import { ConnectionTracker } from './http/connection-tracker.ts';
import { ListenerGroup } from './http/listener-group.ts';
import { applySecureLimits, createSecureListener, Http2Sessions } from './http/secure.ts';
import { CertStore } from './tls/cert-store.ts';
import { CertificateFiles, certFileSettings } from './tls/cert-files.ts';
import type { CertificateSink, CertSourceUpdate } from './tls/certificate.ts';
import { EdgeError } from './errors.ts';
import { Upstreams } from './upstream/upstreams.ts';
import { AcmeManager } from './acme/manager.ts';
import { acmeProblems } from './acme/preflight.ts';
import { prepareAll, reloadProblems, step } from './reload.ts';
import type { PreparedStep } from './reload.ts';
import type { AcmeDeps } from './acme/manager.ts';
import { createAdminHandler, healthRoute, metricsRoute, renewRoute, statusRoutes } from './admin/admin.ts';
import type { AdminRoute } from './admin/admin.ts';
import { createGateway, siteRoutes } from './http/gateway.ts';
import type { Gateway, GatewayState, RequestMetrics } from './http/gateway.ts';
import { EdgeMetrics } from './admin/metrics.ts';
import { listenerFacts, mergePeers, siteFacts, statusDocument } from './admin/status.ts';
import { nodeHealth } from './admin/health.ts';
import type { Health } from './admin/health.ts';
import type { NodeExtension, NodeFacts, StatusDocument } from './admin/status.ts';

export const DEFAULT_GRACE_MS = 30_000;

/** What request handlers read (the gateway's part included). Replaced whole, never mutated. */
type State = GatewayState & {
  readonly config: Config;
};

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
  readonly #log: EventLog;
  readonly #deps: EdgeDeps;
  readonly #connections = new ConnectionTracker();
  readonly #sessions: Http2Sessions;
  readonly #http: ListenerGroup<HttpServer>;
  readonly #https: ListenerGroup<TlsServer>;
  readonly #admin: ListenerGroup<HttpServer>;
  #acme: AcmeManager | null = null;
  #acmeEnabled = false;
  #tlsClientErrors = 0;
  /** null when admin was off at start: then no hook records anything. */
  readonly metrics: EdgeMetrics | null;
  #state: State;
  #stopped: Promise<void> | null = null;
  /** When this edge started: ACME's start grace counts from here (admin/health.ts). */
  readonly #startedAt = Date.now();

  private constructor(config: Config, deps: EdgeDeps) {
    this.#log = deps.log;
    this.#sessions = new Http2Sessions(deps.log);
    this.#deps = deps;
    this.challenges = deps.challenges ?? new ChallengeStore();
    this.peers = new PeerForwarder(deps.log, deps.peerTimeoutMs);
    this.peers.setPeers(config.challenges.peers);
    this.upstreams = new Upstreams({ log: deps.log });
    // No routes until the upstreams are started (start() builds them).
    this.#state = this.#stateFor(config, createAccessLog(config.access_log, config.access_log_format, deps.log), false, false);
    const metrics = deps.metrics === undefined ? (config.admin ? new EdgeMetrics({ role: 'node' }) : null) : deps.metrics;
    this.metrics = metrics;
    this.gateway = createGateway({ state: () => this.#state, log: deps.log, onRequest: both(metrics?.request, deps.onRequest) });

    const handlePlain = createPlainHandler({
      challenges: this.challenges,
      peers: this.peers,
      settings: () => ({ webroot: this.#state.config.challenges.webroot, stopping: this.#state.stopping }),
      accessLog: () => this.#state.accessLog,
      onChallenge: both(metrics?.challenge, deps.onChallenge),
    });
    const listen = { reusePort: deps.reusePort ?? false };
    this.#http = new ListenerGroup('http', deps.log, listen, () => {
      const server = createServer(serverOptions(this.#state.config.limits), handlePlain);
      applyLimits(server, this.#state.config.limits);
      server.on('clientError', onClientError);
      server.on('connect', onConnectRequest);
      this.#connections.track(server);
      return server;
    });

    this.certificates = new CertStore({ unknownSni: config.tls.unknown_sni, ticketKeys: deps.ticketKeys, log: deps.log });
    this.#certFiles = new CertificateFiles({ store: this.certificates, log: deps.log, intervalMs: deps.certWatchIntervalMs });
    this.#https = new ListenerGroup('https', deps.log, listen, () =>
      createSecureListener({
        store: this.certificates,
        http2: this.#state.config.tls.http2,
        limits: this.#state.config.limits,
        log: deps.log,
        onRequest: this.gateway.request,
        onCheckContinue: this.gateway.checkContinue,
        onUpgrade: this.gateway.upgrade,
        connections: this.#connections,
        sessions: this.#sessions,
        onTlsClientError: metrics
          ? () => {
              this.#tlsClientErrors++;
              metrics.handshakeFailed();
            }
          : () => this.#tlsClientErrors++,
        onTlsHandshake: metrics?.handshake,
      }),
    );
    metrics?.observe({
      certificates: () => this.certificates.certificates(),
      sites: () => siteFacts(this.#state.config.sites, this.upstreams.status()).map((site) => ({ name: site.name, addresses: site.addresses.length })),
      acmeNames: () => this.#acme?.renewer.status().map((r) => r.name) ?? [],
      health: () => this.health(),
    });
    const handleAdmin = createAdminHandler(() => this.#adminRoutes(), deps.log, () => ({
      token: this.#state.config.admin_token,
      writes: this.#state.config.admin_writes,
    }));
    this.#admin = new ListenerGroup('admin', deps.log, { reusePort: false }, () => {
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
      // A configured certificate that does not load stops the start before any port is bound.
      const problems = await edge.#certFiles.load(certFileSettings(config));
      if (problems.length > 0) throw new EdgeError('CERT_INVALID', problems.join('; '));
      for (const { id, source, pairs } of deps.initialCertificates ?? []) edge.certificates.setSource(id, source, pairs);
      if (config.listen.https.length > 0 && config.acme === null && edge.certificates.certificates().length === 0) {
        deps.log.warn('https_without_certificates', { message: 'no tls.certificates, tls.certbot or acme: every TLS handshake will fail' });
      }
      // Never fails on DNS: names that do not resolve yet answer 503 until they do.
      await edge.upstreams.start(config);
      edge.#state = edge.#stateFor(config, edge.#state.accessLog, false);
      await (await edge.#http.sync(config.listen.http))();
      await (await edge.#https.sync(config.listen.https))();
      await (await edge.#admin.sync(config.admin ? [config.admin] : []))();
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
    return {
      http: this.#http.listeners.map((l) => l.bound),
      https: this.#https.listeners.map((l) => l.bound),
      admin: this.#admin.listeners.map((l) => l.bound),
    };
  }

  /** Ports actually bound, in config order (tests listen on port 0). */
  get ports(): { http: number[]; https: number[]; admin: number[] } {
    return {
      http: this.#http.listeners.map((l) => l.port),
      https: this.#https.listeners.map((l) => l.port),
      admin: this.#admin.listeners.map((l) => l.port),
    };
  }

  /** Built-in ACME, when `acme` is set. */
  get acme(): AcmeManager | null {
    return this.#acme;
  }

  #adminRoutes(): AdminRoute[] {
    const routes: AdminRoute[] = [healthRoute(() => this.health()), metricsRoute(() => this.#metricsText()), ...statusRoutes(() => this.status())];
    const acme = this.#acme;
    if (acme) routes.push(renewRoute((name) => acme.renewer.renewNow(name)));
    return routes;
  }

  /** This edge's (with workers: the node's) health and why (GET /healthz). */
  health(): Health {
    return nodeHealth(this.#facts());
  }

  /** GET /status: the node as one document. */
  async status(): Promise<StatusDocument> {
    const facts = this.#facts();
    if (this.#deps.node) facts.peers = mergePeers([facts.peers, ...(await this.#deps.node.peers())]);
    return statusDocument(facts);
  }

  async #metricsText(): Promise<string | null> {
    if (!this.metrics) return null;
    return this.#deps.node ? this.#deps.node.metrics(await this.metrics.json()) : this.metrics.text();
  }

  #facts(): NodeFacts {
    const { config, stopping } = this.#state;
    const facts: NodeFacts = {
      now: Date.now(),
      stopping,
      workers: null,
      listeners: [
        listenerFacts('http', config.listen.http, this.#http.listeners),
        listenerFacts('https', config.listen.https, this.#https.listeners),
        listenerFacts('admin', config.admin ? [config.admin] : [], this.#admin.listeners),
      ],
      sites: siteFacts(config.sites, this.upstreams.status()),
      certificates: this.certificates.certificates(),
      acme: config.acme ? (this.#acme?.renewer.status() ?? []) : null,
      peers: this.peers.status(),
      startGraceUntil: config.acme ? this.#startedAt + config.acme.start_grace : null,
    };
    return this.#deps.node ? this.#deps.node.amend(facts) : facts;
  }

  /**
   * Starts built-in ACME when `acme` is set (Edge.start does it unless deps.startAcme is
   * false). The http listeners of the node must answer port 80 by then.
   */
  async startAcme(): Promise<void> {
    this.#acmeEnabled = true;
    const config = this.#state.config;
    if (config.acme && !this.#acme && !this.#state.stopping) this.#acme = await this.#startAcme(config);
  }

  #startAcme(config: Config): Promise<AcmeManager> {
    const forward = this.#deps.onAcmeCertificates;
    const store = this.certificates;
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
    return AcmeManager.start(config, { sink, challenges: this.challenges, log: this.#log, onRenewal: this.metrics?.renewal, ...this.#deps.acme });
  }

  /** ACME settings changed: the old loop stops, a new one starts from the stored state. */
  async #reloadAcme(config: Config): Promise<void> {
    if (!this.#acmeChanges(config)) return;
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

  #acmeChanges(config: Config): boolean {
    if (!this.#acmeEnabled) return false;
    return !(this.#acme?.matches(config) || (!this.#acme && !config.acme));
  }

  /** TLS handshakes that failed (bad versions, scanners, unknown names with reject). */
  get tlsClientErrors(): number {
    return this.#tlsClientErrors;
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
    const previous = this.#state;
    let accessLog = previous.accessLog;
    return prepareAll([
      async () => {
        if (config.access_log === previous.config.access_log && config.access_log_format === previous.config.access_log_format) return step([]);
        const created = openAccessLog(config, this.#log);
        if (typeof created === 'string') return step([created]);
        accessLog = created;
        return { problems: [], commit: async () => {}, rollback: () => created.close() };
      },
      () => this.#http.prepare(config.listen.http),
      () => this.#https.prepare(config.listen.https),
      () => this.#admin.prepare(config.admin ? [config.admin] : []),
      () => this.#certFiles.prepare(certFileSettings(config)).then((files) => step(files.problems, files.commit)),
      async () => step(this.#acmeChanges(config) ? await acmeProblems(config, this.#log) : []),
      // Applied last, once the listeners and certificates above are committed.
      async () =>
        step([], async () => {
          this.#warnPartial(config, previous.config);
          this.peers.setPeers(config.challenges.peers);
          const retireUpstreams = await this.upstreams.reload(config);
          this.#state = this.#stateFor(config, accessLog, this.#state.stopping);
          for (const { server } of this.#http.listeners) applyLimits(server, config.limits);
          for (const { server } of this.#https.listeners) applySecureLimits(server, config.limits);
          this.certificates.setUnknownSni(config.tls.unknown_sni);
          await this.#reloadAcme(config);
          await retireUpstreams();
          if (accessLog !== previous.accessLog) await previous.accessLog.close();
          else accessLog.reopen();
          this.#log.info('reloaded', { source: config.source });
        }),
    ]);
  }

  /** Settings a reload cannot apply to what is already running. */
  #warnPartial(config: Config, previous: Config): void {
    if (config.admin && !this.metrics && this.#deps.metrics === undefined) {
      this.#log.warn('reload_partial', { key: 'admin', message: 'metrics are recorded only when admin is set at start: /metrics answers 503 until a restart' });
    }
    if (config.tls.http2 !== previous.tls.http2 && this.#https.listeners.length > 0) {
      this.#log.warn('reload_partial', { key: 'tls.http2', message: 'applies to https addresses bound from now on; restart to change the bound ones' });
    }
  }

  /** Routes read the upstreams' targets: build them once the upstreams know the config. */
  #stateFor(config: Config, accessLog: AccessLog, stopping: boolean, routed = true): State {
    return Object.freeze({
      config,
      accessLog,
      stopping,
      routes: siteRoutes(routed ? config.sites : [], (site) => this.upstreams.get(site.upstream)),
      limits: config.limits,
      hsts: config.tls.hsts,
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
    this.#log.info('stopping', { connections: this.#connections.size, grace_ms: graceMs });
    const acme = this.#acme;
    this.#acme = null;
    await acme?.stop();
    await Promise.all([this.#http.stopAccepting(), this.#https.stopAccepting(), this.#admin.stopAccepting()]);
    this.#certFiles.stop();
    // HTTP/2: GOAWAY, so clients open no new streams and the open ones finish.
    this.#sessions.goaway();
    // Idle keep-alive connections are ended (not destroyed: see ConnectionTracker.closeIdle).
    const closeIdle = () => this.#connections.closeIdle();
    closeIdle();
    const timer = setInterval(closeIdle, 50);
    const drained = await this.#connections.idle(deadline);
    clearInterval(timer);
    if (!drained) {
      this.#log.warn('stop_forced', { connections: this.#connections.size });
      this.#connections.destroyAll();
      this.#sessions.destroyAll();
    }
    this.#sessions.stop();
    // In-flight upstream requests have finished with their clients; what is left is idle.
    await this.upstreams.stop(Math.max(0, deadline - Date.now()));
    await this.peers.close();
    await this.#state.accessLog.close();
    this.#log.info('stopped', { drained });
  }
}

/** The access log a reload switches to, or why it cannot be opened. */
function openAccessLog(config: Config, log: EventLog): AccessLog | string {
  try {
    return createAccessLog(config.access_log, config.access_log_format, log);
  } catch (err) {
    return `access_log: cannot open ${config.access_log} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
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
