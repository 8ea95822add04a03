// nginx three ways: the origin (static files, sendfile), nginx configured as the seed deploys
// it (`resolver` + a variable in `proxy_pass`: it re-resolves and opens a new upstream
// connection per request), and nginx at its best (a static `upstream` block with keep-alive
// connections). The two proxies share everything else: nginx's stock http settings (those of
// the `nginx` Docker image the seed runs) except a higher keepalive_requests, TLS with h2 on
// the same port, access_log off.

import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ORIGIN_NAME, writeConfig } from '../lib/fixtures.ts';
import type { Fixtures } from '../lib/fixtures.ts';
import type { CpuPlan, Tools } from '../lib/tools.ts';
import { startProcess } from '../lib/processes.ts';
import type { Managed } from '../lib/processes.ts';
import { getStatus, waitFor200 } from '../lib/probe.ts';
import { freePort, proxyCpus, startServer, unavailable, workerCount } from './target.ts';
import type { TargetContext, TargetDef, WorkerSet } from './target.ts';

/** The main-context lines every nginx here shares: foreground, files in `dir`. */
function shell(dir: string, workers: number, workerConnections: number, http: string): string {
  const temp = join(dir, 'temp');
  mkdirSync(temp, { recursive: true });
  // As root, workers would switch to "nobody" and lose access to the private temp dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}worker_processes ${workers};
daemon off;
master_process on;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections ${workerConnections}; }
http {
  default_type application/octet-stream;
  access_log off;
  client_body_temp_path ${join(temp, 'body')};
  proxy_temp_path ${join(temp, 'proxy')};
  fastcgi_temp_path ${join(temp, 'fastcgi')};
  uwsgi_temp_path ${join(temp, 'uwsgi')};
  scgi_temp_path ${join(temp, 'scgi')};
${http}
}
`;
}

export type Origin = { http: number; https: number; proc: Managed };

/** The origin: one nginx worker serving the fixture files, plain and TLS (h2), on its own CPU. */
export async function startOrigin(dir: string, fixtures: Fixtures, tools: Tools, plan: CpuPlan): Promise<Origin> {
  if (!tools.nginx) throw new Error('nginx is needed for the origin: apt-get install nginx-light');
  const http = await freePort();
  const https = await freePort();
  const conf = shell(
    dir,
    1,
    8192,
    `  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  open_file_cache max=16 inactive=1h;
  server {
    listen 127.0.0.1:${http} backlog=4096;
    listen 127.0.0.1:${https} ssl http2 backlog=4096;
    ssl_certificate ${fixtures.cert};
    ssl_certificate_key ${fixtures.key};
    root ${fixtures.www};
  }`,
  );
  const file = writeConfig(dir, 'origin.conf', conf);
  const proc = startProcess('origin', tools.nginx.path, ['-p', dir, '-c', file, '-e', join(dir, 'error.log')], { cpus: plan.origin });
  const deadline = Date.now() + 15_000;
  const failure = await waitFor200(
    () => getStatus(http, false),
    () => deadline,
    () => (proc.isRunning() ? null : `exited: ${proc.tail()}`),
  );
  if (failure) {
    await proc.stop();
    throw new Error(`the origin (nginx) did not start: ${failure}`);
  }
  return { http, https, proc };
}

/** Proxy settings both nginx proxies share, as nginx's stock config has them. */
function proxyHttp(ports: { http: number; https: number }, fixtures: Fixtures, location: string, upstreamBlock = ''): string {
  // keepalive_requests: nginx's 1000 would close every load-generator connection each 1000
  // requests (for h2 a GOAWAY that fails the streams in flight), which real clients never see.
  return `  sendfile on;
  keepalive_timeout 65;
  keepalive_requests 100000;
${upstreamBlock}  server {
    listen 127.0.0.1:${ports.http};
    listen 127.0.0.1:${ports.https} ssl http2;
    server_name _;
    ssl_certificate ${fixtures.cert};
    ssl_certificate_key ${fixtures.key};
    ssl_protocols TLSv1.2 TLSv1.3;
${location}
  }`;
}

async function startNginxProxy(ctx: TargetContext, id: 'nginx-seed' | 'nginx-best', http: (ports: { http: number; https: number }) => string) {
  if (!ctx.tools.nginx) return unavailable(id, 'nginx is not installed (apt-get install nginx-light)');
  const dir = join(ctx.dir, id);
  mkdirSync(dir, { recursive: true });
  const ports = { http: await freePort(), https: await freePort() };
  const file = writeConfig(dir, 'nginx.conf', shell(dir, workerCount(ctx), 1024, http(ports)));
  return startServer({
    id,
    command: ctx.tools.nginx.path,
    args: ['-p', dir, '-c', file, '-e', join(dir, 'error.log')],
    cpus: proxyCpus(ctx),
    http: ports.http,
    https: ports.https,
  });
}

export const nginxSeed: TargetDef = {
  id: 'nginx-seed',
  label: 'nginx as deployed',
  describe: (w: WorkerSet, n: number) =>
    `nginx, the seed's proxy config: resolver (valid=15s) + "set $v NAME; proxy_pass http://$v", so every request opens a new upstream connection (HTTP/1.0, no keep-alive); worker_processes ${w === 1 ? 1 : n}`,
  start: (ctx) =>
    startNginxProxy(ctx, 'nginx-seed', (ports) =>
      proxyHttp(
        ports,
        ctx.fixtures,
        `    location / {
      resolver 127.0.0.1:${ctx.dnsPort} valid=15s;
      set $opam_live "${ORIGIN_NAME}:${ctx.origin.http}";
      proxy_pass http://$opam_live;
    }`,
      ),
    ),
};

export const nginxBest: TargetDef = {
  id: 'nginx-best',
  label: 'nginx at its best',
  describe: (w: WorkerSet, n: number) =>
    `nginx with a static upstream block and keepalive 32 (HTTP/1.1 to the origin, Connection ""); worker_processes ${w === 1 ? 1 : n}`,
  start: (ctx) =>
    startNginxProxy(ctx, 'nginx-best', (ports) =>
      proxyHttp(
        ports,
        ctx.fixtures,
        `    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }`,
        `  upstream origin {
    server 127.0.0.1:${ctx.origin.http};
    keepalive 32;
    keepalive_requests 100000;
  }
`,
      ),
    ),
};

export const originTarget: TargetDef = {
  id: 'origin',
  label: 'origin (no proxy)',
  describe: () => 'the origin itself, nginx serving static files (one worker, sendfile), hit directly: what the load generator and the origin can do without a proxy',
  start: async (ctx) => ({
    id: 'origin',
    pids: ctx.origin.pids,
    protocols: {
      http: { ok: true, port: ctx.origin.http },
      https: { ok: true, port: ctx.origin.https },
      h2: { ok: true, port: ctx.origin.https },
    },
    stop: async () => {},
  }),
};
