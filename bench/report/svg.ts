// The chart, hand-written SVG (no dependency): for each worker set, three panels side by side,
// requests/s, p99 latency and the proxy's CPU time per request, one group of bars per scenario
// and one bar per target. Bars are scaled within each scenario (a 10 MiB body and a 1 KiB
// body share no scale); the value is printed at the end of each bar.

import type { Results, SummaryRow } from './results.ts';
import { fmtCount, fmtMs } from './table.ts';

type Panel = { title: string; value: (r: SummaryRow) => number | null | undefined; format: (v: number) => string };

const PANELS: Panel[] = [
  { title: 'proxy CPU per request, us (shorter is better)', value: (r) => r.cpu_us_per_req, format: fmtCount },
  { title: 'requests/s (longer is better)', value: (r) => r.rps, format: fmtCount },
  { title: 'p99 latency, ms (shorter is better)', value: (r) => r.p99_ms, format: fmtMs },
];

const COLORS: Record<string, string> = {
  origin: '#9e9e9e',
  'nginx-seed': '#e07b39',
  'nginx-best': '#2e7d32',
  caddy: '#1565c0',
  'opam-edge': '#8e24aa',
  'opam-edge-admin': '#ce93d8',
};

const WIDTH = 1000;
const LABEL = 112;
const PANEL = 296;
const BAR_MAX = 228;
const BAR = 11;
const GAP = 12;

function esc(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(content)}</text>`;
}

export function renderSvg(results: Results): string {
  const targets = results.options.targets;
  const label = (id: string) => results.targets.find((t) => t.id === id)?.label ?? id;
  const parts: string[] = [];
  let y = 24;
  parts.push(text(10, y, `opam-edge bench ${results.date.slice(0, 16).replace('T', ' ')} UTC${results.quick ? ' (quick)' : ''}: ${results.machine.cpus} CPU, ${results.machine.model}`, 'class="title"'));
  y += 22;
  // Legend.
  let x = 10;
  for (const id of targets) {
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${COLORS[id] ?? '#444'}"/>`);
    parts.push(text(x + 16, y, label(id)));
    x += 30 + label(id).length * 6;
  }
  y += 12;
  const groupHeight = targets.length * BAR + GAP;
  for (const workers of results.options.workers) {
    y += 24;
    parts.push(text(10, y, `workers: ${workers}${results.pinning[String(workers)] ? `, ${results.pinning[String(workers)]}` : ''}`, 'class="section"'));
    y += 18;
    PANELS.forEach((panel, p) => parts.push(text(LABEL + p * PANEL, y, panel.title, 'class="head"')));
    y += 10;
    for (const scenario of results.scenarios) {
      const rows = targets.map((t) => results.summary.find((s) => s.workers === workers && s.scenario === scenario.id && s.target === t));
      const ok = rows.filter((r): r is SummaryRow => r?.status === 'ok');
      const flagged = results.flags.some((f) => f.workers === workers && f.scenario === scenario.id);
      parts.push(`<line x1="10" x2="${WIDTH - 10}" y1="${y + 2}" y2="${y + 2}" class="rule"/>`);
      parts.push(text(10, y + 16, scenario.id, 'class="scenario"'));
      if (flagged) parts.push(text(10, y + 30, 'load-generator bound', 'class="flag"'));
      PANELS.forEach((panel, p) => {
        const left = LABEL + p * PANEL;
        const max = Math.max(0, ...ok.map((r) => panel.value(r) ?? 0));
        rows.forEach((row, i) => {
          const top = y + 6 + i * BAR;
          const color = COLORS[targets[i]!] ?? '#444';
          const value = row?.status === 'ok' ? panel.value(row) : null;
          if (value === null || value === undefined) {
            const why = !row || row.status === 'not-available' ? 'n/a' : row.status === 'failed' ? 'failed' : '-';
            parts.push(`<rect x="${left}" y="${top + 2}" width="4" height="${BAR - 6}" fill="${color}"/>`);
            parts.push(text(left + 8, top + BAR - 2, why, 'class="na"'));
            return;
          }
          const width = max > 0 ? (value / max) * BAR_MAX : 0;
          parts.push(`<rect x="${left}" y="${top}" width="${width.toFixed(1)}" height="${BAR - 2}" fill="${color}"/>`);
          parts.push(text(left + width + 4, top + BAR - 2, panel.format(value)));
        });
      });
      y += groupHeight;
    }
  }
  y += 16;
  parts.push(text(10, y, 'Bars are scaled within each scenario. Full figures, ratios and CPU per request: the Markdown table beside this file.', 'class="foot"'));
  const height = y + 12;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="10">
<style>
  .title { font-size: 14px; font-weight: bold; }
  .section { font-size: 13px; font-weight: bold; }
  .head { font-size: 11px; font-weight: bold; }
  .scenario { font-size: 11px; }
  .flag { font-size: 9px; fill: #b71c1c; }
  .na { fill: #9e9e9e; font-style: italic; }
  .foot { fill: #555; }
  .rule { stroke: #e0e0e0; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
${parts.join('\n')}
</svg>
`;
}
