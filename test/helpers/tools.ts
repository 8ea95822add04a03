// External tools a test drives (openssl, curl, pebble...): missing ones skip the test
// loudly on a developer machine and fail it in CI, where .ci/run installs them.

import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

const found = new Map<string, boolean>();

export function hasTool(name: string): boolean {
  if (!found.has(name)) found.set(name, spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0);
  return found.get(name)!;
}

/** true when the tool is there; otherwise skips (or, with CI set, fails) the test. */
export function requireTool(t: TestContext, name: string): boolean {
  if (hasTool(name)) return true;
  if (process.env.CI) throw new Error(`${name} is required in CI but was not found`);
  process.stderr.write(`SKIPPED: ${t.name}: ${name} is not installed\n`);
  t.skip(`${name} is not installed`);
  return false;
}
