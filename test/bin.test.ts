// bin/opam-edge.js: the installed command runs dist/, and a Node too old for the code gets
// one line saying what it needs, never a stack trace.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, requireDist } from './helpers/dist.ts';

const pkg = (await import('../package.json', { with: { type: 'json' } })).default as { version: string };

function run(node: string, nodeArgs: string[], args: string[]) {
  return spawnSync(node, [...nodeArgs, BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
}

function assertOneLineRefusal(r: ReturnType<typeof run>, version: string): void {
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line, not a stack trace:\n${r.stderr}`);
  assert.match(lines[0]!, new RegExp(`^opam-edge: needs Node\\.js 24 or later, this is Node\\.js v${version.replaceAll('.', '\\.')} .*https://nodejs\\.org`));
}

test('bin: runs the compiled dist/ (--version)', (t) => {
  if (!requireDist(t)) return;
  const r = run(process.execPath, [], ['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `opam-edge ${pkg.version}\n`);
});

test('bin: a Node older than 24 gets one line naming the version needed and where to get it, exit 1', () => {
  // The guard's logic, on this Node made to report 22.1.0.
  const fake = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"22.1.0"})';
  assertOneLineRefusal(run(process.execPath, ['--import', fake], ['--version']), '22.1.0');
});

test('bin: parses and refuses on a real old Node (/usr/bin/node)', (t) => {
  // The whole file must parse on old Node; this machine's system Node shows it does.
  const old = '/usr/bin/node';
  const version = existsSync(old) ? spawnSync(old, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim() : '';
  if (!version || Number(version.split('.')[0]) >= 24) {
    process.stderr.write(`SKIPPED: ${t.name}: no Node older than 24 at ${old}\n`);
    t.skip('no old Node at /usr/bin/node');
    return;
  }
  assertOneLineRefusal(run(old, [], ['check']), version);
});

test('bin: installed without a config (no certs-dev/ ships, so no demo): one line saying how to give one, exit 2', (t) => {
  if (!requireDist(t)) return;
  // An installed package's layout: bin/, dist/ and package.json, no certs-dev/.
  const dir = mkdtempSync(join(tmpdir(), 'opam-edge-installed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const env = { ...process.env };
  delete env.OPAM_EDGE_CONFIG;
  const r = spawnSync(process.execPath, [join(dir, 'bin', 'opam-edge.js')], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.deepEqual(lines, ['opam-edge: no config: pass --config FILE, set $OPAM_EDGE_CONFIG or create ./opam-edge.yaml (the local demo runs only from a source checkout)']);
});
