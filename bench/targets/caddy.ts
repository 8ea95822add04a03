// Caddy `reverse_proxy` to the origin (keep-alive connections, Caddy's defaults), plain HTTP
// on one port and TLS (h1 + h2, no h3) with the bench certificate on another. JSON config:
// no admin endpoint, no automatic HTTPS, no access log (Caddy logs no requests unless told).
// Worker count is Go's GOMAXPROCS.

import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { writeConfig } from '../lib/fixtures.ts';
import { freePort, proxyCpus, startServer, unavailable, workerCount } from './target.ts';
import type { TargetDef, WorkerSet } from './target.ts';

export const caddy: TargetDef = {
  id: 'caddy',
  label: 'Caddy',
  describe: (w: WorkerSet, n: number) => `Caddy reverse_proxy with its default keep-alive transport; GOMAXPROCS=${w === 1 ? 1 : n}`,
  async start(ctx) {
    if (!ctx.tools.caddy) return unavailable('caddy', 'caddy is not installed (apt-get install caddy)');
    const dir = join(ctx.dir, 'caddy');
    mkdirSync(join(dir, 'home'), { recursive: true });
    const ports = { http: await freePort(), https: await freePort() };
    const route = { handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${ctx.origin.http}` }] }] };
    const config = {
      admin: { disabled: true, config: { persist: false } },
      logging: { logs: { default: { level: 'ERROR' } } },
      storage: { module: 'file_system', root: join(dir, 'data') },
      apps: {
        http: {
          servers: {
            plain: {
              listen: [`127.0.0.1:${ports.http}`],
              automatic_https: { disable: true },
              routes: [route],
            },
            secure: {
              listen: [`127.0.0.1:${ports.https}`],
              protocols: ['h1', 'h2'],
              automatic_https: { disable: true },
              tls_connection_policies: [{}],
              routes: [route],
            },
          },
        },
        tls: {
          certificates: { load_files: [{ certificate: ctx.fixtures.cert, key: ctx.fixtures.key }] },
        },
      },
    };
    const file = writeConfig(dir, 'caddy.json', JSON.stringify(config, null, 2));
    const home = join(dir, 'home');
    return startServer({
      id: 'caddy',
      command: ctx.tools.caddy.path,
      args: ['run', '--config', file],
      env: {
        PATH: process.env.PATH,
        HOME: home,
        XDG_DATA_HOME: join(home, 'data'),
        XDG_CONFIG_HOME: join(home, 'config'),
        GOMAXPROCS: String(workerCount(ctx)),
      },
      cpus: proxyCpus(ctx),
      http: ports.http,
      https: ports.https,
    });
  },
};
