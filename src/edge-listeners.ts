// The listeners of one Edge (edge.ts): http (port 80, http/plain.ts), https (http/secure.ts,
// the gateway behind it) and admin (admin/admin.ts), each a ListenerGroup whose servers are
// made here from what the edge lets them read (EdgeReads), and the connections they drain.

import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { Server as TlsServer } from 'node:tls';
import type { Config, Limits } from './config.ts';
import type { EventLog } from './log.ts';
import { createPlainHandler } from './http/plain.ts';
import type { ChallengeSource } from './http/plain.ts';
import { applyLimits, serverOptions } from './http/server-options.ts';
import { onClientError, onConnectRequest } from './http/client-errors.ts';
import { ConnectionTracker } from './http/connection-tracker.ts';
import { ListenerGroup } from './http/listener-group.ts';
import type { PreparedListeners } from './http/listener-group.ts';
import { applySecureLimits, createSecureListener, Http2Sessions } from './http/secure.ts';
import { createAdminHandler } from './admin/admin.ts';
import type { AdminRoute } from './admin/admin.ts';
import { adminAddresses } from './edge-state.ts';
import type { EdgeReads } from './edge-state.ts';

export type ListenerReads = Omit<EdgeReads, 'upstreams'> & {
  /** The admin listener's routes, asked per request (renewal comes and goes with ACME). */
  adminRoutes(): AdminRoute[];
};

export type ListenerOptions = {
  log: EventLog;
  /** Bind http and https with SO_REUSEPORT (cluster workers); admin never. */
  reusePort?: boolean;
  /** Called once per port-80 challenge request, with where the answer came from. */
  onChallenge?: (source: ChallengeSource) => void;
};

export class EdgeListeners {
  readonly http: ListenerGroup<HttpServer>;
  readonly https: ListenerGroup<TlsServer>;
  readonly admin: ListenerGroup<HttpServer>;
  readonly #log: EventLog;
  readonly #connections = new ConnectionTracker();
  readonly #sessions: Http2Sessions;
  #tlsClientErrors = 0;

  constructor(reads: ListenerReads, options: ListenerOptions) {
    const { log } = options;
    const { metrics } = reads;
    this.#log = log;
    this.#sessions = new Http2Sessions(log);
    const listen = { reusePort: options.reusePort ?? false };

    const handlePlain = createPlainHandler({
      challenges: reads.challenges,
      peers: reads.peers,
      settings: () => {
        const { config, stopping } = reads.state();
        return { webroot: config.challenges.webroot, stopping };
      },
      accessLog: () => reads.state().accessLog,
      onChallenge: options.onChallenge,
    });
    this.http = new ListenerGroup('http', log, listen, () => {
      const { limits } = reads.state().config;
      const server = createServer(serverOptions(limits), handlePlain);
      applyLimits(server, limits);
      server.on('clientError', onClientError);
      server.on('connect', onConnectRequest);
      this.#connections.track(server);
      return server;
    });

    const { gateway } = reads;
    this.https = new ListenerGroup('https', log, listen, () =>
      createSecureListener({
        store: reads.certificates,
        http2: reads.state().config.tls.http2,
        limits: reads.state().config.limits,
        log,
        onRequest: gateway.request,
        onCheckContinue: gateway.checkContinue,
        onUpgrade: gateway.upgrade,
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

    const handleAdmin = createAdminHandler(() => reads.adminRoutes(), log, () => {
      const { config } = reads.state();
      return { token: config.admin_token, writes: config.admin_writes };
    });
    this.admin = new ListenerGroup(
      'admin',
      log,
      { reusePort: false },
      () => {
        const server = createServer(serverOptions(reads.state().config.limits), handleAdmin);
        server.on('clientError', onClientError);
        this.#connections.track(server);
        return server;
      },
      // One address, not a list.
      () => 'admin',
    );
  }

  /** Start-up: binds every group in turn; the first address that does not bind throws. */
  async start(config: Config): Promise<void> {
    await (await this.http.sync(config.listen.http))();
    await (await this.https.sync(config.listen.https))();
    await (await this.admin.sync(adminAddresses(config)))();
  }

  /** Reload's steps: each group binds the config's new addresses (listener-group.ts). */
  prepare(config: Config): (() => Promise<PreparedListeners>)[] {
    return [() => this.http.prepare(config.listen.http), () => this.https.prepare(config.listen.https), () => this.admin.prepare(adminAddresses(config))];
  }

  /** New limits for the servers already bound (reload); servers made later read the state. */
  applyLimits(limits: Limits): void {
    for (const { server } of this.http.listeners) applyLimits(server, limits);
    for (const { server } of this.https.listeners) applySecureLimits(server, limits);
  }

  /** Bound addresses by role, e.g. { http: ["[::]:80"], https: ["[::]:443"] }; with port 0 the kernel's port. */
  get addresses(): { http: string[]; https: string[]; admin: string[] } {
    return {
      http: this.http.listeners.map((l) => l.bound),
      https: this.https.listeners.map((l) => l.bound),
      admin: this.admin.listeners.map((l) => l.bound),
    };
  }

  /** Ports actually bound, in config order. */
  get ports(): { http: number[]; https: number[]; admin: number[] } {
    return {
      http: this.http.listeners.map((l) => l.port),
      https: this.https.listeners.map((l) => l.port),
      admin: this.admin.listeners.map((l) => l.port),
    };
  }

  /** TLS handshakes that failed (bad versions, scanners, unknown names with reject). */
  get tlsClientErrors(): number {
    return this.#tlsClientErrors;
  }

  /** Open client connections, every role. */
  get connections(): number {
    return this.#connections.size;
  }

  async stopAccepting(): Promise<void> {
    await Promise.all([this.http.stopAccepting(), this.https.stopAccepting(), this.admin.stopAccepting()]);
  }

  /**
   * Lets in-flight requests finish (keep-alive connections are closed as they go idle) and
   * destroys what is left at `deadline`. True when every connection finished in time.
   */
  async drain(deadline: number): Promise<boolean> {
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
    return drained;
  }
}
