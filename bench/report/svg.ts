// The chart, hand-written SVG (no dependency): for each worker set, two panels side by side,
// requests/s and p99 latency, one group of bars per scenario and one bar per target. Bars are
// scaled within each scenario (a 10 MiB body and a 1 KiB body share no scale); the value is
// printed at the end of each bar.

import type { Results, SummaryRow } from './results.ts';
import { fmtCount, fmtMs } from './table.ts';

const COLORS: Record<string, string> = {
  origin: '#9e9e9e',
  'nginx-seed': '#e07b39',
  'nginx-best': '#2e7d32',
  caddy: '#1565c0',
  'opam-edge': '#8e24aa',
};

const WIDTH = 980;
const LABEL = 150;
const PANEL = 405;
const BAR_MAX = 320;
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
    x += 24 + label(id).length * 7;
  }
  y += 12;
  const groupHeight = targets.length * BAR + GAP;
  for (const workers of results.options.workers) {
    y += 22;
    parts.push(text(10, y, `workers: ${workers}`, 'class="section"'));
    parts.push(text(LABEL, y, 'requests/s (longer is better)', 'class="head"'));
    parts.push(text(LABEL + PANEL, y, 'p99 latency, ms (shorter is better)', 'class="head"'));
    y += 10;
    for (const scenario of results.scenarios) {
      const rows = targets.map((t) => results.summary.find((s) => s.workers === workers && s.scenario === scenario.id && s.target === t));
      const ok = rows.filter((r): r is SummaryRow => r?.status === 'ok');
      const maxRps = Math.max(0, ...ok.map((r) => r.rps ?? 0));
      const maxP99 = Math.max(0, ...ok.map((r) => r.p99_ms ?? 0));
      const flagged = results.flags.some((f) => f.workers === workers && f.scenario === scenario.id);
      parts.push(`<line x1="10" x2="${WIDTH - 10}" y1="${y + 2}" y2="${y + 2}" class="rule"/>`);
      parts.push(text(10, y + 16, scenario.id, 'class="scenario"'));
      if (flagged) parts.push(text(10, y + 30, 'load-generator bound', 'class="flag"'));
      rows.forEach((row, i) => {
        const top = y + 6 + i * BAR;
        const color = COLORS[targets[i]!] ?? '#444';
        if (!row || row.status !== 'ok') {
          parts.push(text(LABEL, top + BAR - 2, row?.status === 'failed' ? 'failed' : 'n/a', 'class="na"'));
          parts.push(text(LABEL + PANEL, top + BAR - 2, row?.status === 'failed' ? 'failed' : 'n/a', 'class="na"'));
          return;
        }
        const w1 = maxRps > 0 ? ((row.rps ?? 0) / maxRps) * BAR_MAX : 0;
        const w2 = maxP99 > 0 ? ((row.p99_ms ?? 0) / maxP99) * BAR_MAX : 0;
        parts.push(`<rect x="${LABEL}" y="${top}" width="${w1.toFixed(1)}" height="${BAR - 2}" fill="${color}"/>`);
        parts.push(text(LABEL + w1 + 4, top + BAR - 2, fmtCount(row.rps)));
        parts.push(`<rect x="${LABEL + PANEL}" y="${top}" width="${w2.toFixed(1)}" height="${BAR - 2}" fill="${color}"/>`);
        parts.push(text(LABEL + PANEL + w2 + 4, top + BAR - 2, fmtMs(row.p99_ms)));
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
