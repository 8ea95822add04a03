// A real DNS server for tests: Debian's pebble-challtestsrv, whose A/AAAA answers are set
// over its HTTP management API. When the binary is missing, tests skip loudly, or fail
// under CI (requireTool in tools.ts).

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { freePort, freeTcpUdpPort } from './ports.ts';

export const CHALLTESTSRV = 'pebble-challtestsrv';

export type DnsServer = {
  /** "127.0.0.1:PORT", for resolver.servers. */
  server: string;
  setA(host: string, addresses: string[]): Promise<void>;
  setAAAA(host: string, addresses: string[]): Promise<void>;
  setServfail(host: string, on: boolean): Promise<void>;
  stop(): Promise<void>;
};

export async function startDnsServer(): Promise<DnsServer> {
  const dnsPort = await freeTcpUdpPort();
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
