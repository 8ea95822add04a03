// The https side through the real CLI process: a start-up refused for a key that does not
// match (exit 1, the key's path named, nothing bound; `check` says the same), and a
// certificate swapped by SIGHUP while requests run.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Agent, request } from 'node:https';
import { CLI, startEdgeProcess, tempDir } from '../helpers/edge-process.ts';
import { makeCert } from '../helpers/certs.ts';
import { exchange, handshake, serialFor } from '../helpers/tls-client.ts';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const site = [{ hosts: ['e2e.test'], upstream: 'http://127.0.0.1:1' }];

test('start-up with a key that does not match its certificate: exit 1, the key path named, no port bound', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: ['e2e.test'], dir, stem: 'cert' });
  const other = await makeCert({ names: ['other.test'], dir, stem: 'other' });
  const configPath = join(dir, 'config.yaml');
  writeFileSync(
    configPath,
    stringify({
      listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] },
      tls: { certificates: [{ cert: cert.certPath, key: other.keyPath }] },
      sites: site,
    }),
  );
  const started = await run(['--config', configPath]);
  assert.equal(started.code, 1);
  assert.match(started.stderr, /tls\.certificates\[0\]\.key \(line \d+\): .*: does not match tls\.certificates\[0\]\.cert/);
  assert.ok(started.stderr.includes(other.keyPath));
  assert.doesNotMatch(started.stderr, /"event":"listening"/);
  const checked = await run(['check', '--config', configPath]);
  assert.equal(checked.code, 1);
  assert.match(checked.stdout, /^tls\.certificates\[0\]\.key \(line \d+\): .*: does not match tls\.certificates\[0\]\.cert$/m);
  assert.ok(checked.stdout.includes(other.keyPath), checked.stdout);
});

test('SIGHUP swaps the certificate under load: no failed request, new serial, old connection and sessions live on', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const v1 = await makeCert({ names: ['e2e.test'], dir, stem: 'live' });
  const v2 = await makeCert({ names: ['e2e.test'], dir, stem: 'next' });
  const edge = await startEdgeProcess(
    {
      listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] },
      tls: { certificates: [{ cert: v1.certPath, key: v1.keyPath }] },
      access_log: 'off',
      sites: site,
    },
    { dir },
  );
  t.after(() => edge.stop());
  const port = edge.ports.https![0]!;
  assert.equal(await serialFor(port, 'e2e.test'), v1.serial);
  const old = await handshake(port, { servername: 'e2e.test', ALPNProtocols: ['http/1.1'] });
  const sessions: Record<string, Buffer> = {};
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const h = await handshake(port, { servername: 'e2e.test', maxVersion: version });
    sessions[version] = await h.session();
    h.socket.destroy();
  }

  // Any complete HTTP answer counts (this branch answers 502 until the proxy is wired in):
  // what must not happen is a failed handshake or a dropped connection.
  let running = true;
  let done = 0;
  const failures: string[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  t.after(() => agent.destroy());
  const get = (keepAlive: boolean) =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/', servername: 'e2e.test', rejectUnauthorized: false, agent: keepAlive ? agent : false, headers: { host: 'e2e.test' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
          res.on('error', fail);
        },
      );
      const fail = (err: Error) => {
        failures.push(err.message);
        resolve();
      };
      req.on('error', fail);
      req.end();
    });
  const loop = async (keepAlive: boolean) => {
    while (running && done < 2000) {
      await get(keepAlive);
      done++;
    }
  };
  const workers = [loop(true), loop(true), loop(false), loop(false)];
  await new Promise((r) => setTimeout(r, 500));
  writeFileSync(v1.keyPath, v2.key);
  writeFileSync(v1.certPath, v2.cert);
  edge.signal('SIGHUP');
  await edge.waitForEvent((e) => e.event === 'certificate_loaded' && e.serial === v2.serial);
  assert.ok(edge.events.some((e) => e.event === 'reload_requested'));
  assert.equal(await serialFor(port, 'e2e.test'), v2.serial);
  await new Promise((r) => setTimeout(r, 500));
  running = false;
  await Promise.all(workers);
  assert.deepEqual(failures, [], `${failures.length} of ${done} requests failed`);
  assert.ok(done > 0);
  assert.equal((await exchange(old.socket, '/', 'e2e.test')).status, 502, 'the connection from before the swap still answers');
  old.socket.destroy();
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const resumed = await handshake(port, { servername: 'e2e.test', maxVersion: version, session: sessions[version] });
    resumed.socket.destroy();
    assert.equal(resumed.reused, true, `${version} session from before the SIGHUP resumes`);
  }
});
