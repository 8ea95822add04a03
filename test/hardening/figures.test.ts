// The hardening report and its figures are rewritten by every run: they go to reports/
// (git-ignored), so a run leaves the tree clean; dated copies under docs/ are committed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FIGURES_PATH, REPORT_PATH } from './lib/figures.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('hardening runs write REPORT.md and figures.json under reports/hardening/, which git ignores', (t) => {
  assert.equal(REPORT_PATH, `${ROOT}reports/hardening/REPORT.md`);
  assert.equal(FIGURES_PATH, `${ROOT}reports/hardening/figures.json`);
  const git = spawnSync('git', ['check-ignore', '--no-index', REPORT_PATH, FIGURES_PATH], { cwd: ROOT, encoding: 'utf8' });
  if (git.error) return t.skip(`git is not available: ${git.error.message}`);
  if (/not a git repository/.test(git.stderr)) return t.skip('not a git checkout');
  assert.equal(git.status, 0, `reports/hardening/ is not ignored by .gitignore: ${git.stderr}`);
  assert.deepEqual(git.stdout.trim().split('\n'), [REPORT_PATH, FIGURES_PATH]);
});
