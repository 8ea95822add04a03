// External tools a test drives (openssl, curl, pebble, ip...): a missing one skips the test
// loudly on a developer machine and fails it in CI, where .ci/run installs them.

import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

const found = new Map<string, boolean>();

export function hasTool(binary: string): boolean {
  if (!found.has(binary)) found.set(binary, spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0);
  return found.get(binary)!;
}

/** true when `binary` is on PATH; otherwise skips the test (or, with CI set, fails it) naming the Debian package. */
export function requireTool(t: TestContext, binary: string, pkg: string): boolean {
  if (hasTool(binary)) return true;
  const message = `${binary} is not installed (Debian package ${pkg})`;
  if (process.env.CI) throw new Error(`${message}: required under CI`);
  process.stderr.write(`\n*** SKIPPED: ${t.name}: ${message} ***\n`);
  t.skip(message);
  return false;
}
