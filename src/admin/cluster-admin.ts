// The workers' part of the admin endpoints of a cluster primary (workers > 1). The primary's
// edge answers /healthz, /status and /metrics; this adds what only the workers know, asked
// over the cluster's IPC channel with a `report` request and response:
//   - /healthz and /status: the workers (ready or starting) and the http/https addresses
//     they bind (the primary binds none);
//   - /status: each worker's view of the challenge peers (workers forward, not the primary);
//   - /metrics: each worker's metrics as prom-client JSON, aggregated with the primary's.
// A worker that does not answer in time counts with its last report; a worker that exits
// leaves its last counters behind (retireCounters), so the node's totals never go down.

import type { Worker } from 'node:cluster';
import type { Config } from '../config.ts';
import type { PeerState } from '../acme/peers.ts';
import { aggregateText, retireCounters } from './metrics.ts';
import type { EdgeMetrics, MetricJson } from './metrics.ts';
import type { ListenerFacts, NodeExtension, NodeFacts } from './status.ts';

export type ReportRequest = { t: 'report'; id: number; metrics: boolean };
export type Report = { t: 'report'; id: number; metrics: MetricJson[]; peers: PeerState[] };

export type Addresses = { http: string[]; https: string[] };
export type WorkerState = { worker: Worker; startedAt: number; ready: boolean; addresses: Addresses | null };

/** How long a scrape or /status waits for a worker's report. */
const REPORT_TIMEOUT_MS = 2000;

export class ClusterAdmin implements NodeExtension {
  readonly #workers: ReadonlyMap<number, WorkerState>;
  readonly #settings: () => { config: Config; count: number };
  readonly #lastMetrics = new Map<number, MetricJson[]>();
  #retired: Promise<MetricJson[]> = Promise.resolve([]);
  #nextId = 0;

  /** `workers`: the cluster's live map; `settings`: the config as written and the worker count. */
  constructor(workers: ReadonlyMap<number, WorkerState>, settings: () => { config: Config; count: number }) {
    this.#workers = workers;
    this.#settings = settings;
  }

  /** The primary binds no http/https address: those facts are the workers'. */
  amend(facts: NodeFacts): NodeFacts {
    const { config, count } = this.#settings();
    const states = [...this.#workers.values()];
    const serving = states.find((w) => w.ready && w.addresses)?.addresses ?? null;
    const listeners = facts.listeners.map((l): ListenerFacts => {
      if (l.role === 'admin') return l;
      const configured = config.listen[l.role].map((a) => a.text);
      return { role: l.role, configured, bound: serving?.[l.role] ?? [], missing: serving ? [] : configured };
    });
    return {
      ...facts,
      listeners,
      workers: {
        configured: count,
        list: states.map((w) => ({ id: w.worker.id, pid: w.worker.process.pid ?? null, ready: w.ready, started_at: new Date(w.startedAt).toISOString() })),
      },
    };
  }

  async peers(): Promise<PeerState[][]> {
    return (await this.#reports(false)).map(([, r]) => r?.peers ?? []);
  }

  async metrics(own: MetricJson[]): Promise<string> {
    const reports = await this.#reports(true);
    const retired = await this.#retired;
    // A worker that exited meanwhile counts in `retired` already.
    const workers = reports.filter(([id]) => this.#workers.has(id)).map(([id, r]) => r?.metrics ?? this.#lastMetrics.get(id) ?? []);
    return aggregateText([own, ...workers, retired]);
  }

  /** Call when a worker has exited (after it left the map): its last counters carry over. */
  workerExited(id: number): void {
    const last = this.#lastMetrics.get(id);
    this.#lastMetrics.delete(id);
    if (last) this.#retired = this.#retired.then((retired) => retireCounters(retired, last).catch(() => retired));
  }

  /** Asks every ready worker for its report: [worker id, report, or null when it did not answer in time]. */
  #reports(metrics: boolean): Promise<[number, Report | null][]> {
    return Promise.all(
      [...this.#workers.values()].map(({ worker, ready }) => {
        if (!ready || !worker.isConnected()) return Promise.resolve<[number, Report | null]>([worker.id, null]);
        const id = ++this.#nextId;
        return new Promise<[number, Report | null]>((resolve) => {
          const done = (report: Report | null) => {
            clearTimeout(timer);
            worker.off('message', onMessage);
            worker.off('exit', onExit);
            if (report && metrics && this.#workers.has(worker.id)) this.#lastMetrics.set(worker.id, report.metrics);
            resolve([worker.id, report]);
          };
          // Other messages (the cluster's own) pass by: only our reply, by id, is taken.
          const onMessage = (m: { t?: unknown; id?: unknown }) => {
            if (m.t === 'report' && m.id === id) done(m as Report);
          };
          const onExit = () => done(null);
          const timer = setTimeout(() => done(null), REPORT_TIMEOUT_MS);
          worker.on('message', onMessage);
          worker.once('exit', onExit);
          worker.send({ t: 'report', id, metrics } satisfies ReportRequest);
        });
      }),
    );
  }
}

/** A worker's answer to a report request. */
export async function workerReport(request: ReportRequest, metrics: EdgeMetrics | null, peers: () => PeerState[]): Promise<Report> {
  return { t: 'report', id: request.id, metrics: request.metrics && metrics ? await metrics.json() : [], peers: peers() };
}
