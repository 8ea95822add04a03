// The results as tables: one per worker set, a row per scenario and target, each figure with
// its ratio to nginx-as-deployed (x seed) and to nginx-best (x best). Rendered as Markdown for
// the results file and the README, and as aligned text for the terminal.

import type { Ratios, Results, SummaryRow } from './results.ts';

const HEADER = [
  'scenario',
  'target',
  'CPU us/req',
  'CPU x seed',
  'CPU x best',
  'req/s',
  'x seed',
  'x best',
  'p50 ms',
  'p99 ms',
  'p99 x seed',
  'p99 x best',
  'rate req/s',
  'p99 ms @ rate',
  'p99 @ rate x seed',
  'MB/s',
  'errors',
  'RSS MiB',
];

export function fmtCount(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  if (v >= 10_000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 100) return String(Math.round(v));
  return v.toFixed(1);
}

export function fmtMs(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  if (v < 1) return v.toFixed(2);
  if (v < 10) return v.toFixed(1);
  return String(Math.round(v));
}

function fmtRatio(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${v.toFixed(2)}x`;
}

function fmtInt(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : String(Math.round(v));
}

type Table = { title: string; rows: string[][]; notes: string[] };

export function buildTables(results: Results): Table[] {
  const label = (id: string) => results.targets.find((t) => t.id === id)?.label ?? id;
  const tables: Table[] = [];
  for (const workers of results.options.workers) {
    const rows: string[][] = [];
    const notes: string[] = [];
    const reasons = new Map<string, number>();
    const footnote = (reason: string) => {
      let n = reasons.get(reason);
      if (n === undefined) {
        n = reasons.size + 1;
        reasons.set(reason, n);
        notes.push(`[${n}] ${reason}`);
      }
      return `[${n}]`;
    };
    for (const scenario of results.scenarios) {
      const flag = results.flags.find((f) => f.workers === workers && f.scenario === scenario.id);
      const scenarioCell = flag ? `${scenario.id} ${footnote(flag.flag)}` : scenario.id;
      for (const target of results.options.targets) {
        const row = results.summary.find((s) => s.workers === workers && s.scenario === scenario.id && s.target === target);
        if (!row) continue;
        rows.push(rowCells(scenarioCell, label(target), row, footnote));
      }
    }
    const pinning = results.pinning[String(workers)];
    tables.push({ title: `workers: ${workers}${pinning ? `, ${pinning}` : ''}`, rows, notes });
  }
  return tables;
}

function rowCells(scenario: string, target: string, row: SummaryRow, footnote: (reason: string) => string): string[] {
  if (row.status !== 'ok') {
    const what = row.status === 'failed' ? 'failed' : 'not available';
    return [scenario, target, `${what} ${footnote(row.reason ?? 'no reason recorded')}`, ...Array<string>(HEADER.length - 3).fill('')];
  }
  const saturated = row.load_saturated ? ` load-bound ${footnote('the load generator or the origin (or the two, when they share a CPU) used 90% of a CPU or more in this cell: req/s is a floor, the proxy was not the limit')}` : '';
  return [
    scenario,
    target,
    fmtInt(row.cpu_us_per_req),
    fmtRatio(row.vs_seed?.cpu),
    fmtRatio(row.vs_best?.cpu),
    `${fmtCount(row.rps)}${saturated}${row.tls ? ` ${footnote(`TLS: ${row.tls}`)}` : ''}`,
    fmtRatio(row.vs_seed?.rps),
    fmtRatio(row.vs_best?.rps),
    fmtMs(row.p50_ms),
    fmtMs(row.p99_ms),
    fmtRatio(row.vs_seed?.p99),
    fmtRatio(row.vs_best?.p99),
    ...atRateCells(row, footnote),
    fmtCount(row.mb_per_s),
    String((row.errors ?? 0) + (row.non2xx ?? 0)),
    fmtInt(row.rss_mib),
  ];
}

/** The fixed-rate run: the rate offered (what was done, when short of it), its p99 and the ratio to nginx-seed's. */
function atRateCells(row: SummaryRow, footnote: (reason: string) => string): string[] {
  const r = row.at_rate;
  if (!r) return ['-', '-', '-'];
  if (r.status !== 'ok') return [fmtCount(r.offered_rps), `${r.status === 'failed' ? 'failed' : 'n/a'} ${footnote(r.reason ?? 'no reason recorded')}`, '-'];
  // Below 95% of the offered rate the proxy (or the load generator) could not keep up.
  const short = r.rps !== undefined && r.offered_rps !== undefined && r.rps < r.offered_rps * 0.95 ? ` (did ${fmtCount(r.rps)})` : '';
  const errors = r.errors ? ` ${footnote('errors or non-2xx answers during the fixed-rate run')}` : '';
  return [`${fmtCount(r.offered_rps)}${short}`, `${fmtMs(r.p99_ms)}${errors}`, fmtRatio(row.vs_seed?.p99_at_rate)];
}

export function renderMarkdown(results: Results, chartFile: string | null): string {
  const m = results.machine;
  const lines: string[] = [];
  lines.push(`# opam-edge bench, ${results.date.slice(0, 16).replace('T', ' ')} UTC${results.quick ? ' (quick run)' : ''}`);
  lines.push('');
  lines.push(
    `Machine: ${m.cpus} x ${m.model}, ${m.memory_gib} GiB, ${m.kernel}; Node ${m.node}; ` +
      Object.entries(results.tools)
        .map(([k, v]) => `${k} ${v ?? 'missing'}`)
        .join(', ') +
      '.',
  );
  lines.push(
    `Runs: ${results.options.rounds} round(s), targets interleaved in each; ${results.options.duration_s} s per run after ${results.options.warmup_s} s of warm-up; medians over rounds. Took ${Math.round(results.elapsed_s)} s.`,
  );
  lines.push('');
  lines.push('Figures: first the proxy\'s own CPU time per request (utime + stime of all its processes / requests: the headline, and the steadiest figure on a noisy machine); requests/s ("load-bound" when the load generator or the origin used 90% of a CPU: then the figure is theirs, not the proxy\'s); latency p50/p99 (ms); the p99 at a fixed rate (half of nginx as deployed\'s req/s, offered to every target alike: "rate req/s", "p99 ms @ rate"); MB/s; errors + non-2xx; peak RSS (VmHWM summed over master + workers). "x seed" is the ratio to nginx as deployed, "x best" to nginx with a keep-alive upstream (for p99 and CPU, lower is better).');
  lines.push('');
  if (chartFile) {
    lines.push(`![proxy CPU per request, requests/s and p99 latency, per scenario and proxy](${chartFile})`);
    lines.push('');
  }
  lines.push(...renderMatrices(results));
  for (const table of buildTables(results)) {
    lines.push(`## All figures, ${table.title}`);
    lines.push('');
    lines.push(`| ${HEADER.join(' | ')} |`);
    lines.push(`|${HEADER.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`);
    for (const row of table.rows) lines.push(`| ${row.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`);
    lines.push('');
    for (const note of table.notes) lines.push(`- ${note}`);
    if (table.notes.length) lines.push('');
  }
  lines.push('## Targets');
  lines.push('');
  for (const target of results.targets) {
    lines.push(`- **${target.label}** (\`${target.id}\`): ${Object.values(target.description)[0] ?? ''}`);
  }
  lines.push('');
  lines.push('## Scenarios');
  lines.push('');
  for (const s of results.scenarios) {
    lines.push(`- \`${s.id}\`: ${s.title}; ${s.driver}, ${s.connections} connections${s.streams ? ` x ${s.streams} streams` : ''}`);
  }
  lines.push('');
  if (results.notes.length) {
    lines.push('## Notes');
    lines.push('');
    for (const note of results.notes) lines.push(`- ${note}`);
    lines.push('');
  }
  return lines.join('\n');
}

export function renderText(results: Results): string {
  const out: string[] = [];
  for (const table of buildTables(results)) {
    const all = [HEADER, ...table.rows];
    const widths = HEADER.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
    out.push(`\n${table.title}`);
    for (const [n, row] of all.entries()) {
      out.push(row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
      if (n === 0) out.push(widths.map((w) => '-'.repeat(w)).join('  '));
    }
    for (const note of table.notes) out.push(`  ${note}`);
  }
  return out.join('\n');
}

type Metric = {
  title: string;
  pick: (r: SummaryRow) => number | null | undefined;
  ratio: (r: Ratios | undefined) => number | null | undefined;
  fmt: (v: number) => string;
  /** The fixed-rate matrix: each scenario says the rate it offered. */
  atRate?: true;
};

/** The proxy's CPU per request first: the headline, and the steadiest figure on a shared machine. */
const METRICS: Metric[] = [
  { title: 'proxy CPU per request, us', pick: (r) => r.cpu_us_per_req, ratio: (x) => x?.cpu, fmt: fmtCount },
  { title: 'requests/s', pick: (r) => r.rps, ratio: (x) => x?.rps, fmt: fmtCount },
  { title: 'p99 latency, ms', pick: (r) => r.p99_ms, ratio: (x) => x?.p99, fmt: fmtMs },
  {
    title: "p99 latency at a fixed rate (half nginx as deployed's req/s, the same for every target), ms",
    pick: (r) => (r.at_rate?.status === 'ok' ? r.at_rate.p99_ms : null),
    ratio: (x) => x?.p99_at_rate,
    fmt: fmtMs,
    atRate: true,
  },
];

/**
 * The short form (for the README): per worker set and figure, a scenario x target matrix,
 * each cell "value (x seed / x best)", then each target's peak RSS.
 */
export function renderMatrices(results: Results): string[] {
  const label = (id: string) => results.targets.find((t) => t.id === id)?.label ?? id;
  const targets = results.options.targets;
  const lines: string[] = [];
  for (const workers of results.options.workers) {
    const pinning = results.pinning[String(workers)];
    lines.push(`## Summary, workers: ${workers}${pinning ? `, ${pinning}` : ''}`);
    lines.push('');
    for (const metric of METRICS) {
      lines.push(`**${metric.title}** (x nginx as deployed / x nginx at its best)`);
      lines.push('');
      lines.push(`| scenario | ${targets.map(label).join(' | ')} |`);
      lines.push(`|---|${targets.map(() => '---:').join('|')}|`);
      for (const scenario of results.scenarios) {
        const flagged = results.flags.some((f) => f.workers === workers && f.scenario === scenario.id);
        const cells = targets.map((t) => {
          const row = results.summary.find((s) => s.workers === workers && s.scenario === scenario.id && s.target === t);
          if (!row || row.status !== 'ok') return row?.status === 'failed' ? 'failed' : 'n/a';
          const value = metric.pick(row);
          if (value === null || value === undefined) return '-';
          const ratios = t === 'origin' ? '' : ` (${fmtRatio(metric.ratio(row.vs_seed))} / ${fmtRatio(metric.ratio(row.vs_best))})`;
          const bound = metric.title === 'requests/s' && row.load_saturated ? ' load-bound' : '';
          return `${metric.fmt(value)}${ratios}${bound}`;
        });
        const offered = metric.atRate
          ? results.summary.find((s) => s.workers === workers && s.scenario === scenario.id && s.at_rate?.offered_rps)?.at_rate?.offered_rps
          : undefined;
        if (metric.atRate && offered === undefined) continue;
        const what = metric.atRate ? ` @ ${fmtCount(offered)} req/s` : flagged ? ' (tie: load-bound)' : '';
        lines.push(`| ${scenario.id}${what} | ${cells.join(' | ')} |`);
      }
      lines.push('');
    }
    const rss = targets.map((t) => {
      const values = results.summary.filter((s) => s.workers === workers && s.target === t && s.status === 'ok').map((s) => s.rss_mib ?? 0);
      return `${label(t)} ${values.length ? `${Math.round(Math.max(...values))} MiB` : 'n/a'}`;
    });
    lines.push(`Peak RSS over the run (VmHWM, all processes): ${rss.join(', ')}.`);
    lines.push('');
  }
  return lines;
}
