// Prometheus metrics (GET /metrics on the admin listener), recorded only when `admin` is set
// at start: without it no EdgeMetrics exists and the request path calls nothing.
//
// The request path never touches prom-client. Each hook bumps a number in cells made once
// per site (no label objects, no label hashing, no allocation per request); prom-client
// reads the cells when scraped, through metric objects whose get() builds the samples, and
// formats them, adds the default process metrics and (with workers) aggregates the
// processes' JSON with AggregatorRegistry.aggregate (sum for counters and histograms, max
// for the state gauges, its own choice for process metrics).
//
// Roles: a 'node' process (a single process, or a cluster primary) also reports the
// node's state (certificates, upstream addresses, ACME orders); a 'worker' only its traffic.

import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { Aggregator, Metric, MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { ErrorCode } from '../errors.ts';
import type { RequestMetrics } from '../http/gateway.ts';
import type { ChallengeSource } from '../http/plain.ts';
import type { CertInfo } from '../tls/certificate.ts';
import { HEALTH_STATES } from './health.ts';
import type { Health } from './health.ts';

export type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/** prom-client's Registry.PROMETHEUS_CONTENT_TYPE (a test keeps them equal), without loading it. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const require = createRequire(import.meta.url);
let prom: typeof PromClient | null = null;

/**
 * prom-client, loaded by the first EdgeMetrics or aggregation: only a process with `admin`
 * set (or a cluster primary answering for it) pays its ~13 MiB of idle RSS.
 */
function promClient(): typeof PromClient {
  prom ??= require('prom-client') as typeof PromClient;
  return prom;
}
/** Seconds; an upstream read timeout is 60 s by default, hence the long tail. */
const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** The `site` label of requests refused before a site was known (400, 421). */
const NO_SITE = '-';
const CODE_CLASSES = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const PROTOS = ['http/1.1', 'h2'] as const;
const UPSTREAM_ERROR_KINDS = ['refused', 'reset', 'timeout', 'no_address', 'bad_response'] as const;
const KIND_OF: Partial<Record<ErrorCode, number>> = {
  UPSTREAM_REFUSED: 0,
  UPSTREAM_RESET: 1,
  UPSTREAM_CONNECT_TIMEOUT: 2,
  UPSTREAM_READ_TIMEOUT: 2,
  UPSTREAM_NO_ADDRESS: 3,
  UPSTREAM_BAD_RESPONSE: 4,
};
const CHALLENGE_SOURCES: readonly ChallengeSource[] = ['memory', 'webroot', 'peer', 'miss'];
const HANDSHAKE_RESULTS = ['full', 'resumed', 'failed'] as const;

/** One site's numbers, bumped in place by the request hook. */
class SiteCells {
  /** [proto][code class], flattened: proto * 6 + class. */
  readonly requests = new Float64Array(PROTOS.length * CODE_CLASSES.length);
  /** Per bucket (not cumulative); the last one is above every bound (+Inf). */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  readonly errors = new Float64Array(UPSTREAM_ERROR_KINDS.length);
}

/** What a 'node' process reports of its state, read when scraped. */
type StateSources = {
  certificates(): readonly CertInfo[];
  /** Each site's name (its first host) and how many upstream addresses it has now. */
  sites(): readonly { name: string; addresses: number }[];
  /** Names the ACME renewal loop manages (empty when ACME is off). */
  acmeNames(): readonly string[];
  /** The node's health (health.ts), workers included. */
  health(): Health;
};

type Sample = { labels: Record<string, string>; value: number; metricName?: string };

/** A prom-client metric whose samples are computed when it is read. */
function family(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', aggregator: Aggregator, samples: () => Sample[]): Metric {
  const read = () => ({ name, help, type, aggregator, values: samples() });
  return { name, help, type, aggregator, get: async () => read(), reset() {} } as unknown as Metric;
}

let processRegistry: Registry | null = null;

/** The default process metrics, one set per process however many edges it runs (tests). */
function processMetrics(): Registry {
  if (processRegistry === null) {
    const { Registry, collectDefaultMetrics } = promClient();
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class EdgeMetrics {
  readonly registry: Registry = new (promClient().Registry)();
  readonly #sites = new Map<string, SiteCells>();
  readonly #challenges: Record<ChallengeSource, number> = { memory: 0, webroot: 0, peer: 0, miss: 0 };
  readonly #handshakes = { full: 0, resumed: 0, failed: 0 };
  readonly #renewals = new Map<string, { success: number; failure: number }>();
  #state: StateSources | null = null;

  constructor(options: { role: 'node' | 'worker' }) {
    processMetrics();
    this.#registerTraffic();
    if (options.role === 'node') this.#registerState();
  }

  /** Where the state gauges come from ('node' role); read on each scrape. */
  observe(sources: StateSources): void {
    this.#state = sources;
  }

  // --- hooks: called on the request path, so plain number bumps only ---

  /** One https request answered (gateway onRequest). */
  readonly request = (m: RequestMetrics): void => {
    const site = m.site ?? NO_SITE;
    let cells = this.#sites.get(site);
    if (cells === undefined) {
      cells = new SiteCells();
      this.#sites.set(site, cells);
    }
    const cls = (m.status / 100) | 0;
    cells.requests[(m.proto === 'h2' ? CODE_CLASSES.length : 0) + (cls >= 1 && cls <= 5 ? cls : 0)]!++;
    const seconds = m.durationMs / 1000;
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    cells.buckets[i]!++;
    cells.sum += seconds;
    cells.count++;
    if (m.error !== null) {
      const kind = KIND_OF[m.error];
      if (kind !== undefined) cells.errors[kind]!++;
    }
  };

  /** One challenge request on port 80, by where its answer came from. */
  readonly challenge = (source: ChallengeSource): void => {
    this.#challenges[source]++;
  };

  /** A TLS handshake completed; `resumed` when the client resumed a session. */
  readonly handshake = (resumed: boolean): void => {
    if (resumed) this.#handshakes.resumed++;
    else this.#handshakes.full++;
  };

  /** A TLS handshake failed, or the connection ended before its ClientHello. */
  readonly handshakeFailed = (): void => {
    this.#handshakes.failed++;
  };

  /** An ACME order for `name` ended. */
  readonly renewal = (name: string, result: 'success' | 'failure'): void => {
    let counts = this.#renewals.get(name);
    if (counts === undefined) this.#renewals.set(name, (counts = { success: 0, failure: 0 }));
    counts[result]++;
  };

  // --- scrape side ---

  /** This process's metrics, process metrics included, in Prometheus text format. */
  async text(): Promise<string> {
    return `${await processMetrics().metrics()}\n${await this.registry.metrics()}`;
  }

  /** This process's metrics as prom-client JSON (what workers send to the primary). */
  async json(): Promise<MetricJson[]> {
    return [...(await processMetrics().getMetricsAsJSON()), ...(await this.registry.getMetricsAsJSON())];
  }

  #registerTraffic(): void {
    const sites = this.#sites;
    this.registry.registerMetric(
      family('opam_edge_requests_total', 'HTTPS requests answered, by site (its first host), status class and protocol.', 'counter', 'sum', () => {
        const out: Sample[] = [];
        for (const [site, cells] of sites) {
          for (let p = 0; p < PROTOS.length; p++) {
            for (let c = 0; c < CODE_CLASSES.length; c++) {
              const value = cells.requests[p * CODE_CLASSES.length + c]!;
              if (value > 0) out.push({ labels: { site, code_class: CODE_CLASSES[c]!, proto: PROTOS[p]! }, value });
            }
          }
        }
        return out;
      }),
    );
    this.registry.registerMetric(
      family('opam_edge_request_duration_seconds', 'Time from the request to the end of its response, by site.', 'histogram', 'sum', () => {
        const out: Sample[] = [];
        for (const [site, cells] of sites) {
          let cumulative = 0;
          for (let i = 0; i < DURATION_BUCKETS.length; i++) {
            cumulative += cells.buckets[i]!;
            out.push({ metricName: 'opam_edge_request_duration_seconds_bucket', labels: { site, le: String(DURATION_BUCKETS[i]) }, value: cumulative });
          }
          out.push({ metricName: 'opam_edge_request_duration_seconds_bucket', labels: { site, le: '+Inf' }, value: cells.count });
          out.push({ metricName: 'opam_edge_request_duration_seconds_sum', labels: { site }, value: cells.sum });
          out.push({ metricName: 'opam_edge_request_duration_seconds_count', labels: { site }, value: cells.count });
        }
        return out;
      }),
    );
    this.registry.registerMetric(
      family('opam_edge_upstream_errors_total', 'Requests that failed on the way to or from the upstream, by site and kind.', 'counter', 'sum', () => {
        const out: Sample[] = [];
        const names = new Set<string>(this.#state?.sites().map((s) => s.name));
        for (const site of sites.keys()) if (site !== NO_SITE) names.add(site);
        for (const site of names) {
          const cells = sites.get(site);
          UPSTREAM_ERROR_KINDS.forEach((kind, k) => out.push({ labels: { site, kind }, value: cells?.errors[k] ?? 0 }));
        }
        return out;
      }),
    );
    this.registry.registerMetric(
      family('opam_edge_challenge_requests_total', 'ACME HTTP-01 challenge requests on port 80, by where the answer came from.', 'counter', 'sum', () =>
        CHALLENGE_SOURCES.map((source) => ({ labels: { source }, value: this.#challenges[source] })),
      ),
    );
    this.registry.registerMetric(
      family('opam_edge_tls_handshakes_total', 'TLS handshakes on the https listeners: full, resumed, or failed.', 'counter', 'sum', () =>
        HANDSHAKE_RESULTS.map((result) => ({ labels: { result }, value: this.#handshakes[result] })),
      ),
    );
  }

  #registerState(): void {
    this.registry.registerMetric(
      family('opam_edge_health', 'The node\'s health: 1 for the current state (ok, degraded, failing), 0 for the others.', 'gauge', 'max', () => {
        const state = this.#state?.health().state;
        return HEALTH_STATES.map((s) => ({ labels: { state: s }, value: s === state ? 1 : 0 }));
      }),
    );
    this.registry.registerMetric(
      family('opam_edge_names_without_certificate', 'Configured or managed names no valid certificate serves.', 'gauge', 'max', () =>
        this.#state ? [{ labels: {}, value: this.#state.health().namesWithoutCertificate.length }] : [],
      ),
    );
    this.registry.registerMetric(
      family('opam_edge_upstream_addresses', "Addresses the site's upstream name resolves to now.", 'gauge', 'max', () =>
        (this.#state?.sites() ?? []).map((s) => ({ labels: { site: s.name }, value: s.addresses })),
      ),
    );
    this.registry.registerMetric(
      family('opam_edge_certificate_not_after_seconds', 'Expiry (Unix time) of the longest-lasting certificate serving each name.', 'gauge', 'max', () => {
        const latest = new Map<string, number>();
        for (const cert of this.#state?.certificates() ?? []) {
          const at = cert.notAfter.getTime() / 1000;
          for (const name of cert.names) latest.set(name, Math.max(at, latest.get(name) ?? 0));
        }
        return [...latest].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, value]) => ({ labels: { name }, value }));
      }),
    );
    this.registry.registerMetric(
      family('opam_edge_acme_renewals_total', 'ACME orders that ended, by name and result (success, failure).', 'counter', 'sum', () => {
        const names = new Set([...(this.#state?.acmeNames() ?? []), ...this.#renewals.keys()]);
        const out: Sample[] = [];
        for (const name of names) {
          const counts = this.#renewals.get(name);
          out.push({ labels: { name, result: 'success' }, value: counts?.success ?? 0 });
          out.push({ labels: { name, result: 'failure' }, value: counts?.failure ?? 0 });
        }
        return out;
      }),
    );
  }
}

/** Several processes' JSON as one Prometheus text: each metric aggregated by its own rule. */
export function aggregateText(lists: readonly MetricJson[][]): Promise<string> {
  return promClient().AggregatorRegistry.aggregate(lists as MetricJson[][]).metrics();
}

/**
 * Adds a worker's last counters to `retired` (those of workers gone before): the node's
 * totals must not go down when a worker is replaced, or Prometheus sees a counter reset.
 * Only opam_edge_ counters and histograms carry over; gauges and process metrics die with it.
 */
export async function retireCounters(retired: MetricJson[], last: readonly MetricJson[]): Promise<MetricJson[]> {
  const kept = last.filter((m) => m.name.startsWith('opam_edge_') && (String(m.type) === 'counter' || String(m.type) === 'histogram'));
  if (kept.length === 0) return retired;
  return promClient().AggregatorRegistry.aggregate([retired, kept]).getMetricsAsJSON();
}
