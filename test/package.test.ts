// What `npm pack` (and so `npm publish` and `npm i -g ./opam-edge-*.tgz`) ships: the
// compiled dist/, the bin, package.json, README and LICENSE; no sources, tests, bench,
// deploy tooling or development private keys.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ROOT } from './helpers/dist.ts';

test('npm pack ships dist/, bin/, package.json, README.md and LICENSE only', () => {
  // `prepare` runs first (npm run build), so this is the file list of a fresh pack.
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--silent'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const [report] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { files: { path: string }[] }[];
  const files = report!.files.map((f) => f.path).sort();
  const outside = files.filter((f) => !/^(dist|bin)\//.test(f) && !['package.json', 'README.md', 'LICENSE'].includes(f));
  assert.deepEqual(outside, [], 'files outside dist/, bin/, package.json, README.md, LICENSE');
  for (const needed of ['LICENSE', 'README.md', 'package.json', 'bin/opam-edge.js', 'dist/cli.js', 'dist/healthcheck.js', 'dist/main.js']) {
    assert.ok(files.includes(needed), `${needed} is in the package`);
  }
  assert.deepEqual(files.filter((f) => /\.ts$|\.pem$|\.key$|(^|\/)(test|bench|deploy|certs-dev)\//.test(f)), [], 'no sources, tests, keys or tooling');
});
