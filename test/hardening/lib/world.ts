// One opam-edge under test, as a real process: http and https listeners on loopback, a test
// certificate for edge.test, and an origin (node:http) whose behaviour the path chooses:
//   /size/N      N bytes (streamed in 64 KiB writes, Content-Length)
//   /delay/MS    "ok" after MS milliseconds
//   /hang        never answers
//   POST *       reads the body, answers {"bytes": N}
//   anything     "ok"
// The origin also counts what it completed, so a test can check that nothing was lost.

import { rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TestContext } from 'node:test';
import { startEdgeProcess, tempDir } from '../../helpers/edge-process.ts';
import type { EdgeProcess } from '../../helpers/edge-process.ts';
import { makeCert } from '../../helpers/certs.ts';
import type { TestCert } from '../../helpers/certs.ts';
import { startOrigin } from '../../helpers/origin.ts';
import { startDnsServer } from '../../helpers/dns-server.ts';
import { freePort } from '../../helpers/ports.ts';
import type { Origin } from '../../helpers/origin.ts';
import { probeEnv } from './process-stats.ts';
import { EDGE_NODE_FLAGS } from '../../../bench/targets/opam-edge.ts';

export const HOST = 'edge.test';

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** Writes `size` bytes with backpressure. */
export function writeBytes(res: ServerResponse, size: number): void {
  let left = size;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}

export function originHandler(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  if (req.method === 'POST' || req.method === 'PUT') {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      const body = JSON.stringify({ bytes });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    return;
  }
  req.resume();
  if (url.startsWith('/size/')) {
    const size = Number(url.slice(6));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    return writeBytes(res, size);
  }
  if (url.startsWith('/delay/')) {
    const timer = setTimeout(() => res.end('ok'), Number(url.slice(7)));
    res.once('close', () => clearTimeout(timer));
    return;
  }
  if (url === '/hang') return;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
  res.end('ok');
}

export type World = {
  dir: string;
  edge: EdgeProcess;
  origin: Origin;
  cert: TestCert;
  httpsPort: number;
  httpPort: number;
  /** The config the edge runs with (tests rewrite it for SIGHUP). */
  config: Record<string, unknown>;
};

export type WorldOptions = {
  /** Extra limits (durations as strings, as in the config file). */
  limits?: Record<string, unknown>;
  /** Upstream URL; default: the origin on 127.0.0.1. */
  upstream?: (origin: Origin) => string;
  resolver?: { servers: string[]; valid: string };
  extra?: Record<string, unknown>;
  /** Preload the memory probe (memory figures). */
  probe?: boolean;
  env?: Record<string, string>;
};

export async function startWorld(t: Pick<TestContext, 'after'>, options: WorldOptions = {}): Promise<World> {
  const dir = tempDir('opam-edge-hardening-');
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const origin = await startOrigin({ handler: originHandler });
  cleanups.push(() => origin.close());
  const cert = await makeCert({ names: [HOST, 'localhost', '127.0.0.1'], dir });
  const config: Record<string, unknown> = {
    listen: { http: ['127.0.0.1:0'], https: ['127.0.0.1:0'] },
    access_log: 'off',
    tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }], unknown_sni: 'default' },
    ...(options.resolver ? { resolver: options.resolver } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    sites: [{ hosts: [HOST, 'localhost', '127.0.0.1'], upstream: options.upstream ? options.upstream(origin) : `http://127.0.0.1:${origin.port}` }],
    ...options.extra,
  };
  // The node flags of the image's ENTRYPOINT: memory figures are those of what is deployed.
  const edge = await startEdgeProcess(config, { dir, nodeArgs: EDGE_NODE_FLAGS, env: { ...(options.probe ? probeEnv() : {}), ...options.env } });
  cleanups.push(() => edge.stop());
  return { dir, edge, origin, cert, httpsPort: edge.ports.https![0]!, httpPort: edge.ports.http![0]!, config };
}

/**
 * Two origins (127.0.0.2 and .3, same port) behind `app.test` on a DNS server of the test,
 * answering A 127.0.0.2 at first: for DNS changes and SERVFAIL under load.
 */
export async function startNamedOrigins(scope: Pick<TestContext, 'after'>) {
  const dns = await startDnsServer();
  scope.after(() => dns.stop());
  const port = await freePort();
  const a = await startOrigin({ host: '127.0.0.2', port, handler: originHandler });
  const b = await startOrigin({ host: '127.0.0.3', port, handler: originHandler });
  scope.after(() => Promise.all([a.close(), b.close()]));
  await dns.setA('app.test', ['127.0.0.2']);
  await dns.setAAAA('app.test', []);
  return { dns, port, a, b, upstream: `http://app.test:${port}` };
}
