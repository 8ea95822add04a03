// The servers the corpus runs against, each started fresh on loopback:
//   edge-http    opam-edge's port-80 role (challenges, 301 to https): nothing is forwarded
//   edge-https   opam-edge's https proxy in front of a recording origin
//   nginx-http   Debian's nginx with the seed's port-80 server block
//   nginx-proxy  the same nginx, proxy_pass to a recording origin (as the seed's :443 did)
// opam-edge targets are asserted; nginx is the baseline the report compares against.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startEdgeProcess, tempDir } from '../helpers/edge-process.ts';
import { makeCert } from '../helpers/certs.ts';
import { freePort } from '../helpers/ports.ts';
import { RecordingOrigin } from './recording-origin.ts';
import type { Role } from './corpus.ts';

export type TargetKey = 'edge-http' | 'edge-https' | 'nginx-http' | 'nginx-proxy';

export const TARGETS: Record<TargetKey, { name: string; role: Role; asserted: boolean }> = {
  'edge-http': { name: 'opam-edge :80', role: 'http', asserted: true },
  'edge-https': { name: 'opam-edge https proxy', role: 'proxy', asserted: true },
  'nginx-http': { name: 'nginx :80', role: 'http', asserted: false },
  'nginx-proxy': { name: 'nginx proxy', role: 'proxy', asserted: false },
};

/** The name every corpus request carries in Host; the https target serves it. */
export const CORPUS_HOST = 'edge.test';

export type Target = {
  key: TargetKey;
  port: number;
  tls?: { servername: string };
  origin?: RecordingOrigin;
  /** e.g. "nginx/1.22.1" or "node v24.x". */
  version: string;
};

export type Unavailable = { key: TargetKey; reason: string };

export function findNginx(): string | null {
  for (const path of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) if (existsSync(path)) return path;
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : null;
}

async function waitForPort(port: number, deadlineMs: number): Promise<boolean> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export type Running = { targets: Target[]; unavailable: Unavailable[]; stop: () => Promise<void> };

/** opam-edge with only its port-80 role, as in production but on a loopback port. */
async function startEdgeHttp(stops: (() => Promise<void>)[]): Promise<Target> {
  const edge = await startEdgeProcess({
    listen: { http: ['127.0.0.1:0'], https: [] },
    access_log: 'off',
    sites: [{ hosts: [CORPUS_HOST], upstream: 'http://127.0.0.1:9' }],
  });
  stops.push(() => edge.stop());
  return { key: 'edge-http', port: edge.ports.http![0]!, version: `opam-edge on node ${process.version}` };
}

/** opam-edge's https proxy in front of a recording origin. */
async function startEdgeHttps(stops: (() => Promise<void>)[]): Promise<Target> {
  const origin = new RecordingOrigin();
  const originPort = await origin.listen();
  stops.push(() => origin.close());
  const dir = tempDir('opam-edge-hardening-');
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const cert = await makeCert({ names: [CORPUS_HOST], dir });
  const edge = await startEdgeProcess(
    {
      listen: { http: [], https: ['127.0.0.1:0'] },
      access_log: 'off',
      tls: { certificates: [{ cert: cert.certPath, key: cert.keyPath }], unknown_sni: 'default' },
      sites: [{ hosts: [CORPUS_HOST, '127.0.0.1', '[::1]'], upstream: `http://127.0.0.1:${originPort}` }],
    },
    { dir },
  );
  stops.unshift(() => edge.stop());
  const port = edge.ports.https?.[0];
  if (!port) throw new Error('opam-edge bound no https listener');
  return { key: 'edge-https', port, tls: { servername: CORPUS_HOST }, origin, version: `opam-edge on node ${process.version}` };
}

/**
 * nginx as the seed ran it: the port-80 server block of seed-opam-deployment.txt (the peer
 * fallback replaced by =404: there is no peer here), and a proxy_pass server with nginx's
 * defaults (HTTP/1.0 to the upstream, request bodies buffered) in front of a recording origin;
 * Host is passed on as $host, as opam-edge does (docs/behaviour.md, "Port 443: TLS and the
 * proxy"; nginx's default is the upstream's).
 */
async function startNginx(stops: (() => Promise<void>)[], nginx: string): Promise<Target[]> {
  const origin = new RecordingOrigin();
  const originPort = await origin.listen();
  stops.push(() => origin.close());
  const dir = tempDir('opam-edge-hardening-nginx-');
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'www', '.well-known', 'acme-challenge'), { recursive: true });
  mkdirSync(join(dir, 'tmp'));
  const [httpPort, proxyPort] = [await freePort(), await freePort()];
  const root = process.getuid?.() === 0;
  writeFileSync(
    join(dir, 'nginx.conf'),
    `${root ? 'user root root;\n' : ''}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${httpPort};
    server_name _;
    location ^~ /.well-known/acme-challenge/ {
      default_type "text/plain";
      root ${dir}/www;
      try_files $uri =404;
    }
    location = /.well-known/acme-challenge/ {
      return 404;
    }
    location / {
      return 301 https://$host$request_uri;
    }
  }
  server {
    listen 127.0.0.1:${proxyPort};
    server_name _;
    location / {
      proxy_pass http://127.0.0.1:${originPort};
      proxy_set_header Host $host;
    }
  }
}
`,
  );
  const child = spawn(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  stops.unshift(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  if (!(await waitForPort(httpPort, 5000)) || !(await waitForPort(proxyPort, 5000))) {
    const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '';
    throw new Error(`nginx did not start: ${stderr}${log}`);
  }
  const version = spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '');
  return [
    { key: 'nginx-http', port: httpPort, version },
    { key: 'nginx-proxy', port: proxyPort, origin, version },
  ];
}

/** Starts every target that can run here; what cannot is listed with the reason. */
export async function startTargets(): Promise<Running> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.splice(0)) await s().catch(() => {});
  };
  const targets: Target[] = [];
  const unavailable: Unavailable[] = [];
  try {
    targets.push(await startEdgeHttp(stops));
    targets.push(await startEdgeHttps(stops));
    const nginx = findNginx();
    if (nginx) targets.push(...(await startNginx(stops, nginx)));
    else unavailable.push({ key: 'nginx-http', reason: 'nginx is not installed' }, { key: 'nginx-proxy', reason: 'nginx is not installed' });
  } catch (err) {
    await stop();
    throw err;
  }
  return { targets, unavailable, stop };
}
