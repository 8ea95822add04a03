import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from '../src/cli.ts';
import { CLI, startEdgeProcess, tempDir } from './helpers/edge-process.ts';
import { CHALLTESTSRV, startDnsServer } from './helpers/dns-server.ts';
import { requireTool } from './helpers/tools.ts';
import { makeCert } from './helpers/certs.ts';
import { freePort } from './helpers/ports.ts';

type Run = { code: number | null; stdout: string; stderr: string };

function runCli(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, OPAM_EDGE_CONFIG: '', ...env },
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
const good = `listen: {http: ["127.0.0.1:0"], https: []}\nsites:\n  - hosts: [opam.test]\n    upstream: http://127.0.0.1:9\n`;
const bad = `listen: {http: ["[::]:99999"]}\nlimits: {header_timeout: soon}\nbogus: 1\nsites:\n  - hosts: [a.test]\n    upstream: http://a\n  - hosts: [A.test]\n    upstream: http://b\n`;

test('argument parsing', () => {
  assert.deepEqual(parseArgs([]), { kind: 'run', config: null });
  assert.deepEqual(parseArgs(['--config', 'a.yaml']), { kind: 'run', config: 'a.yaml' });
  assert.deepEqual(parseArgs(['-c', 'a.yaml']), { kind: 'run', config: 'a.yaml' });
  assert.deepEqual(parseArgs(['--config=a.yaml']), { kind: 'run', config: 'a.yaml' });
  assert.deepEqual(parseArgs(['check', '--config', 'a.yaml']), { kind: 'check', config: 'a.yaml', strict: false });
  assert.deepEqual(parseArgs(['check']), { kind: 'check', config: null, strict: false });
  assert.deepEqual(parseArgs(['check', '--strict', '-c', 'a.yaml']), { kind: 'check', config: 'a.yaml', strict: true });
  assert.equal(parseArgs(['--strict']).kind, 'usage');
  assert.deepEqual(parseArgs(['status', '--config', 'a.yaml']), { kind: 'status', argv: ['--config', 'a.yaml'] });
  assert.deepEqual(parseArgs(['--version']), { kind: 'version' });
  assert.deepEqual(parseArgs(['--help']), { kind: 'help' });
  assert.equal(parseArgs(['--config']).kind, 'usage');
  assert.equal(parseArgs(['--config=']).kind, 'usage');
  assert.equal(parseArgs(['--bogus']).kind, 'usage');
  assert.equal(parseArgs(['check', 'extra']).kind, 'usage');
});

test('--version and --help exit 0', async () => {
  const version = await runCli(['--version']);
  assert.equal(version.code, 0);
  assert.equal(version.stdout, `opam-edge ${pkg.version}\n`);
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage:/);
  assert.match(help.stdout, /opam-edge check \[--strict\] \[--config FILE\]/);
  assert.match(help.stdout, /--strict: warnings are problems/);
});

test('bad usage exits 2 with the usage on stderr', async () => {
  for (const args of [['--bogus'], ['--config'], ['check', '--nope'], ['serve']]) {
    const result = await runCli(args);
    assert.equal(result.code, 2, args.join(' '));
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^opam-edge: .*\nUsage:/, args.join(' '));
  }
});

test('check: exit 0 "ok" for a valid config, without binding anything', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'good.yaml'), good);
  const result = await runCli(['check', '--config', join(dir, 'good.yaml')]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'ok\n');
  // The config path can also come from $OPAM_EDGE_CONFIG, then ./opam-edge.yaml.
  assert.equal((await runCli(['check'], { OPAM_EDGE_CONFIG: join(dir, 'good.yaml') })).stdout, 'ok\n');
  writeFileSync(join(dir, 'opam-edge.yaml'), good);
  assert.equal((await runCli(['check'], {}, dir)).stdout, 'ok\n');
});

test('check: exit 1 listing every problem as "path (line): message"', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bad.yaml'), bad);
  const result = await runCli(['check', '--config', join(dir, 'bad.yaml')]);
  assert.equal(result.code, 1);
  const lines = result.stdout.trimEnd().split('\n');
  assert.equal(lines.at(-1), `${join(dir, 'bad.yaml')}: 4 problems`);
  assert.deepEqual(lines.slice(0, -1).map((l) => l.split(':')[0]).sort(), [
    'bogus (line 3)',
    'limits.header_timeout (line 2)',
    'listen.http[0] (line 1)',
    'sites[1].hosts[0] (line 7)',
  ]);
  const missing = await runCli(['check', '--config', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /cannot read the config file: no such file/);
});

test('check: an upstream name that does not resolve from here is a warning (exit 0), an error with --strict', async (t) => {
  if (!requireTool(t, CHALLTESTSRV, 'pebble')) return;
  const dns = await startDnsServer();
  t.after(() => dns.stop());
  await dns.setA('opam.test', ['127.0.0.2']);
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'c.yaml');
  writeFileSync(
    path,
    `listen: {http: ["127.0.0.1:0"], https: []}\nresolver:\n  servers: ["${dns.server}"]\nsites:\n` +
      `  - hosts: [a.test]\n    upstream: http://opam.test:80\n  - hosts: [b.test]\n    upstream: http://opam_live:80\n`,
  );
  const result = await runCli(['check', '--config', path]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const lines = result.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, result.stdout);
  assert.match(lines[0]!, /^sites\[1\]\.upstream \(line 8\): warning: "opam_live" does not resolve through resolver\.servers/);
  assert.equal(lines[1], 'ok, 1 warning');
  const strict = await runCli(['check', '--strict', '--config', path]);
  assert.equal(strict.code, 1, strict.stdout);
  assert.match(strict.stdout, /^sites\[1\]\.upstream \(line 8\): "opam_live" does not resolve/);
  assert.match(strict.stdout, /: 1 problem \(--strict: warnings are problems\)\n$/);
});

test('check and start-up: a missing certificate file is "tls.certificates[0].cert (line N): cannot read ..."', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'c.yaml');
  writeFileSync(path, `listen: {http: ["127.0.0.1:0"], https: ["127.0.0.1:0"]}\ntls:\n  certificates:\n    - cert: /x/y.pem\n      key: /x/y.key\n${good.slice(good.indexOf('sites:'))}`);
  const result = await runCli(['check', '--config', path]);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, `tls.certificates[0].cert (line 4): cannot read /x/y.pem: no such file\n${path}: 1 problem\n`);
  // Start-up refuses it with the same line, before binding anything.
  const run = await runCli(['--config', path]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /is invalid:\n  tls\.certificates\[0\]\.cert \(line 4\): cannot read \/x\/y\.pem: no such file\n/);
  assert.doesNotMatch(run.stderr, /"event":"listening"/);
});

test('check passes every example config of deploy/ here, where opam_live does not resolve: exit 0, warnings listed', async () => {
  const examples = fileURLToPath(new URL('../deploy/examples/', import.meta.url));
  const files = readdirSync(examples).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 2, files.join(', '));
  for (const file of files) {
    const result = await runCli(['check', '--config', join(examples, file)]);
    assert.equal(result.code, 0, `${file}:\n${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /^sites\[0\]\.upstream \(line \d+\): warning: "opam_live" does not resolve/m, file);
    assert.match(result.stdout, /\nok, \d+ warnings?\n$/, file);
  }
});

test('check with no config anywhere is a usage error', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const result = await runCli(['check'], {}, dir);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /no config file/);
});

test('run with a config that does not validate exits 1 before binding any port', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bad.yaml'), bad);
  const result = await runCli(['--config', join(dir, 'bad.yaml')]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /the configuration .*bad\.yaml is invalid/);
  assert.match(result.stderr, /listen\.http\[0\] \(line 1\): port 99999 is out of range/);
  assert.match(result.stderr, /sites\[1\]\.hosts\[0\] \(line 7\): "a\.test" is already a host of sites\[0\]/);
  assert.doesNotMatch(result.stderr, /"event":"listening"/);
});

test('run exits 1 when a listener cannot be bound', async (t) => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'busy.yaml'), `listen: {http: ["127.0.0.1:0", "127.0.0.1:${port}"], https: []}\nsites:\n  - hosts: [a.test]\n    upstream: http://a\n`);
  const result = await runCli(['--config', join(dir, 'busy.yaml')]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`start-up failed: .*http 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
});

test('status: the table from a running edge, exit 0 when degraded; exit 1 when failing; exit 1 with one line on stderr when nothing answers', { timeout: 60_000 }, async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['opam.test'], dir });
  const admin = await freePort();
  const edge = await startEdgeProcess({
    listen: { http: [], https: ['127.0.0.1:0'] },
    admin: `127.0.0.1:${admin}`,
    access_log: 'off',
    tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }] },
    sites: [{ hosts: ['opam.test', 'www.opam.test'], upstream: 'http://127.0.0.1:9' }],
  }, { dir }); // ours, so that the config outlives the process
  t.after(() => edge.stop());
  await edge.waitForEvent((e) => e.event === 'started');
  const degraded = await runCli(['status', '--config', edge.configPath]);
  assert.equal(degraded.code, 0, degraded.stderr);
  assert.equal(degraded.stderr, '');
  const lines = degraded.stdout.split('\n');
  assert.equal(lines[0], `opam-edge ${pkg.version} at 127.0.0.1:${admin}: degraded`);
  assert.equal(lines[1], '  degraded  no valid certificate for www.opam.test (not managed by ACME)');
  assert.match(lines[2]!, /^pid \d+, up \d+m \d+s, workers 1 of 1 ready$/);
  assert.match(degraded.stdout, /\ncertificate +days left +next renewal +source +key\nopam\.test +(29\.9|30\.0) +- +file +ecdsa\n/);
  assert.match(degraded.stdout, /\nno valid certificate: www\.opam\.test\n/);
  assert.match(degraded.stdout, /\nsite +upstream +addresses\nopam\.test +http:\/\/127\.0\.0\.1:9 +127\.0\.0\.1:9\n/);
  // The config path can also come from $OPAM_EDGE_CONFIG.
  assert.equal((await runCli(['status'], { OPAM_EDGE_CONFIG: edge.configPath })).code, 0);

  // Failing (https and no certificate at all): the table, and exit 1.
  const failingAdmin = await freePort();
  const failing = await startEdgeProcess({
    listen: { http: [], https: ['127.0.0.1:0'] },
    admin: `127.0.0.1:${failingAdmin}`,
    access_log: 'off',
    sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }],
  });
  t.after(() => failing.stop());
  await failing.waitForEvent((e) => e.event === 'started');
  const sick = await runCli(['status', '--config', failing.configPath]);
  assert.equal(sick.code, 1);
  assert.match(sick.stdout, /: failing\n {2}failing {3}no certificate loaded \(no tls\.certificates, tls\.certbot or acme\)\n/);
  assert.match(sick.stdout, /\nno certificate loaded\n/);

  // Nothing answers: one line on stderr.
  await edge.stop();
  const gone = await runCli(['status', '--config', edge.configPath]);
  assert.equal(gone.code, 1);
  assert.equal(gone.stdout, '');
  assert.match(gone.stderr, new RegExp(`^opam-edge status: admin 127\\.0\\.0\\.1:${admin}/status: connect ECONNREFUSED [^\\n]*\\n$`));
});

test('status: usage errors exit 2; a config without admin, or no config, exits 1', async (t) => {
  for (const args of [['status', '--bogus'], ['status', '--config'], ['status', 'extra']]) {
    const result = await runCli(args);
    assert.equal(result.code, 2, args.join(' '));
    assert.match(result.stderr, /^opam-edge status: .*\nUsage: opam-edge status \[--config FILE\]\n$/);
  }
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'no-admin.yaml'), good);
  const noAdmin = await runCli(['status', '--config', join(dir, 'no-admin.yaml')]);
  assert.equal(noAdmin.code, 1);
  assert.match(noAdmin.stderr, /^opam-edge status: .*no-admin\.yaml sets no admin address/);
  const missing = await runCli(['status', '--config', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^opam-edge status: cannot read .*nope\.yaml: ENOENT/);
});
