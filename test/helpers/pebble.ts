// Debian's Pebble (a test ACME CA) and pebble-challtestsrv (as the DNS server Pebble asks),
// started per test on free ports, with a TLS certificate made here (the package ships
// none). See /work/shared/ACME-NOTES.md. `wrap` runs them under a prefix such as
// ["ip", "netns", "exec", NS] for the two-node test.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Agent, request } from 'undici';
import { makeCA, makeCert } from './certs.ts';
import { freePorts } from './ports.ts';
import { requireTool } from './tools.ts';
import type { TestCert } from './certs.ts';

/** True when Pebble and pebble-challtestsrv are on PATH (see requireTool). */
export function requirePebble(t: TestContext): boolean {
  return requireTool(t, 'pebble', 'pebble') && requireTool(t, 'pebble-challtestsrv', 'pebble');
}

type Managed = { child: ChildProcess; output: string[]; exited: Promise<void> };

function launch(command: string[], env: Record<string, string>, wrap: string[]): Managed {
  const [cmd, ...args] = [...wrap, ...command];
  const child = spawn(cmd!, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(chunk.toString('utf8'));
    if (output.length > 400) output.splice(0, 100);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, output, exited };
}

async function terminate(m: Managed): Promise<void> {
  if (m.child.exitCode !== null || m.child.signalCode !== null) return;
  m.child.kill('SIGCONT');
  m.child.kill('SIGTERM');
  const timer = setTimeout(() => m.child.kill('SIGKILL'), 3000);
  await m.exited;
  clearTimeout(timer);
}

export type ChallTestSrv = {
  /** "HOST:PORT" for Pebble's -dnsserver. */
  dns: string;
  addA(host: string, addresses: string[]): Promise<void>;
  addAAAA(host: string, addresses: string[]): Promise<void>;
  clearA(host: string): Promise<void>;
  clearAAAA(host: string): Promise<void>;
  /** Names asked of the DNS server since the last clear. */
  history(host?: string): Promise<unknown>;
  stop(): Promise<void>;
};

export async function startChallTestSrv(options: { host?: string; wrap?: string[]; dnsPort?: number; mgmtPort?: number } = {}): Promise<ChallTestSrv> {
  const host = options.host ?? '127.0.0.1';
  // Only when a port is not given: fixed ones belong to a namespace this process may not bind in.
  const [freeDns, freeMgmt] = options.dnsPort !== undefined && options.mgmtPort !== undefined ? [] : await freePorts(2, host);
  const dnsPort = options.dnsPort ?? freeDns!;
  const mgmtPort = options.mgmtPort ?? freeMgmt!;
  const hp = (p: number) => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);
  const m = launch(
    ['pebble-challtestsrv', '-dns01', hp(dnsPort), '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', hp(mgmtPort), '-defaultIPv4', '', '-defaultIPv6', ''],
    {},
    options.wrap ?? [],
  );
  const base = `http://${hp(mgmtPort)}`;
  const post = async (path: string, body: unknown) => {
    const res = await request(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`challtestsrv ${path}: ${res.statusCode} ${text}`);
    return text;
  };
  await waitUntil(async () => {
    await post('/clear-a', { host: 'opam-edge-probe.' });
  }, m, 'pebble-challtestsrv');
  const fqdn = (h: string) => (h.endsWith('.') ? h : `${h}.`);
  return {
    dns: hp(dnsPort),
    addA: async (h, addresses) => void (await post('/add-a', { host: fqdn(h), addresses })),
    addAAAA: async (h, addresses) => void (await post('/add-aaaa', { host: fqdn(h), addresses })),
    clearA: async (h) => void (await post('/clear-a', { host: fqdn(h) })),
    clearAAAA: async (h) => void (await post('/clear-aaaa', { host: fqdn(h) })),
    history: async (h?: string) => JSON.parse((await post('/dns-request-history', { host: h ? fqdn(h) : '' })) || '[]'),
    stop: () => terminate(m),
  };
}

export type PebbleOptions = {
  dir: string;
  /** The port Pebble's validator connects to for HTTP-01 (80 for the real thing). */
  httpPort: number;
  /** challtestsrv's "HOST:PORT". */
  dnsServer: string;
  /** Seconds; Pebble's default is five years. */
  validitySeconds?: number;
  env?: Record<string, string>;
  /** Address to listen on (also put in its certificate). */
  host?: string;
  wrap?: string[];
  /** Fixed ports (in a fresh network namespace); default: free ones on `host`. */
  port?: number;
  mgmtPort?: number;
};

export type Pebble = {
  directory: string;
  /** PEM file of the CA that signed Pebble's TLS certificate (acme.ca_bundle). */
  caBundlePath: string;
  caBundle: string;
  /** That CA, to sign other test servers' certificates (acme-proxy.ts). */
  ca: TestCert;
  /** The root that issued certificates chain to (changes on every start). */
  root(): Promise<string>;
  /** The roots of every start so far: certificates issued before a restart chain to an older one. */
  roots(): string[];
  output(): string;
  /** Stops it; start() brings it back on the same ports with a fresh state. */
  stop(): Promise<void>;
  start(env?: Record<string, string>): Promise<void>;
  pause(): void;
  resume(): void;
};

export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const host = options.host ?? '127.0.0.1';
  const ca = await makeCA(options.dir, 'Pebble TLS test CA');
  const names = ['localhost', host];
  const tlsCert = await makeCert({ names, dir: options.dir, stem: 'pebble-tls', ca });
  const [freeAcme, freeMgmt] = options.port !== undefined && options.mgmtPort !== undefined ? [] : await freePorts(2, host);
  const port = options.port ?? freeAcme!;
  const mgmtPort = options.mgmtPort ?? freeMgmt!;
  const hp = (p: number) => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);
  const configPath = join(options.dir, 'pebble-config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      pebble: {
        listenAddress: hp(port),
        managementListenAddress: hp(mgmtPort),
        certificate: tlsCert.certPath,
        privateKey: tlsCert.keyPath,
        httpPort: options.httpPort,
        tlsPort: 5001,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(options.validitySeconds ? { certificateValidityPeriod: options.validitySeconds } : {}),
      },
    }),
  );
  const agent = new Agent({ connect: { ca: ca.cert } });
  const directory = `https://${hp(port)}/dir`;
  let m: Managed | null = null;
  const roots: string[] = [];
  const start = async (env: Record<string, string> = {}) => {
    m = launch(['pebble', '-config', configPath, '-dnsserver', options.dnsServer], { PEBBLE_VA_NOSLEEP: '1', ...options.env, ...env }, options.wrap ?? []);
    const current = m;
    await waitUntil(async () => {
      const res = await request(directory, { dispatcher: agent });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(String(res.statusCode));
    }, current, 'pebble');
    const res = await request(`https://${hp(mgmtPort)}/roots/0`, { dispatcher: agent });
    roots.push(await res.body.text());
  };
  await start();
  return {
    directory,
    caBundlePath: ca.certPath,
    caBundle: ca.cert,
    ca,
    async root() {
      const res = await request(`https://${hp(mgmtPort)}/roots/0`, { dispatcher: agent });
      return res.body.text();
    },
    roots: () => [...roots],
    output: () => m?.output.join('') ?? '',
    async stop() {
      if (m) await terminate(m);
    },
    start,
    pause: () => void m?.child.kill('SIGSTOP'),
    resume: () => void m?.child.kill('SIGCONT'),
  };
}

async function waitUntil(probe: () => Promise<void>, m: Managed, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (m.child.exitCode !== null) throw new Error(`${what} exited (${m.child.exitCode}): ${m.output.join('').slice(-2000)}`);
    try {
      await probe();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await terminate(m);
  throw new Error(`${what} did not come up in ${timeoutMs} ms (${String(last)}): ${m.output.join('').slice(-2000)}`);
}
