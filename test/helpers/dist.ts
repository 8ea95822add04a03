// Tests of what ships run the JavaScript in dist/ (npm run build; npm ci runs it through
// `prepare`). Without it they skip loudly on a developer machine and fail in CI.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DIST_CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/opam-edge.js', import.meta.url));

/** true when dist/ is built; otherwise skips (or, with CI set, fails) the test. */
export function requireDist(t: TestContext): boolean {
  if (existsSync(DIST_CLI)) return true;
  if (process.env.CI) throw new Error('dist/ is missing in CI: npm ci (prepare) or npm run build should have built it');
  process.stderr.write(`SKIPPED: ${t.name}: dist/ is not built (npm run build)\n`);
  t.skip('dist/ is not built');
  return false;
}
