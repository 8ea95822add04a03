// opam-edge itself, started as an operator would: `node src/cli.ts --config FILE` with one
// site whose upstream is the origin by name, resolved through the bench's DNS server every
// 15 s (as nginx-as-deployed does), TLS from the bench certificate, h2 on, access log off.
// No plain HTTP scenario: its port-80 role only answers challenges and redirects to https.
// Whatever it cannot do yet (no https listener, `workers: auto` refused) is reported as not
// available for that protocol instead of stopping the run.
// `opam-edge-admin` is the same with `admin` set, so every request is recorded for /metrics:
// run both in one bench (`--targets opam-edge,opam-edge-admin`) to see what metrics cost.

import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ORIGIN_NAME, SITE_HOST, writeConfig } from '../lib/fixtures.ts';
import { freePort, proxyCpus, startServer } from './target.ts';
import type { RunningTarget, TargetContext, TargetDef, WorkerSet } from './target.ts';

/** The config the bench runs opam-edge with (keys as in docs/configuration.md). */
export function opamEdgeConfig(ctx: TargetContext, ports: { http: number; https: number; admin?: number }): Record<string, unknown> {
  return {
    listen: { http: [`127.0.0.1:${ports.http}`], https: [`127.0.0.1:${ports.https}`] },
    ...(ports.admin ? { admin: `127.0.0.1:${ports.admin}` } : {}),
    workers: ctx.workers,
    resolver: { servers: [`127.0.0.1:${ctx.dnsPort}`], valid: '15s' },
    tls: {
      certificates: [{ cert: ctx.fixtures.cert, key: ctx.fixtures.key }],
      unknown_sni: 'default',
      http2: true,
    },
    access_log: 'off',
    sites: [{ hosts: [SITE_HOST], upstream: `http://${ORIGIN_NAME}:${ctx.origin.http}` }],
  };
}

/** The node flags of the Dockerfile's ENTRYPOINT (a test checks they are the same). */
export const EDGE_NODE_FLAGS = ['--max-semi-space-size=2'];

function edgeTarget(id: 'opam-edge' | 'opam-edge-admin', admin: boolean): TargetDef {
  return {
    id,
    label: id,
    describe: (w: WorkerSet, n: number) =>
      `opam-edge (node src/cli.ts), upstream by name re-resolved every 15 s, keep-alive pools; workers: ${w === 1 ? 1 : `auto (${n})`}` +
      (admin ? '; admin listener on, so every request is recorded for /metrics (not scraped during the runs)' : '; admin off (no metrics recorded)'),
    start: (ctx) => startEdge(ctx, id, admin),
  };
}

export const opamEdge = edgeTarget('opam-edge', false);
export const opamEdgeAdmin = edgeTarget('opam-edge-admin', true);

async function startEdge(ctx: TargetContext, id: 'opam-edge' | 'opam-edge-admin', admin: boolean): Promise<RunningTarget> {
  const dir = join(ctx.dir, id);
  mkdirSync(dir, { recursive: true });
  // The http port is not driven (it only redirects), but it is part of a real deployment.
  const ports = { http: await freePort(), https: await freePort(), ...(admin ? { admin: await freePort() } : {}) };
  // JSON is valid YAML.
  const file = writeConfig(dir, 'opam-edge.yaml', JSON.stringify(opamEdgeConfig(ctx, ports), null, 2));
  return startServer({
    id,
    command: process.execPath,
    // The Dockerfile's ENTRYPOINT flags, so that the bench measures what is deployed.
    args: [
      ...EDGE_NODE_FLAGS,
      ...(ctx.edgeProfile ? ['--cpu-prof', '--cpu-prof-dir', join(ctx.edgeProfile, `${id}-${ctx.workers}`)] : []),
      ctx.edgeCli, '--config', file,
    ],
    env: { ...process.env, NODE_ENV: 'production' },
    cpus: proxyCpus(ctx),
    http: null,
    noHttpReason: 'by design: its http port only answers ACME challenges and redirects to https',
    https: ports.https,
    startedMarker: '"event":"started"',
  });
}
