// Re-renders the Markdown table and the SVG chart of a result file, beside it:
//   node bench/render.ts bench/results/2026-11-26-0930.json
// (after a change to the report's layout; the measurements are not touched).

import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { renderMarkdown } from './report/table.ts';
import { renderSvg } from './report/svg.ts';
import { SCHEMA } from './report/results.ts';
import type { Results } from './report/results.ts';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node bench/render.ts RESULTS.json\n');
  process.exit(2);
}
const results = JSON.parse(readFileSync(file, 'utf8')) as Results;
if (results.schema !== SCHEMA) {
  process.stderr.write(`${file}: not a ${SCHEMA} result file\n`);
  process.exit(1);
}
const stem = basename(file, '.json');
writeFileSync(join(dirname(file), `${stem}.md`), renderMarkdown(results, `${stem}.svg`));
writeFileSync(join(dirname(file), `${stem}.svg`), renderSvg(results));
process.stdout.write(`wrote ${stem}.md and ${stem}.svg in ${dirname(file)}\n`);
