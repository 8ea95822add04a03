// Writes reports/hardening/REPORT.md (lib/figures.ts) from one run: the targets, the counts, the differences
// (opam-edge against what the corpus expects, opam-edge against nginx) and every case.

import type { Case, Role, Source } from './corpus.ts';
import type { Observation } from './expectations.ts';
import type { CaseResult } from './runner.ts';
import { TARGETS } from './targets.ts';
import type { TargetKey, Unavailable } from './targets.ts';
import { FIGURES_PATH, readFigures, REPORT_PATH, withSummary, writeReportFile } from './lib/figures.ts';

const KEYS: TargetKey[] = ['edge-http', 'edge-https', 'nginx-http', 'nginx-proxy'];

export type RunRecord = {
  cases: Case[];
  results: Partial<Record<TargetKey, CaseResult[]>>;
  versions: Partial<Record<TargetKey, string>>;
  unavailable: Unavailable[];
  /** Known departures of opam-edge from the expectation, awaiting a fix in src/: key "target:case". */
  known: Record<string, string>;
  sources: Map<string, Source>;
  seconds: number;
};

/** "301", "400 closed", "closed", "waiting", "200 · origin 1": what a target did, briefly. */
export function outcome(seen: Observation): string {
  if (seen.error) return `error ${seen.error}`;
  const words = seen.responses.map((r) => (r.status === 0 ? 'non-HTTP' : String(r.status)));
  if (seen.closed) words.push('closed');
  else if (words.length === 0) words.push('waiting');
  let text = words.join(' ');
  if (seen.origin && (seen.origin.started > 0 || seen.origin.errors.length > 0)) {
    const { started, complete, errors } = seen.origin;
    text += ` · origin ${complete}${started > complete ? ` (+${started - complete} cut)` : ''}${errors.length ? ' +error' : ''}`;
  }
  return text;
}

/** What two targets of the same role did, compared on answers and forwarding, not on timing. */
function sameOutcome(a: Observation, b: Observation): boolean {
  const statuses = (o: Observation) => o.responses.map((r) => r.status).join(',');
  const forwarded = (o: Observation) => (o.origin ? o.origin.complete : 0);
  return statuses(a) === statuses(b) && forwarded(a) === forwarded(b);
}

function md(text: string): string {
  return text.replace(/\|/g, '\\|');
}

type Tally = { tried: number; served: number; rejected: number; closed: number; waiting: number; expected: number; unexpected: number; ambiguousForwarded: number; safety: number };

function tally(results: CaseResult[], role: Role): Tally {
  const t: Tally = { tried: 0, served: 0, rejected: 0, closed: 0, waiting: 0, expected: 0, unexpected: 0, ambiguousForwarded: 0, safety: 0 };
  for (const { testCase, seen, verdict } of results) {
    t.tried++;
    const statuses = seen.responses.map((r) => r.status);
    const served = role === 'http' ? statuses.some((s) => s === 301 || s === 404) : (seen.origin?.complete ?? 0) > 0;
    if (statuses.some((s) => s >= 400)) t.rejected++;
    else if (served) t.served++;
    else if (seen.closed) t.closed++;
    else t.waiting++;
    if (verdict.statusOk && verdict.details.length === 0) t.expected++;
    else t.unexpected++;
    if (testCase.ambiguous && (seen.origin?.complete ?? 0) > 0) t.ambiguousForwarded++;
    if (verdict.safety.length > 0) t.safety++;
  }
  return t;
}

function cell(result: CaseResult | undefined, other?: CaseResult): string {
  if (!result) return 'n/a';
  let text = md(outcome(result.seen));
  if (other && !sameOutcome(result.seen, other.seen)) text = `**${text}**`;
  if (result.verdict.safety.length > 0) text += ' ⚠';
  else if (!result.verdict.statusOk || result.verdict.details.length > 0) text += ' ✗';
  return text;
}

export function writeReport(run: RunRecord, path = REPORT_PATH): string {
  const byCase = new Map<string, Partial<Record<TargetKey, CaseResult>>>();
  for (const key of KEYS) for (const r of run.results[key] ?? []) (byCase.get(r.testCase.id) ?? byCase.set(r.testCase.id, {}).get(r.testCase.id)!)[key] = r;
  const lines: string[] = [];
  const out = (s = '') => lines.push(s);

  out('# Hardening report');
  out();
  out('Written by `npm run test:hardening` (test/hardening/*.hardening.ts) and, for the 10-minute soak, `npm run soak`. Do not edit: every run rewrites it (reports/hardening/, git-ignored; a copy worth keeping is committed as docs/hardening-report-DATE.md). The summary gives each part\'s figures from its last run (reports/hardening/figures.json); the request-parsing corpus follows in full.');
  out();
  out('# The request-parsing corpus');
  out();
  out(`Written by test/hardening/corpus.hardening.ts on ${new Date().toISOString().slice(0, 10)}, in ${run.seconds} s.`);
  out();
  out(`${run.cases.length} raw HTTP/1.1 requests from test/hardening/corpus/*.json, each sent on its own connection exactly as written. Every case cites where its idea comes from (sources at the end) and says what opam-edge\'s limits table (docs/behaviour.md, "Limits and bad input"; where it is silent, RFC 9112/9110) expects per role: the port-80 role answers its redirect and forwards nothing; a proxy forwards exactly one normalised request to a recording origin, a raw TCP server with a strict parser of its own that counts every request it can read.`);
  out();
  out('Legend: `301`, `400` … the final answers in order; `closed` the server closed the connection; `waiting` no answer, connection left open (the message is incomplete); `non-HTTP` bytes that are not a status line (an HTTP/0.9 answer); `origin N` requests that reached the origin complete (`+N cut`: started, never completed). ✗ not as expected; ⚠ desync evidence (an ambiguous request forwarded, a hidden request answered or forwarded, bytes the origin could not read); **bold**: opam-edge and nginx differ.');
  out();
  out('Reading the nginx columns: nginx is the seed, not the subject, and nothing about it is asserted. It accepts bare LF as a line end and ignores field names it finds invalid (both allowed by RFC 9112), so some bytes are two requests to nginx where a strict parser sees one: a ⚠ there is a parsing discrepancy, which becomes a desync only with a different parser in front of or behind it. Its proxy speaks HTTP/1.0 upstream and buffers request bodies (the defaults the seed used), so body errors never reach its origin.');
  out();
  out('## Targets');
  out();
  out('| target | role | ran | version |');
  out('|---|---|---|---|');
  for (const key of KEYS) {
    const missing = run.unavailable.find((u) => u.key === key);
    out(`| ${TARGETS[key].name} | ${TARGETS[key].role === 'http' ? 'port 80 (redirect)' : 'proxy → recording origin'} | ${missing ? missing.reason : 'yes'} | ${run.versions[key] ?? ''} |`);
  }
  out();
  out('## Counts');
  out();
  const ran = KEYS.filter((k) => run.results[k]);
  out(`| | ${ran.map((k) => TARGETS[k].name).join(' | ')} |`);
  out(`|---|${ran.map(() => '---').join('|')}|`);
  const tallies = ran.map((k) => tally(run.results[k]!, TARGETS[k].role));
  const row = (label: string, pick: (t: Tally) => number | string) => out(`| ${label} | ${tallies.map(pick).join(' | ')} |`);
  row('cases tried', (t) => t.tried);
  row('served (redirected / forwarded)', (t) => t.served);
  row('rejected with a 4xx/5xx', (t) => t.rejected);
  row('closed without an answer', (t) => t.closed);
  row('left waiting (incomplete message)', (t) => t.waiting);
  row('as expected', (t) => t.expected);
  row('not as expected', (t) => t.unexpected);
  row('ambiguous requests forwarded', (t) => t.ambiguousForwarded);
  row('cases with desync evidence', (t) => t.safety);
  out();

  out('## Differences');
  out();
  for (const key of ['edge-http', 'edge-https'] as const) {
    const results = run.results[key];
    if (!results) continue;
    const off = results.filter((r) => !r.verdict.statusOk || r.verdict.details.length > 0 || r.verdict.safety.length > 0);
    out(`### ${TARGETS[key].name} against the expectation (${off.length} of ${results.length})`);
    out();
    if (off.length === 0) out('None.');
    else {
      out('| case | expected | got | why it matters / known |');
      out('|---|---|---|---|');
      for (const r of off) {
        const why = [...r.verdict.safety.map((s) => `⚠ ${s}`), ...r.verdict.details.filter((d) => !d.startsWith('expected ')), run.known[`${key}:${r.testCase.id}`] ?? ''].filter(Boolean).join('; ');
        out(`| \`${r.testCase.id}\` ${md(r.testCase.title)} | ${md(r.testCase.expectText[TARGETS[key].role])} | ${md(outcome(r.seen))} | ${md(why)} |`);
      }
    }
    out();
  }
  for (const key of ['nginx-http', 'nginx-proxy'] as const) {
    const results = run.results[key];
    if (!results) continue;
    const unsafe = results.filter((r) => r.verdict.safety.length > 0);
    const off = results.filter((r) => !r.verdict.statusOk || r.verdict.details.length > 0).length;
    out(`### ${TARGETS[key].name} (the seed): desync evidence in ${unsafe.length} cases; ${off} answers not as expected (see the tables)`);
    out();
    if (unsafe.length > 0) {
      out('| case | got | evidence |');
      out('|---|---|---|');
      for (const r of unsafe) out(`| \`${r.testCase.id}\` ${md(r.testCase.title)} | ${md(outcome(r.seen))} | ${md(r.verdict.safety.join('; '))} |`);
      out();
    }
  }
  const pairs: [TargetKey, TargetKey][] = [
    ['edge-http', 'nginx-http'],
    ['edge-https', 'nginx-proxy'],
  ];
  for (const [edge, nginx] of pairs) {
    if (!run.results[edge] || !run.results[nginx]) continue;
    const differing = run.cases.filter((c) => {
      const row = byCase.get(c.id)!;
      return row[edge] && row[nginx] && !sameOutcome(row[edge]!.seen, row[nginx]!.seen);
    });
    out(`### ${TARGETS[edge].name} against ${TARGETS[nginx].name} (${differing.length} of ${run.cases.length} differ)`);
    out();
    out(`| case | expected | ${TARGETS[edge].name} | ${TARGETS[nginx].name} |`);
    out('|---|---|---|---|');
    for (const c of differing) {
      const row = byCase.get(c.id)!;
      out(`| \`${c.id}\` ${md(c.title)} | ${md(c.expectText[TARGETS[edge].role])} | ${cell(row[edge])} | ${cell(row[nginx])} |`);
    }
    out();
  }

  out('## Every case');
  out();
  const groups = [...new Set(run.cases.map((c) => c.group))];
  for (const group of groups) {
    out(`### ${group}`);
    out();
    out('| case | ambiguous | expected :80 | opam-edge :80 | nginx :80 | expected proxy | opam-edge proxy | nginx proxy | sources |');
    out('|---|---|---|---|---|---|---|---|---|');
    for (const c of run.cases.filter((x) => x.group === group)) {
      const row = byCase.get(c.id) ?? {};
      out(
        `| \`${c.id}\` ${md(c.title)} | ${c.ambiguous ? 'yes' : ''} | ${md(c.expectText.http)} | ${cell(row['edge-http'], row['nginx-http'])} | ${cell(row['nginx-http'])} | ${md(c.expectText.proxy)} | ${cell(row['edge-https'], row['nginx-proxy'])} | ${cell(row['nginx-proxy'])} | ${c.source.join(', ')} |`,
      );
    }
    out();
  }

  out('## Sources');
  out();
  for (const [key, source] of run.sources) out(`- \`${key}\`: ${source.title}. ${source.url}`);
  out();
  const figures = readFigures();
  const diffs = (edge: TargetKey, nginx: TargetKey) =>
    run.results[edge] && run.results[nginx] ? String(run.cases.filter((c) => { const row = byCase.get(c.id)!; return row[edge] && row[nginx] && !sameOutcome(row[edge]!.seen, row[nginx]!.seen); }).length) : 'n/a';
  const pick = (key: TargetKey, f: (t: Tally) => number) => (run.results[key] ? String(f(tally(run.results[key]!, TARGETS[key].role))) : 'n/a');
  const rows: [string, string][] = [];
  for (const key of KEYS) {
    const nginxPair: TargetKey | null = key === 'edge-http' ? 'nginx-http' : key === 'edge-https' ? 'nginx-proxy' : null;
    rows.push([`${TARGETS[key].name}: cases tried / rejected / not as expected / desync evidence`, `${pick(key, (t) => t.tried)} / ${pick(key, (t) => t.rejected)} / ${pick(key, (t) => t.unexpected)} / ${pick(key, (t) => t.safety)}`]);
    if (nginxPair) rows.push([`${TARGETS[key].name}: differences from ${TARGETS[nginxPair].name}`, diffs(key, nginxPair)]);
  }
  rows.push(['ambiguous requests forwarded by opam-edge', String(Number(pick('edge-https', (t) => t.ambiguousForwarded)) || 0)]);
  figures.corpus = { title: 'Request-parsing corpus', at: new Date().toISOString(), by: 'npm run test:hardening (corpus.hardening.ts)', rows };
  writeReportFile(FIGURES_PATH, `${JSON.stringify(figures, null, 2)}\n`);
  const text = withSummary(lines.join('\n'), figures);
  writeReportFile(path, text);
  return text;
}
