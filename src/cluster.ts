// `workers` > 1: one primary and N worker processes (node:cluster), like nginx's master
// and workers. The primary is the node's control plane: it owns ACME (orders, storage
// writes, the renewal loop), the node's challenge tokens, the admin listener and the TLS
// session ticket keys. Workers serve http and https. What a worker needs of the control
// plane travels over the IPC channel:
//   primary -> worker  init {config, ticket keys, tokens, ACME certificates},
//                      token (one change), certs (an ACME source), prepare {config},
//                      commit, rollback, reopen, stop {grace}, report {id, metrics?}
//   worker -> primary  hello, ready {addresses}, failed {error}, prepared {problems},
//                      done, report {id, metrics JSON, challenge peers}
// A reload is decided once, by the primary: it prepares its own part, asks every worker to
// prepare theirs (read certificates, bind new addresses), then tells all of them to commit,
// or, when anyone found a problem, to roll back (reload.ts).
// The config travels parsed and validated (as JSON: configFromWire() restores its URLs), so
// a worker loads neither the YAML parser nor the schema: about 6 MiB less per worker.
// The admin listener is the primary's; admin/cluster-admin.ts adds the workers to its answers
// (report). Only these messages travel (prom-client's own cluster IPC is not used); both
// sides ignore a message whose `t` they do not know.
// Workers bind their own sockets with SO_REUSEPORT (the kernel spreads connections; no
// hop through the primary); port 0 (tests) uses node:cluster's shared socket instead.

import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { Config } from './config.ts';
import { deepFreeze } from './deep-freeze.ts';
import { createEventLog } from './log.ts';
import type { EventLog } from './log.ts';
import { Edge } from './edge.ts';
import { reloadProblems } from './reload.ts';
import type { PreparedStep } from './reload.ts';
import type { ChallengeChange } from './acme/challenges.ts';
import type { CertSourceUpdate } from './tls/certificate.ts';
import { EdgeMetrics } from './admin/metrics.ts';
import { ClusterAdmin, workerReport } from './admin/cluster-admin.ts';
import type { Report, ReportRequest, WorkerState } from './admin/cluster-admin.ts';

type ToWorker =
  | { t: 'init'; config: Config; metrics: boolean; ticketKeys: string; tokens: ChallengeChange[]; certs: CertSourceUpdate[] }
  | { t: 'token'; change: ChallengeChange }
  | { t: 'certs'; update: CertSourceUpdate }
  | { t: 'prepare'; config: Config }
  | { t: 'commit' }
  | { t: 'rollback' }
  | { t: 'reopen' }
  | { t: 'stop'; graceMs: number }
  | ReportRequest;

type ToPrimary =
  | { t: 'hello' }
  | { t: 'ready'; addresses: { http: string[]; https: string[] } }
  | { t: 'failed'; error: string }
  | { t: 'prepared'; problems: string[] }
  | { t: 'done' }
  | Report;

const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;
/** A worker that ran this long was healthy: its successor restarts without delay growth. */
const STABLE_MS = 60_000;

/** What workers run: no admin listener (nor its token) and no ACME (the primary has both). */
function workerView(config: Config): Config {
  return Object.freeze({ ...config, admin: null, admin_token: null });
}

/**
 * A config as it crossed the IPC channel (JSON): plain data but for the challenge peers,
 * which are URLs again; frozen again.
 */
export function configFromWire(data: Config): Config {
  return deepFreeze({ ...data, challenges: { ...data.challenges, peers: data.challenges.peers.map((peer) => new URL(String(peer))) } });
}

/** What the primary runs: admin and ACME, no http/https listeners, no access log. */
function primaryView(config: Config): Config {
  return Object.freeze({ ...config, listen: Object.freeze({ http: [], https: [] }), access_log: 'off' });
}


export class Cluster {
  #edge: Edge | null = null;
  readonly #log: EventLog;
  readonly #ticketKeys = randomBytes(48).toString('hex');
  readonly #workers = new Map<number, WorkerState>();
  /** The latest ACME certificates by source id, replayed to every new worker. */
  readonly #certs = new Map<string, CertSourceUpdate>();
  /** The config each worker runs (it was started, or last reloaded, with). */
  readonly #running = new Map<number, Config>();
  #reloading: Promise<void> = Promise.resolve();
  #count: number;
  /** The config as written (the primary's edge runs primaryView of it). */
  #config: Config;
  #stopping = false;
  #restartDelay = RESTART_MIN_MS;
  /** The workers' part of /healthz, /status and /metrics. */
  readonly #admin = new ClusterAdmin(this.#workers, () => ({ config: this.#config, count: this.#count }));

  private constructor(config: Config, log: EventLog) {
    this.#config = config;
    this.#count = config.workers;
    this.#log = log;
  }

  get edge(): Edge {
    return this.#edge!;
  }

  /**
   * Starts the control plane, forks the workers and waits until each serves; then starts
   * ACME (its orders need a worker to answer the CA on port 80). A worker that cannot
   * start (a port in use) fails the whole start.
   */
  static async start(config: Config, log: EventLog): Promise<Cluster> {
    // ACME starts after the workers (below), so the edge exists before its first certificate.
    const cluster_ = new Cluster(config, log);
    const edge = await Edge.start(primaryView(config), {
      log,
      startAcme: false,
      onAcmeCertificates: (update) => cluster_.#broadcastCerts(update),
      node: cluster_.#admin,
    });
    cluster_.#edge = edge;
    edge.challenges.onChange((change) => cluster_.#broadcast({ t: 'token', change }));
    try {
      await Promise.all(Array.from({ length: config.workers }, () => cluster_.#fork()));
    } catch (err) {
      await cluster_.stop(0);
      throw err;
    }
    await edge.startAcme();
    log.info('workers_started', { workers: config.workers, worker_pids: [...cluster_.#workers.values()].map((w) => w.worker.process.pid) });
    return cluster_;
  }

  get workerCount(): number {
    return [...this.#workers.values()].filter((w) => w.ready).length;
  }

  /**
   * All or nothing, for the whole node: the control plane and every worker prepare the
   * new config; only when none found a problem do all of them commit. Otherwise every one
   * rolls back and `reload_refused` lists every problem once.
   */
  reload(config: Config, checked: readonly string[] = []): Promise<void> {
    return this.#oneAtATime(() => this.#reload(config, checked));
  }

  async #reload(config: Config, checked: readonly string[]): Promise<void> {
    if (this.#stopping) return;
    const prepared = await this.edge.prepareReload(primaryView(config));
    const asked = [...this.#workers.values()].filter((w) => w.ready).map((w) => w.worker);
    const answers = await Promise.all(asked.map((worker) => this.#ask(worker, { t: 'prepare', config: workerView(config) }, 'prepared')));
    const problems = reloadProblems(checked, [...prepared.problems, ...answers.flatMap((a) => (a.t === 'prepared' ? a.problems : []))]);
    if (problems.length > 0) {
      await Promise.all(asked.map((worker) => this.#ask(worker, { t: 'rollback' }, 'done')));
      await prepared.rollback();
      this.#log.error('reload_refused', { code: 'RELOAD_REFUSED', source: config.source, problems });
      return;
    }
    if (config.workers !== this.#count) {
      this.#log.warn('reload_partial', { key: 'workers', message: `running ${this.#count} workers; restart to run ${config.workers}` });
    }
    await prepared.commit();
    this.#config = config;
    await Promise.all(asked.map((worker) => this.#ask(worker, { t: 'commit' }, 'done')));
    for (const worker of asked) this.#running.set(worker.id, config);
    // A worker started during the reload got the old config: it catches up now.
    for (const { worker, ready } of this.#workers.values()) if (ready && this.#running.get(worker.id) !== config) void this.#oneAtATime(() => this.#catchUp(worker));
  }

  /**
   * Reloads and catch-ups one after the other (a worker holds one prepared reload at a
   * time). Never rejects: a failure is logged.
   */
  #oneAtATime(work: () => Promise<void>): Promise<void> {
    this.#reloading = this.#reloading.then(work).catch((err: unknown) => this.#log.error('reload_failed', { error: String(err) }));
    return this.#reloading;
  }

  /** Moves one worker to the current config (it started with an older one). */
  async #catchUp(worker: Worker): Promise<void> {
    const config = this.#config;
    const answer = await this.#ask(worker, { t: 'prepare', config: workerView(config) }, 'prepared');
    const problems = answer.t === 'prepared' ? answer.problems : [];
    await this.#ask(worker, { t: problems.length > 0 ? 'rollback' : 'commit' }, 'done');
    if (problems.length > 0) this.#log.error('worker_reload_failed', { worker: worker.id, worker_pid: worker.process.pid, problems });
    else this.#running.set(worker.id, config);
  }

  reopenLogs(): void {
    this.edge.reopenLogs();
    this.#broadcast({ t: 'reopen' });
  }

  /** Every worker drains (up to `graceMs`) and exits; then the control plane stops. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    const exits = [...this.#workers.values()].map(
      ({ worker }) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          const kill = setTimeout(() => worker.process.kill('SIGKILL'), graceMs + 2000);
          worker.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          send(worker, { t: 'stop', graceMs });
        }),
    );
    await Promise.all(exits);
    await this.edge.stop(0);
  }

  #fork(): Promise<void> {
    const worker = cluster.fork();
    const state: WorkerState = { worker, startedAt: Date.now(), ready: false, addresses: null };
    this.#workers.set(worker.id, state);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (message: ToPrimary) => {
        if (message.t === 'hello') {
          this.#running.set(worker.id, this.#config);
          send(worker, {
            t: 'init',
            config: workerView(this.#config),
            metrics: this.#config.admin !== null,
            ticketKeys: this.#ticketKeys,
            tokens: this.edge.challenges.snapshot(),
            certs: [...this.#certs.values()],
          });
        } else if (message.t === 'ready') {
          state.ready = true;
          state.addresses = message.addresses;
          this.#log.info('worker_ready', { worker: worker.id, worker_pid: worker.process.pid, ...message.addresses });
          if (this.#running.get(worker.id) !== this.#config) void this.#oneAtATime(() => this.#catchUp(worker));
          resolve();
        } else if (message.t === 'failed') {
          reject(new Error(`worker ${worker.id}: ${message.error}`));
        }
      });
      worker.once('exit', (code, signal) => {
        this.#workers.delete(worker.id);
        this.#running.delete(worker.id);
        this.#admin.workerExited(worker.id);
        if (!state.ready) reject(new Error(`worker ${worker.id} exited while starting (${signal ?? code})`));
        if (this.#stopping || !state.ready) return;
        this.#log.error('worker_exited', { worker: worker.id, worker_pid: worker.process.pid, code, signal });
        this.#restartDelay = Date.now() - state.startedAt > STABLE_MS ? RESTART_MIN_MS : Math.min(this.#restartDelay * 2, RESTART_MAX_MS);
        const timer = setTimeout(() => {
          if (!this.#stopping) this.#fork().catch((err) => this.#log.error('worker_start_failed', { error: (err as Error).message }));
        }, this.#restartDelay);
        timer.unref();
      });
    });
  }

  #broadcastCerts(update: CertSourceUpdate): void {
    this.#certs.set(update.id, update);
    this.#broadcast({ t: 'certs', update });
  }

  #broadcast(message: ToWorker): void {
    for (const { worker, ready } of this.#workers.values()) if (ready) send(worker, message);
  }

  #ask(worker: Worker, message: ToWorker, reply: ToPrimary['t']): Promise<ToPrimary> {
    return new Promise((resolve) => {
      const onMessage = (m: ToPrimary) => {
        if (m.t !== reply) return;
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        resolve(m);
      };
      // A worker that died is replaced with the config the primary settles on: not a problem of this reload.
      const onExit = () => resolve(reply === 'prepared' ? { t: 'prepared', problems: [] } : { t: 'done' });
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      send(worker, message);
    });
  }
}

function send(target: Worker | NodeJS.Process, message: ToWorker | ToPrimary): void {
  if ('isConnected' in target) {
    if (target.isConnected()) target.send(message);
  } else if (target.connected) {
    target.send!(message);
  }
}

/**
 * A worker's life: ask the primary for its config and state, serve, follow the primary's
 * messages, and stop when told (or when the primary is gone). Signals are the primary's
 * business: a Ctrl-C reaches the whole process group, and the primary orders the drain.
 */
export function runWorker(log: EventLog = createEventLog()): Promise<number> {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'] as const) process.on(signal, () => {});
  return new Promise<number>((resolveExit) => {
    let edge: Edge | null = null;
    let metrics: EdgeMetrics | null = null;
    let stopping: Promise<void> | null = null;
    /** A reload prepared here, waiting for the primary's commit or rollback. */
    let pending: PreparedStep | null = null;
    const stop = (graceMs: number) => {
      stopping ??= (edge?.stop(graceMs) ?? Promise.resolve()).then(() => resolveExit(0));
    };
    process.on('disconnect', () => stop(30_000));
    process.on('message', async (message: ToWorker) => {
      switch (message.t) {
        case 'init': {
          const config = configFromWire(message.config);
          // Traffic metrics when the node has an admin listener at start (the primary's).
          metrics = message.metrics ? new EdgeMetrics({ role: 'worker' }) : null;
          try {
            edge = await Edge.start(config, {
              log,
              metrics,
              startAcme: false,
              ticketKeys: Buffer.from(message.ticketKeys, 'hex'),
              initialCertificates: message.certs,
              reusePort: true,
            });
          } catch (err) {
            send(process, { t: 'failed', error: (err as Error).message });
            return resolveExit(1);
          }
          for (const change of message.tokens) edge.challenges.apply(change);
          send(process, { t: 'ready', addresses: { http: edge.addresses.http, https: edge.addresses.https } });
          return;
        }
        case 'token':
          edge?.challenges.apply(message.change);
          return;
        case 'certs':
          edge?.certificates.setSource(message.update.id, message.update.source, message.update.pairs);
          return;
        case 'prepare': {
          pending = edge ? await edge.prepareReload(configFromWire(message.config)) : null;
          send(process, { t: 'prepared', problems: [...(pending?.problems ?? ['the worker has not started'])] });
          return;
        }
        case 'commit':
        case 'rollback': {
          const step = pending;
          pending = null;
          await (message.t === 'commit' ? step?.commit() : step?.rollback());
          send(process, { t: 'done' });
          return;
        }
        case 'reopen':
          edge?.reopenLogs();
          return;
        case 'stop':
          stop(message.graceMs);
          return;
        case 'report':
          send(process, await workerReport(message, metrics, () => edge?.peers.status() ?? []));
          return;
      }
    });
    send(process, { t: 'hello' });
  });
}

export const isWorker = cluster.isWorker;
