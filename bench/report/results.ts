// The result file's shape, and the summary computed from the runs: medians over rounds,
// ratios to nginx-as-deployed and to nginx-best, and the flags that say when a figure
// measures the load generator rather than the proxy. Fixed-rate runs (latency at an offered
// load of half nginx-as-deployed's req/s) are summarised into the same rows, under at_rate.

import type { TargetId, WorkerSet } from '../targets/target.ts';

export const SCHEMA = 'opam-edge-bench/1';

/** One measured run (or the reason there is none). */
export type RunRecord = {
  workers: WorkerSet;
  round: number;
  scenario: string;
  target: TargetId;
  status: 'ok' | 'not-available' | 'failed';
  reason?: string;
  requests?: number;
  duration_s?: number;
  rps?: number;
  p50_ms?: number;
  p99_ms?: number;
  mb_per_s?: number;
  errors?: number;
  non2xx?: number;
  proxy_cpu_s?: number | null;
  cpu_us_per_req?: number | null;
  rss_mib?: number | null;
  processes?: number;
  /** Fractions of one CPU over the measured part. */
  load_cpu?: number | null;
  origin_cpu?: number | null;
  /** New TLS connections: the group, cipher and version the target negotiated. */
  tls?: string;
  /** 'fixed-rate': a run at `offered_rps` (after the capacity rounds); absent: a capacity run. */
  phase?: 'fixed-rate';
  offered_rps?: number;
};

/** p99_at_rate: the p99 of the fixed-rate runs (absent in result files from before them). */
export type Ratios = { rps: number | null; p99: number | null; cpu: number | null; p99_at_rate?: number | null };

/** The fixed-rate run of a cell: every target offered the same req/s, the figure is latency. */
export type AtRate = {
  status: 'ok' | 'not-available' | 'failed';
  reason?: string;
  offered_rps?: number;
  rps?: number;
  p50_ms?: number;
  p99_ms?: number;
  cpu_us_per_req?: number | null;
  errors?: number;
};

export type SummaryRow = {
  workers: WorkerSet;
  scenario: string;
  target: TargetId;
  status: 'ok' | 'not-available' | 'failed';
  reason?: string;
  rounds: number;
  rps?: number;
  p50_ms?: number;
  p99_ms?: number;
  mb_per_s?: number;
  cpu_us_per_req?: number | null;
  errors?: number;
  non2xx?: number;
  rss_mib?: number | null;
  load_cpu?: number | null;
  origin_cpu?: number | null;
  tls?: string;
  /** Load-bound: the load generator or the origin (or the two, when they share a CPU) used at least 90% of a CPU. */
  load_saturated?: boolean;
  at_rate?: AtRate;
  vs_seed?: Ratios;
  vs_best?: Ratios;
};

export type ScenarioFlag = { workers: WorkerSet; scenario: string; flag: string };

export type Results = {
  schema: typeof SCHEMA;
  date: string;
  stamp: string;
  quick: boolean;
  elapsed_s: number;
  options: { rounds: number; duration_s: number; warmup_s: number; workers: WorkerSet[]; targets: TargetId[]; scenarios: string[] };
  machine: { cpus: number; model: string; kernel: string; memory_gib: number; node: string };
  tools: Record<string, string | null>;
  /** Where the proxy, origin and load generator ran, per worker set ("1", "auto"). */
  pinning: Record<string, string>;
  scenarios: { id: string; title: string; driver: string; connections: number; streams?: number }[];
  targets: { id: TargetId; label: string; description: Record<string, string> }[];
  notes: string[];
  runs: RunRecord[];
  summary: SummaryRow[];
  flags: ScenarioFlag[];
};

/** Within this fraction of the bare origin, a proxy is not distinguishable from no proxy. */
export const TIE_MARGIN = 0.05;
export const SATURATED = 0.9;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function medianOf(runs: readonly RunRecord[], pick: (r: RunRecord) => number | null | undefined): number | null {
  const values = runs.map(pick).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return values.length > 0 ? median(values) : null;
}

function ratio(value: number | null | undefined, base: number | null | undefined): number | null {
  return typeof value === 'number' && typeof base === 'number' && base > 0 ? value / base : null;
}

/**
 * Medians per (workers, scenario, target) over the rounds that produced a figure, ratios to
 * the two nginx set-ups in the same cell, and the load-generator flags.
 */
export function summarize(runs: readonly RunRecord[], sharedLoadCpu: boolean): { summary: SummaryRow[]; flags: ScenarioFlag[] } {
  const summary: SummaryRow[] = [];
  const flags: ScenarioFlag[] = [];
  const keys = new Map<string, RunRecord[]>();
  for (const run of runs) {
    if (run.phase === 'fixed-rate') continue;
    const key = `${run.workers}|${run.scenario}|${run.target}`;
    const list = keys.get(key);
    if (list) list.push(run);
    else keys.set(key, [run]);
  }
  for (const group of keys.values()) {
    const first = group[0]!;
    const ok = group.filter((r) => r.status === 'ok');
    if (ok.length === 0) {
      const failed = group.find((r) => r.status === 'failed');
      summary.push({
        workers: first.workers,
        scenario: first.scenario,
        target: first.target,
        status: failed ? 'failed' : 'not-available',
        reason: (failed ?? first).reason,
        rounds: 0,
      });
      continue;
    }
    const originCpu = medianOf(ok, (r) => r.origin_cpu);
    const loadSide = medianOf(ok, (r) => (r.load_cpu ?? NaN) + (sharedLoadCpu ? (r.origin_cpu ?? 0) : 0));
    summary.push({
      workers: first.workers,
      scenario: first.scenario,
      target: first.target,
      status: 'ok',
      rounds: ok.length,
      rps: medianOf(ok, (r) => r.rps) ?? 0,
      p50_ms: medianOf(ok, (r) => r.p50_ms) ?? 0,
      p99_ms: medianOf(ok, (r) => r.p99_ms) ?? 0,
      mb_per_s: medianOf(ok, (r) => r.mb_per_s) ?? 0,
      cpu_us_per_req: medianOf(ok, (r) => r.cpu_us_per_req),
      errors: ok.reduce((sum, r) => sum + (r.errors ?? 0), 0),
      non2xx: ok.reduce((sum, r) => sum + (r.non2xx ?? 0), 0),
      rss_mib: Math.max(...ok.map((r) => r.rss_mib ?? 0)) || null,
      load_cpu: medianOf(ok, (r) => r.load_cpu),
      origin_cpu: originCpu,
      ...(ok.find((r) => r.tls) ? { tls: ok.find((r) => r.tls)!.tls } : {}),
      load_saturated: (loadSide !== null && loadSide >= SATURATED) || (originCpu !== null && originCpu >= SATURATED),
    });
  }
  const cell = (workers: WorkerSet, scenario: string, target: TargetId) =>
    summary.find((s) => s.workers === workers && s.scenario === scenario && s.target === target && s.status === 'ok');
  for (const run of runs) {
    if (run.phase !== 'fixed-rate') continue;
    const row = summary.find((s) => s.workers === run.workers && s.scenario === run.scenario && s.target === run.target && s.status === 'ok');
    if (row) row.at_rate = atRate(run);
  }
  for (const row of summary) {
    if (row.status !== 'ok') continue;
    const seed = cell(row.workers, row.scenario, 'nginx-seed');
    const best = cell(row.workers, row.scenario, 'nginx-best');
    const fixedP99 = (r: SummaryRow | undefined) => (r?.at_rate?.status === 'ok' ? r.at_rate.p99_ms : null);
    row.vs_seed = { rps: ratio(row.rps, seed?.rps), p99: ratio(row.p99_ms, seed?.p99_ms), cpu: ratio(row.cpu_us_per_req, seed?.cpu_us_per_req), p99_at_rate: ratio(fixedP99(row), fixedP99(seed)) };
    row.vs_best = { rps: ratio(row.rps, best?.rps), p99: ratio(row.p99_ms, best?.p99_ms), cpu: ratio(row.cpu_us_per_req, best?.cpu_us_per_req), p99_at_rate: ratio(fixedP99(row), fixedP99(best)) };
  }
  const cells = new Set(summary.map((s) => `${s.workers}|${s.scenario}`));
  for (const key of cells) {
    const rows = summary.filter((s) => `${s.workers}|${s.scenario}` === key && s.status === 'ok');
    if (rows.length === 0) continue;
    const { workers, scenario } = rows[0]!;
    const origin = rows.find((r) => r.target === 'origin');
    const proxies = rows.filter((r) => r.target !== 'origin');
    if (origin && proxies.length > 0 && proxies.every((p) => (p.rps ?? 0) >= (origin.rps ?? 0) * (1 - TIE_MARGIN))) {
      flags.push({
        workers,
        scenario,
        flag: `every proxy is within ${TIE_MARGIN * 100}% of the bare origin: the load generator and origin are the limit, not the proxies (a tie, not a ranking; compare CPU per request instead)`,
      });
    } else if (rows.length > 1 && rows.every((r) => r.load_saturated)) {
      flags.push({
        workers,
        scenario,
        flag: 'the load generator (with the origin on its CPU) was saturated for every target: req/s are a floor; CPU per request still compares the proxies',
      });
    }
  }
  return { summary, flags };
}

/** One fixed-rate run, as its cell shows it (one run per cell: no median). */
function atRate(run: RunRecord): AtRate {
  if (run.status !== 'ok') return { status: run.status, ...(run.reason ? { reason: run.reason } : {}), ...(run.offered_rps ? { offered_rps: run.offered_rps } : {}) };
  return {
    status: 'ok',
    offered_rps: run.offered_rps,
    rps: run.rps,
    p50_ms: run.p50_ms,
    p99_ms: run.p99_ms,
    cpu_us_per_req: run.cpu_us_per_req ?? null,
    errors: (run.errors ?? 0) + (run.non2xx ?? 0),
  };
}
