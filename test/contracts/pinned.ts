// Libraries whose internals the code uses are pinned to one exact version in package.json,
// and that version is the one installed: a range would let `npm install` bring a release
// where the internal moved, and the contract tests would then test a version never shipped.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { dependencies: Record<string, string> };

export function assertPinned(name: string, why: string): void {
  const wanted = pkg.dependencies[name];
  assert.match(wanted ?? '', /^\d+\.\d+\.\d+$/, `${name} must be pinned to an exact version in package.json (${why}), not "${wanted}"`);
  const installed = (createRequire(root)(`${name}/package.json`) as { version: string }).version;
  assert.equal(installed, wanted, `${name} ${installed} is installed, package.json pins ${wanted}: run npm ci`);
}
