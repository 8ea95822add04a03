// The figures of each hardening part (corpus, fuzzing, faults, slow clients, soak, graceful
// stop), kept in reports/hardening/figures.json and shown as the summary at the top of
// REPORT.md beside it. Each part rewrites its own entry when it runs; the others stay as
// their last run left them, with the date of that run. reports/ is git-ignored, so runs
// leave the tree clean; a report worth keeping is committed as docs/hardening-report-DATE.md.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPORTS_DIR = fileURLToPath(new URL('../../../reports/hardening/', import.meta.url));
export const FIGURES_PATH = `${REPORTS_DIR}figures.json`;
export const REPORT_PATH = `${REPORTS_DIR}REPORT.md`;

/** writeFileSync, creating the folder first (a fresh clone has no reports/). */
export function writeReportFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

export type Part = {
  title: string;
  /** ISO date of the run that wrote it. */
  at: string;
  /** How it was run (e.g. "npm run test:hardening", "npm run soak --minutes 10"). */
  by: string;
  rows: [string, string | number][];
  notes?: string[];
};

/** Parts in the order the summary shows them. */
const ORDER = ['corpus', 'fuzz', 'faults-upstream', 'faults-acme', 'slow-clients', 'soak', 'soak-ci', 'graceful-stop'];

const BEGIN = '<!-- figures: written from figures.json by every hardening part; do not edit -->';
const END = '<!-- /figures -->';

export function readFigures(): Record<string, Part> {
  if (!existsSync(FIGURES_PATH)) return {};
  return JSON.parse(readFileSync(FIGURES_PATH, 'utf8')) as Record<string, Part>;
}

export function renderSummary(figures: Record<string, Part>): string {
  const out: string[] = [BEGIN, '## Summary', ''];
  const keys = [...ORDER.filter((k) => figures[k]), ...Object.keys(figures).filter((k) => !ORDER.includes(k))];
  if (keys.length === 0) out.push('No part has run yet.', '');
  for (const key of keys) {
    const part = figures[key]!;
    out.push(`### ${part.title}`, '', `_${part.by}, ${part.at.slice(0, 16).replace('T', ' ')} UTC_`, '', '| figure | value |', '|---|---|');
    for (const [label, value] of part.rows) out.push(`| ${label} | ${String(value).replace(/\|/g, '\\|')} |`);
    out.push('');
    for (const note of part.notes ?? []) out.push(`- ${note}`);
    if (part.notes?.length) out.push('');
  }
  out.push(END);
  return out.join('\n');
}

/** Replaces the summary block of REPORT.md (or puts it after the title when there is none). */
export function withSummary(report: string, figures: Record<string, Part> = readFigures()): string {
  const summary = renderSummary(figures);
  const begin = report.indexOf(BEGIN);
  const end = report.indexOf(END);
  if (begin >= 0 && end > begin) return report.slice(0, begin) + summary + report.slice(end + END.length);
  const corpus = report.indexOf('\n# The request-parsing corpus');
  if (corpus >= 0) return `${report.slice(0, corpus)}\n${summary}\n${report.slice(corpus)}`;
  return `${report.trimEnd()}\n\n${summary}\n`;
}

/** Records one part's figures and refreshes the summary in REPORT.md. */
export function recordFigures(key: string, part: Omit<Part, 'at'> & { at?: string }): void {
  const figures = readFigures();
  figures[key] = { ...part, at: part.at ?? new Date().toISOString() };
  const sorted: Record<string, Part> = {};
  for (const k of [...ORDER, ...Object.keys(figures)]) if (figures[k] && !sorted[k]) sorted[k] = figures[k];
  writeReportFile(FIGURES_PATH, `${JSON.stringify(sorted, null, 2)}\n`);
  const report = existsSync(REPORT_PATH) ? readFileSync(REPORT_PATH, 'utf8') : '# Hardening report\n';
  writeReportFile(REPORT_PATH, withSummary(report, sorted));
}
