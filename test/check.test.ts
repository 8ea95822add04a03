// checkConfig: problems and warnings about a config's files, ACME section and upstream
// names, each with its key path and the line it was written on.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, validateConfig } from '../src/config.ts';
import type { Config } from '../src/config.ts';
import { checkConfig } from '../src/check.ts';
import type { Problem } from '../src/check.ts';
import { makeCert } from './helpers/certs.ts';
import { tempDir } from './helpers/edge-process.ts';
import { certbotTree } from './helpers/certbot-tree.ts';
import { freePort } from './helpers/ports.ts';
import { CHALLTESTSRV, startDnsServer } from './helpers/dns-server.ts';
import { requireTool } from './helpers/tools.ts';

const SITE = 'sites:\n  - hosts: ["e.test"]\n    upstream: "http://127.0.0.1:9"\n';

function parse(text: string): Config {
  const result = parseConfig(text, 'check-test.yaml');
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

function dir(t: TestContext): string {
  const d = tempDir('opam-edge-check-');
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const at = (list: Problem[]) => list.map((p) => `${p.path}@${p.line ?? '-'}`);

test('a missing certificate file is a problem naming tls.certificates[0].cert and its line', async (t) => {
  const d = dir(t);
  const key = (await makeCert({ names: ['e.test'], dir: d, stem: 'e' })).keyPath;
  const missing = join(d, 'x', 'y.pem');
  const config = parse(`listen:\n  http: ["127.0.0.1:0"]\n  https: ["127.0.0.1:0"]\ntls:\n  certificates:\n    - key: "${key}"\n      cert: "${missing}"\n${SITE}`);
  const { problems, warnings } = await checkConfig(config, { resolve: false });
  assert.deepEqual(problems, [{ path: 'tls.certificates[0].cert', line: 7, message: `cannot read ${missing}: no such file` }]);
  assert.deepEqual(warnings, []);
});

// Tests run as root, which reads a chmod 000 file all the same: "unreadable" is a key path
// that is a directory, and a key file that holds no PEM key.
test('an unreadable key (a directory, or not PEM) is a problem on tls.certificates[i].key with its line', async (t) => {
  const d = dir(t);
  const one = await makeCert({ names: ['e.test'], dir: d, stem: 'one' });
  const two = await makeCert({ names: ['f.test'], dir: d, stem: 'two' });
  const other = await makeCert({ names: ['g.test'], dir: d, stem: 'other' });
  const keyDir = join(d, 'keydir');
  mkdirSync(keyDir);
  const garbage = join(d, 'garbage.pem');
  writeFileSync(garbage, 'not a key\n');
  const config = parse(
    `tls:\n  certificates:\n` +
      `    - cert: "${one.certPath}"\n      key: "${keyDir}"\n` +
      `    - cert: "${two.certPath}"\n      key: "${garbage}"\n` +
      `    - cert: "${other.certPath}"\n      key: "${one.keyPath}"\n` +
      SITE,
  );
  const { problems } = await checkConfig(config, { resolve: false });
  assert.deepEqual(at(problems), ['tls.certificates[0].key@4', 'tls.certificates[1].key@6', 'tls.certificates[2].key@8']);
  assert.equal(problems[0]!.message, `cannot read ${keyDir}: it is a directory, not a file`);
  assert.match(problems[1]!.message, new RegExp(`^${garbage}: not a readable PEM private key`));
  assert.equal(problems[2]!.message, `${one.keyPath}: does not match tls.certificates[2].cert`);
});

test('a certificate that expires in under 7 days is a warning; a valid pair is nothing', async (t) => {
  const d = dir(t);
  const soon = await makeCert({ names: ['e.test'], dir: d, stem: 'soon', notAfter: new Date(Date.now() + 3 * 86_400_000) });
  const fine = await makeCert({ names: ['f.test'], dir: d, stem: 'fine' });
  const config = parse(
    `tls:\n  certificates:\n    - {cert: "${fine.certPath}", key: "${fine.keyPath}"}\n    - {cert: "${soon.certPath}", key: "${soon.keyPath}"}\n${SITE}`,
  );
  const { problems, warnings } = await checkConfig(config, { resolve: false });
  assert.deepEqual(problems, []);
  assert.deepEqual(at(warnings), ['tls.certificates[1].cert@4']);
  assert.match(warnings[0]!.message, /expires in [23]\.\d days \(/);
});

test('tls.certbot not there yet: a warning with acme set, a problem when nothing else gives a certificate', async (t) => {
  const d = dir(t);
  const certbot = join(d, 'letsencrypt');
  const withAcme = await checkConfig(parse(`tls:\n  certbot: "${certbot}"\nacme:\n  storage: "${join(d, 'acme')}"\n${SITE}`), { resolve: false });
  assert.deepEqual(withAcme.problems, []);
  assert.deepEqual(withAcme.warnings, [{ path: 'tls.certbot', line: 2, message: `${certbot}/live does not exist yet (certificates come from acme until it does)` }]);
  const alone = await checkConfig(parse(`tls:\n  certbot: "${certbot}"\n${SITE}`), { resolve: false });
  assert.deepEqual(at(alone.problems), ['tls.certbot@2']);
  assert.match(alone.problems[0]!.message, /does not exist, and neither acme nor tls\.certificates provides a certificate/);
  // A file where the directory should be is a problem either way.
  writeFileSync(certbot, 'x');
  const file = await checkConfig(parse(`tls:\n  certbot: "${certbot}"\nacme: {}\n${SITE}`), { resolve: false });
  assert.deepEqual(file.problems, [{ path: 'tls.certbot', line: 2, message: `${certbot} is not a directory` }]);
});

test('tls.certbot lineages that start-up would skip, or that expire within 7 days, are warnings on tls.certbot', async (t) => {
  const d = dir(t);
  const tree = certbotTree(join(d, 'letsencrypt'));
  const fine = await makeCert({ names: ['e.test'], dir: d, stem: 'fine' });
  const soon = await makeCert({ names: ['f.test'], dir: d, stem: 'soon', notAfter: new Date(Date.now() + 86_400_000) });
  const other = await makeCert({ names: ['g.test'], dir: d, stem: 'other' });
  tree.issue('e.test', fine);
  tree.issue('f.test', soon);
  tree.issue('g.test', other, { key: fine.key });
  const { problems, warnings } = await checkConfig(parse(`tls:\n  certbot: "${tree.root}"\n${SITE}`), { resolve: false });
  assert.deepEqual(problems, []);
  assert.deepEqual(at(warnings), ['tls.certbot@2', 'tls.certbot@2']);
  assert.match(warnings[0]!.message, /live\/f\.test\/fullchain\.pem expires in [01]\.\d days/);
  assert.match(warnings[1]!.message, /^lineage g\.test is skipped: .*live\/g\.test\/privkey\.pem: does not match .*live\/g\.test\/fullchain\.pem$/);
});

test('acme.storage and challenges.webroot: a file is a problem; a missing webroot is a warning', async (t) => {
  const d = dir(t);
  const file = join(d, 'file');
  writeFileSync(file, 'x');
  const missing = join(d, 'www');
  const config = parse(`challenges:\n  webroot: "${missing}"\nacme:\n  storage: "${file}"\n${SITE}`);
  const result = await checkConfig(config, { resolve: false });
  assert.deepEqual(result.problems, [{ path: 'acme.storage', line: 4, message: `${file} is not a directory` }]);
  assert.deepEqual(result.warnings, [{ path: 'challenges.webroot', line: 2, message: `${missing} does not exist: no challenge file can be served from it` }]);
  const webrootFile = await checkConfig(parse(`challenges:\n  webroot: "${file}"\n${SITE}`), { resolve: false });
  assert.deepEqual(webrootFile.problems, [{ path: 'challenges.webroot', line: 2, message: `${file} is not a directory` }]);
  // A storage directory that does not exist yet is created at start: nothing to say.
  assert.deepEqual(await checkConfig(parse(`acme:\n  storage: "${join(d, 'new')}"\n${SITE}`), { resolve: false }), { problems: [], warnings: [] });
});

test('upstream names: one that does not resolve (NXDOMAIN) is a warning, only when asked to resolve', async (t) => {
  if (!requireTool(t, CHALLTESTSRV, 'pebble')) return;
  const dns = await startDnsServer();
  t.after(() => dns.stop());
  await dns.setA('opam.test', ['127.0.0.2']);
  const config = parse(
    `resolver:\n  servers: ["${dns.server}"]\nlisten: {https: []}\nsites:\n` +
      `  - hosts: [a.test]\n    upstream: "http://opam.test:80"\n` +
      `  - hosts: [b.test]\n    upstream: "http://missing.test:80"\n` +
      `  - hosts: [c.test]\n    upstream: "http://missing.test:80"\n` +
      `  - hosts: [d.test]\n    upstream: "http://192.0.2.1:80"\n`,
  );
  const { problems, warnings } = await checkConfig(config, { resolve: true });
  assert.deepEqual(problems, []);
  // One warning per name, at the first site using it.
  assert.deepEqual(at(warnings), ['sites[1].upstream@8']);
  assert.match(warnings[0]!.message, /^"missing\.test" does not resolve through resolver\.servers .*\(also the upstream of sites\[2\]\)$/);
  assert.deepEqual(await checkConfig(config, { resolve: false }), { problems: [], warnings: [] });
});

function acmeConfig(acme: Record<string, unknown>): Config {
  const result = validateConfig({ acme, sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }] }, 'check-test');
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

test('acme.profile is checked against the directory; a directory out of reach is a warning', async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ newNonce: 'x', newOrder: 'y', meta: { profiles: { classic: 'default', shortlived: 'six days' } } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const directory = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dir`;
  const storage = join(dir(t), 'acme');
  const check = (acme: Record<string, unknown>) => checkConfig(acmeConfig({ storage, ...acme }), { resolve: true });

  assert.deepEqual(await check({ directory, profile: 'shortlived' }), { problems: [], warnings: [] });
  assert.deepEqual((await check({ directory, profile: 'tlsserver' })).problems, [
    { path: 'acme.profile', message: `"tlsserver" is not offered by ${directory} (offered: classic, shortlived)` },
  ]);
  const closed = `http://127.0.0.1:${await freePort()}/dir`;
  const unreachable = await check({ directory: closed, profile: 'shortlived' });
  assert.deepEqual(unreachable.problems, []);
  assert.match(unreachable.warnings[0]!.message, /^cannot fetch .* from here to check acme\.profile \(GET .*ECONNREFUSED\)$/);
  // Start-up and reload do not ask the network.
  assert.deepEqual(await checkConfig(acmeConfig({ storage, directory: closed, profile: 'x' }), { resolve: false }), { problems: [], warnings: [] });
  assert.deepEqual((await check({ directory, ca_bundle: '/nonexistent/ca.pem' })).problems, [
    { path: 'acme.ca_bundle', message: 'cannot read /nonexistent/ca.pem: no such file' },
  ]);
});
