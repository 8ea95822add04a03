// `opam-edge check` on the acme section: the profile must be offered by the directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { validateConfig } from '../src/config.ts';
import type { Config } from '../src/config.ts';
import { checkAcme } from '../src/check.ts';
import { CLI, tempDir } from './helpers/edge-process.ts';
import { freePort } from './helpers/pebble.ts';

function config(acme: Record<string, unknown>): Config {
  const result = validateConfig({ acme, sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }] }, 'check-test');
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

test('acme.profile is checked against the directory; an unreachable directory is a problem', async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ newNonce: 'x', newOrder: 'y', meta: { profiles: { classic: 'default', shortlived: 'six days' } } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const directory = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dir`;

  assert.deepEqual(await checkAcme(config({ directory, profile: 'shortlived' })), []);
  assert.deepEqual(await checkAcme(config({ directory, profile: 'tlsserver' })), [
    `acme.profile: "tlsserver" is not offered by ${directory} (offered: classic, shortlived)`,
  ]);
  const closed = `http://127.0.0.1:${await freePort()}/dir`;
  const [problem] = await checkAcme(config({ directory: closed, profile: 'shortlived' }));
  assert.match(problem!, new RegExp(`^acme\\.directory: cannot fetch ${closed.replace(/[.]/g, '\\.')} to check acme\\.profile \\(GET .*ECONNREFUSED\\)$`));
  // Without a profile there is nothing to ask the directory.
  assert.deepEqual(await checkAcme(config({ directory: closed })), []);
  assert.deepEqual(await checkAcme(config({ directory, ca_bundle: '/nonexistent/ca.pem' })), ['acme.ca_bundle: cannot read /nonexistent/ca.pem (ENOENT)']);
});

test('`opam-edge check` lists the acme problem and exits 1', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ newNonce: 'x', meta: {} }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const directory = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dir`;
  const path = join(dir, 'c.yaml');
  writeFileSync(path, `acme:\n  directory: "${directory}"\n  profile: shortlived\nsites:\n  - hosts: ["opam.test"]\n    upstream: "http://127.0.0.1:9"\n`);
  // Asynchronously: a blocking spawn would stop this process's directory server answering.
  const child = spawn(process.execPath, [CLI, 'check', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 1);
  assert.match(out, new RegExp(`acme\\.profile: "shortlived" is not offered by .* \\(offered: none\\)`));
});
