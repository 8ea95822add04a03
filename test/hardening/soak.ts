// `npm run soak [-- --minutes N]`: the long soak (default 10 minutes), outside CI. Prints its
// progress, writes the "soak" figures into reports/hardening/REPORT.md, exits 1 when a limit is
// broken (unexpected errors, RSS growth of 10 % or more after warm-up, fds not back).

import { parseArgs } from 'node:util';
import { hasTool } from '../helpers/tools.ts';
import { runSoak, soakRows } from './lib/soak.ts';
import { recordFigures } from './lib/figures.ts';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' } } });
const minutes = Number(values.minutes);
if (!(minutes > 0 && minutes <= 120)) {
  process.stderr.write('usage: npm run soak -- [--minutes N]   (0 < N <= 120)\n');
  process.exit(2);
}
if (!hasTool('pebble-challtestsrv')) {
  process.stderr.write('soak: pebble-challtestsrv is needed for the DNS changes (apt-get install pebble)\n');
  process.exit(1);
}
const result = await runSoak({
  durationMs: minutes * 60_000,
  warmupMs: Math.min(60_000, (minutes * 60_000) / 5),
  certEveryMs: 60_000,
  dnsEveryMs: 30_000,
  progress: (line) => process.stdout.write(`soak: ${line}\n`),
});
const rows = soakRows(result, minutes);
const ok = result.unexpected === 0 && result.rssGrowth < 0.1 && result.after.fds <= result.start.fds;
recordFigures('soak', { title: `Soak (${minutes} min, npm run soak)`, by: `npm run soak -- --minutes ${minutes}`, rows: [...rows, ['verdict', ok ? 'pass' : 'FAIL']], notes: [...result.errors.slice(0, 5), ...result.leftover.slice(0, 10).map((l) => `still open after the traffic: \`${l}\``)] });
for (const [label, value] of rows) process.stdout.write(`${label}: ${value}\n`);
if (result.errors.length) process.stdout.write(`errors:\n${result.errors.join('\n')}\n`);
process.stdout.write(ok ? 'soak: pass\n' : 'soak: FAIL\n');
process.exit(ok ? 0 : 1);
