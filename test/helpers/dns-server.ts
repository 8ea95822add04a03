// A real DNS server for tests: Debian's pebble-challtestsrv, whose A/AAAA answers are set
// over its HTTP management API. When the binary is missing, tests skip loudly, or fail
// under CI (`requireTool`).

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export const CHALLTESTSRV = 'pebble-challtestsrv';

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** true when the tool is there. Otherwise skips the test loudly, or fails it under CI. */
export function requireTool(t: TestContext, name: string, pkg: string): boolean {
  if (hasTool(name)) return true;
  const message = `${name} is not installed (Debian package ${pkg})`;
  if (process.env.CI) throw new Error(`${message}: required under CI`);
  process.stderr.write(`\n*** SKIPPED: ${message} ***\n`);
  t.skip(message);
  return false;
}

/** A port free for both TCP and UDP on 127.0.0.1 (DNS listens on both). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (ok) return port;
  }
  throw new Error('no free port');
}

export type DnsServer = {
  /** "127.0.0.1:PORT", for resolver.servers. */
  server: string;
  setA(host: string, addresses: string[]): Promise<void>;
  setAAAA(host: string, addresses: string[]): Promise<void>;
  setServfail(host: string, on: boolean): Promise<void>;
  stop(): Promise<void>;
};

export async function startDnsServer(): Promise<DnsServer> {
  const dnsPort = await freePort();
  const mgmtPort = await freePort();
  const child: ChildProcess = spawn(
    CHALLTESTSRV,
    ['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${mgmtPort}`, '-defaultIPv4', '', '-defaultIPv6', ''],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`http://127.0.0.1:${mgmtPort}${path}`, { method: 'POST', body: JSON.stringify(body) });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
  };
  const fqdn = (host: string) => (host.endsWith('.') ? host : `${host}.`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await post('/clear-request-history', { host: 'x.' }).catch(async () => {
        // Older versions answer 404 on an unknown path but are up all the same.
        const res = await fetch(`http://127.0.0.1:${mgmtPort}/`);
        await res.arrayBuffer();
      });
      break;
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill('SIGKILL');
        throw new Error(`pebble-challtestsrv did not start: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    server: `127.0.0.1:${dnsPort}`,
    async setA(host, addresses) {
      await post('/clear-a', { host: fqdn(host) });
      if (addresses.length > 0) await post('/add-a', { host: fqdn(host), addresses });
    },
    async setAAAA(host, addresses) {
      await post('/clear-aaaa', { host: fqdn(host) });
      if (addresses.length > 0) await post('/add-aaaa', { host: fqdn(host), addresses });
    },
    async setServfail(host, on) {
      await post(on ? '/set-servfail' : '/clear-servfail', { host: fqdn(host) });
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
