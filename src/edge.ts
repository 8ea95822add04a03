// One running opam-edge: the listeners, the state they read, and the control plane that
// swaps that state. Start order: logs -> stores -> listeners -> loops; stop reverses it.
// Request handlers only read `this.#state`; reload builds a new one and swaps it whole.

import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { Config } from './config.ts';
import { createAccessLog } from './log.ts';
import type { AccessLog, EventLog } from './log.ts';
import { ChallengeStore } from './acme/challenges.ts';
import { PeerForwarder } from './acme/peers.ts';
import { createPlainHandler } from './http/plain.ts';
import type { ChallengeSource } from './http/plain.ts';
import { applyLimits, ConnectionTracker, ListenerGroup, onClientError, onConnectRequest, serverOptions } from './http/listeners.ts';

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
  /** How long each challenge peer may take (default 5 s, SPEC 3.1); tests shorten it. */
  peerTimeoutMs?: number;
};

export class Edge {
  readonly challenges: ChallengeStore;
  readonly peers: PeerForwarder;
  readonly #log: EventLog;
  readonly #connections = new ConnectionTracker();
  readonly #http: ListenerGroup<HttpServer>;
  #state: State;
  #stopped: Promise<void> | null = null;

  private constructor(config: Config, deps: EdgeDeps) {
    this.#log = deps.log;
    this.challenges = deps.challenges ?? new ChallengeStore();
    this.peers = new PeerForwarder(deps.log, deps.peerTimeoutMs);
    this.peers.setPeers(config.challenges.peers);
    this.#state = { config, accessLog: createAccessLog(config.access_log, config.access_log_format, deps.log), stopping: false };

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
      server.on('connect', onConnectRequest);
      this.#connections.track(server);
      return server;
    });
  }

  /** Binds every listener. On failure, whatever was started is stopped and the error thrown. */
  static async start(config: Config, deps: EdgeDeps): Promise<Edge> {
    const edge = new Edge(config, deps);
    try {
      await (await edge.#http.sync(config.listen.http))();
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
  get addresses(): { http: string[] } {
    return { http: this.#http.listeners.map((l) => l.bound) };
  }

  /** Ports actually bound, in config order (tests listen on port 0). */
  get ports(): { http: number[] } {
    return { http: this.#http.listeners.map((l) => l.port) };
  }

  /**
   * Moves to a new config without dropping connections. Listeners are synced first; if
   * one cannot be bound the reload is refused and the running config stays.
   */
  async reload(config: Config): Promise<void> {
    if (this.#state.stopping) return;
    const previous = this.#state;
    const sameLog = config.access_log === previous.config.access_log && config.access_log_format === previous.config.access_log_format;
    // Both steps that can fail come first; a failure leaves the running state untouched.
    const accessLog = sameLog ? previous.accessLog : createAccessLog(config.access_log, config.access_log_format, this.#log);
    let closeRemovedHttp: () => Promise<void>;
    try {
      closeRemovedHttp = await this.#http.sync(config.listen.http);
    } catch (err) {
      if (!sameLog) await accessLog.close();
      throw err;
    }
    this.peers.setPeers(config.challenges.peers);
    this.#state = { config, accessLog, stopping: false };
    for (const { server } of this.#http.listeners) applyLimits(server, config.limits);
    await closeRemovedHttp();
    if (accessLog !== previous.accessLog) await previous.accessLog.close();
    else accessLog.reopen();
    this.#log.info('reloaded', { source: config.source });
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
    await this.#http.stopAccepting();
    const closeIdle = () => {
      for (const { server } of this.#http.listeners) server.closeIdleConnections();
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
