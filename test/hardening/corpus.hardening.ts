// `npm run test:hardening`: the request-parsing corpus against opam-edge (asserted) and
// Debian's nginx (the baseline), then reports/hardening/REPORT.md. Named *.hardening.ts so that
// `npm test` (test/**/*.test.ts) does not run it too.
//
// Every case of every opam-edge target is one subtest. Desync evidence always fails. A
// departure from the expected status that is listed in known-deviations.json (each with
// its reason) is reported as a node:test todo instead of a failure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadCorpus, loadSources } from './corpus.ts';
import { findNginx, startTargets, TARGETS } from './targets.ts';
import type { TargetKey } from './targets.ts';
import { runTarget } from './runner.ts';
import type { CaseResult } from './runner.ts';
import { outcome, writeReport } from './report.ts';

const KNOWN_PATH = fileURLToPath(new URL('./known-deviations.json', import.meta.url));
const known = (JSON.parse(readFileSync(KNOWN_PATH, 'utf8')) as { deviations: Record<string, string> }).deviations;

test('the corpus is well formed and large enough', () => {
  const cases = loadCorpus();
  assert.ok(cases.length >= 60, `only ${cases.length} cases`);
  const ids = new Set(cases.map((c) => c.id));
  for (const key of Object.keys(known)) {
    const [target, id] = key.split(':');
    assert.ok(target! in TARGETS, `known-deviations.json: unknown target in "${key}"`);
    assert.ok(ids.has(id!), `known-deviations.json: unknown case in "${key}"`);
  }
});

test('request-parsing corpus against opam-edge and nginx', { timeout: 600_000 }, async (t) => {
  const cases = loadCorpus();
  const startedAt = Date.now();
  if (!findNginx()) {
    // nginx is the baseline, not the subject: without it the opam-edge targets still run.
    if (process.env.CI) assert.fail('nginx is not installed: .ci/run installs nginx-light');
    t.diagnostic('SKIPPING the nginx baseline: nginx is not installed (apt-get install nginx-light)');
  }
  const running = await startTargets();
  t.after(() => running.stop());
  for (const u of running.unavailable) t.diagnostic(`${TARGETS[u.key].name}: ${u.reason}`);

  // Targets are independent servers: run them side by side, each case after case.
  const runs = await Promise.all(running.targets.map(async (target) => [target, await runTarget(target, cases)] as const));
  const results: Partial<Record<TargetKey, CaseResult[]>> = {};
  const versions: Partial<Record<TargetKey, string>> = {};
  for (const [target, rs] of runs) {
    results[target.key] = rs;
    versions[target.key] = target.version;
  }
  writeReport({
    cases,
    results,
    versions,
    unavailable: running.unavailable,
    known,
    sources: loadSources(),
    seconds: Math.round((Date.now() - startedAt) / 1000),
  });

  for (const [target, rs] of runs) {
    if (!TARGETS[target.key].asserted) continue;
    for (const { testCase, seen, verdict } of rs) {
      const knownWhy = known[`${target.key}:${testCase.id}`];
      const safe = verdict.safety.length === 0;
      await t.test(`${TARGETS[target.key].name} › ${testCase.id}`, { todo: safe && knownWhy ? knownWhy : undefined }, () => {
        assert.deepEqual(verdict.safety, [], `desync evidence for ${testCase.id}: ${verdict.safety.join('; ')}`);
        assert.ok(
          verdict.statusOk && verdict.details.length === 0,
          `${testCase.id}: got ${outcome(seen)}; ${verdict.details.join('; ')}`,
        );
      });
      if (knownWhy && verdict.statusOk && verdict.details.length === 0) {
        t.diagnostic(`known-deviations.json lists ${target.key}:${testCase.id}, but it now behaves as expected: remove the entry`);
      }
    }
  }
});
