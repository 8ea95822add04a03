import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { configFlag, configFromArgv, configPath, healthcheck, probeFor, runningConfig, DEFAULT_CONFIG } from '../src/healthcheck.ts';
import { startEdgeProcess, tempDir } from './helpers/edge-process.ts';
import { freePort } from './helpers/ports.ts';

const SCRIPT = fileURLToPath(new URL('../src/healthcheck.ts', import.meta.url));
const site = { hosts: ['check.test'], upstream: 'http://127.0.0.1:9' };

/** Runs the script as Docker's HEALTHCHECK does: exit code and stdout. */
function runScript(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, ...args], { timeout: 15_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
}

test('what is probed: admin first, else the first fixed http listener, else https', () => {
  assert.deepEqual(probeFor({ admin: '127.0.0.1:9145' }), { kind: 'admin', host: '127.0.0.1', port: 9145, address: '127.0.0.1:9145' });
  assert.deepEqual(probeFor({ admin: '[::]:9145' }), { kind: 'admin', host: '127.0.0.1', port: 9145, address: '127.0.0.1:9145' });
  assert.deepEqual(probeFor(null), { kind: 'tcp', role: 'http', host: '127.0.0.1', port: 80, address: '127.0.0.1:80' });
  assert.deepEqual(probeFor({ admin: '127.0.0.1:0', listen: { http: ['[::1]:0', '[::1]:8080'] } }), {
    kind: 'tcp',
    role: 'http',
    host: '::1',
    port: 8080,
    address: '[::1]:8080',
  });
  assert.deepEqual(probeFor({ listen: { http: [] } }), { kind: 'tcp', role: 'https', host: '127.0.0.1', port: 443, address: '127.0.0.1:443' });
  assert.equal(probeFor({ listen: { http: [], https: [] } }).kind, 'none');
  // Read leniently: a bad value is skipped, not fatal.
  assert.equal((probeFor({ admin: 'nonsense', listen: { http: [{}, '0.0.0.0:8080'] } }) as { port: number }).port, 8080);
});

test('the config path comes from the running opam-edge command line', () => {
  assert.equal(configFromArgv(['node', '/app/src/cli.ts', '--config', '/etc/opam-edge/config.yaml'], '/'), '/etc/opam-edge/config.yaml');
  assert.equal(configFromArgv(['node', 'src/cli.ts', '-c', 'edge.yaml'], '/srv'), '/srv/edge.yaml');
  // The image's entry point: the compiled cli.
  assert.equal(configFromArgv(['node', '--max-semi-space-size=2', '/app/dist/cli.js', '--config', '/etc/opam-edge/config.yaml'], '/'), '/etc/opam-edge/config.yaml');
  assert.equal(configFromArgv(['/usr/bin/opam-edge', '--config=x.yaml'], '/etc'), '/etc/x.yaml');
  assert.equal(configFromArgv(['node', '/app/src/cli.ts', 'check', '--config', 'x.yaml'], '/'), null);
  assert.equal(configFromArgv(['node', '/app/src/cli.ts'], '/'), null);
  assert.equal(configFromArgv(['bash', '-c', 'cli.ts --config x'], '/'), null);
});

test('the running process is found in /proc, PID 1 (the entrypoint) first', async (t) => {
  const proc = tempDir('opam-edge-proc-');
  t.after(() => rmSync(proc, { recursive: true, force: true }));
  const fake = (pid: number, argv: string[], cwd?: string) => {
    mkdirSync(join(proc, String(pid)));
    writeFileSync(join(proc, String(pid), 'cmdline'), argv.join('\0') + '\0');
    if (cwd) symlinkSync(cwd, join(proc, String(pid), 'cwd'));
  };
  mkdirSync(join(proc, 'self'));
  fake(3, ['bash']);
  fake(12, ['node', 'src/cli.ts', '-c', 'conf.yaml'], '/srv/edge');
  assert.equal(await runningConfig(proc), '/srv/edge/conf.yaml');
  fake(1, ['tini', '--', 'node', '/app/src/cli.ts', '--config', '/etc/opam-edge/other.yaml'], '/app');
  assert.equal(await runningConfig(proc), '/etc/opam-edge/other.yaml');
  // An explicit --config and $OPAM_EDGE_CONFIG come before /proc; the image default last.
  assert.equal(await configPath(configFlag(['--config', '/x.yaml']), { OPAM_EDGE_CONFIG: '/y.yaml' }, proc), '/x.yaml');
  assert.equal(await configPath(null, { OPAM_EDGE_CONFIG: '/y.yaml' }, proc), '/y.yaml');
  assert.equal(await configPath(null, {}, proc), '/etc/opam-edge/other.yaml');
  assert.equal(await configPath(null, {}, join(proc, 'missing'), join(proc, 'missing')), DEFAULT_CONFIG);
});

test('without admin: healthy while the http listener accepts, unhealthy once it is gone', async (t) => {
  const port = await freePort();
  const dir = tempDir(); // ours, so that the config outlives the process
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const edge = await startEdgeProcess({ listen: { http: [`127.0.0.1:${port}`], https: [] }, access_log: 'off', sites: [site] }, { dir });
  t.after(() => edge.stop());

  const up = await runScript(['--config', edge.configPath]);
  assert.equal(up.code, 0, up.stdout);
  assert.equal(up.stdout, `healthy: http listener 127.0.0.1:${port} accepts connections\n`);

  await edge.stop();
  const down = await runScript(['--config', edge.configPath]);
  assert.equal(down.code, 1, down.stdout);
  assert.match(down.stdout, new RegExp(`^unhealthy: http listener 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
});

test('with admin: /healthz decides, and its reason is printed', async (t) => {
  let status = 200;
  let body = 'ok\n';
  const admin: Server = createServer((req, res) => {
    res.statusCode = req.url === '/healthz' ? status : 404;
    res.end(req.url === '/healthz' ? body : 'not found');
  });
  await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => admin.close(() => r())));
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  const address = `127.0.0.1:${(admin.address() as AddressInfo).port}`;
  writeFileSync(file, stringify({ admin: address, sites: [site] }));

  assert.deepEqual(await healthcheck(['--config', file], {}), { healthy: true, message: `admin ${address}/healthz answered 200: ok` });
  // Degraded serves: healthy for Docker (a restart would not fix it), the reason still shown.
  body = 'degraded: no valid certificate for www.opam.ocaml.org (not managed by ACME)\n';
  assert.deepEqual(await healthcheck(['--config', file], {}), { healthy: true, message: `admin ${address}/healthz answered 200: ${body.trim()}` });
  // A config the cheap reader leaves alone is read by the YAML library.
  const quoted = join(dir, 'quoted.yaml');
  writeFileSync(quoted, `"admin": &a "${address}"\n`);
  assert.equal((await healthcheck(['--config', quoted], {})).healthy, true);
  status = 503;
  body = 'failing: no certificate loaded (first ACME orders in progress)\n';
  const sick = await runScript(['--config', file]);
  assert.equal(sick.code, 1);
  assert.equal(sick.stdout, `unhealthy: admin ${address}/healthz answered 503: failing: no certificate loaded (first ACME orders in progress)\n`);
});

test('an unreadable config probes the defaults and says so', async () => {
  const result = await healthcheck(['--config', '/nonexistent/opam-edge.yaml'], {});
  assert.match(result.message, /^http listener 127\.0\.0\.1:80.* \(config \/nonexistent\/opam-edge\.yaml unreadable: ENOENT.*; probed the defaults\)$/);
});
