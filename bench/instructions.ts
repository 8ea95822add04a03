// Instructions per proxied request under callgrind: the figure for a lever whose effect is
// smaller than this shared machine's swings in timings (perf's instruction counter is not
// available in this VM). opam-edge (workers 1, the bench's config) runs under
// `valgrind --tool=callgrind` in front of the bench's origin; h2load sends --warmup requests,
// the counters are zeroed (callgrind_control -z), h2load sends --requests more, the counters
// are dumped (callgrind_control -d): instructions / requests. h2load drives both protocols
// (--h1 for https-1k) because it stops after a number of requests, which wrk cannot.
//
//   node bench/instructions.ts --scenario https-1k --requests 2000 [--edge-cli /other/src/cli.ts]

import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { cleanup, makeTempDir } from './lib/processes.ts';
import { cpuPlan, findTools } from './lib/tools.ts';
import { makeFixtures, ORIGIN_NAME, writeConfig } from './lib/fixtures.ts';
import { startDnsServer } from './lib/dns-server.ts';
import { startOrigin } from './targets/nginx.ts';
import { opamEdgeConfig, EDGE_NODE_FLAGS } from './targets/opam-edge.ts';
import { freePort, startServer } from './targets/target.ts';
import type { TargetContext } from './targets/target.ts';
import { runTimed } from './load/timed-run.ts';
import { DEFAULT_EDGE_CLI } from './lib/options.ts';

const SHAPES = {
  'https-1k': { path: '/1k', h1: true, connections: 8, streams: 1 },
  'https-100k': { path: '/100k', h1: true, connections: 8, streams: 1 },
  'h2-1k': { path: '/1k', h1: false, connections: 2, streams: 8 },
  'h2-100k': { path: '/100k', h1: false, connections: 2, streams: 8 },
} as const;

/** The total instruction count of a callgrind dump ("summary:" or "totals:" line). */
export function callgrindTotal(text: string): number | null {
  const m = /^(?:totals|summary):\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'https-1k' },
      requests: { type: 'string', default: '2000' },
      warmup: { type: 'string', default: '300' },
      'edge-cli': { type: 'string', default: DEFAULT_EDGE_CLI },
      env: { type: 'string', multiple: true, default: [] },
    },
  });
  const shape = SHAPES[values.scenario as keyof typeof SHAPES];
  if (!shape) throw new Error(`--scenario: one of ${Object.keys(SHAPES).join(', ')}`);
  const requests = Number(values.requests);
  const tools = findTools();
  if (!tools.nginx || !tools.h2load) throw new Error('needs nginx and h2load');
  const plan = cpuPlan(tools);
  const dir = makeTempDir('opam-edge-callgrind-');
  try {
    const fixtures = await makeFixtures(dir);
    const dns = await startDnsServer(ORIGIN_NAME, '127.0.0.1');
    mkdirSync(join(dir, 'origin'));
    const origin = await startOrigin(join(dir, 'origin'), fixtures, tools, plan);
    const ctx = { workers: 1, dnsPort: dns.port, fixtures, origin: { http: origin.http } } as TargetContext;
    const ports = { http: await freePort(), https: await freePort() };
    const config = writeConfig(dir, 'opam-edge.yaml', JSON.stringify(opamEdgeConfig(ctx, ports)));
    const out = join(dir, 'callgrind.out');
    const env = { ...process.env, NODE_ENV: 'production', ...Object.fromEntries(values.env.map((e) => e.split('=', 2))) };
    const edge = await startServer({
      id: 'opam-edge',
      command: 'valgrind',
      args: ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, ...EDGE_NODE_FLAGS, values['edge-cli'], '--config', config],
      env,
      cpus: null,
      http: null,
      https: ports.https,
      readyTimeoutMs: 600_000,
    });
    if (!edge.protocols.https.ok) throw new Error(`opam-edge did not start: ${edge.protocols.https.reason}`);
    const pid = edge.pids()[0]!;
    const load = (n: number) =>
      runTimed('h2load', tools.h2load!.path, [
        '-n', String(n), '-c', String(shape.connections), '-m', String(shape.streams), '-t', '1',
        `--connect-to=127.0.0.1:${ports.https}`, ...(shape.h1 ? ['--h1'] : []),
        `https://bench.test:${ports.https}${shape.path}`,
      ], null, 3600);
    await load(Number(values.warmup));
    execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore' });
    const { out: report } = await load(requests);
    const done = /(\d+) succeeded/.exec(report)?.[1];
    execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
    const dumps = readdirSync(dir).filter((f) => f.startsWith('callgrind.out.'));
    const total = callgrindTotal(readFileSync(join(dir, dumps.sort().at(-1)!), 'utf8'));
    await edge.stop();
    await origin.proc.stop();
    await dns.close();
    if (total === null || Number(done) !== requests) throw new Error(`no total, or ${done} of ${requests} succeeded`);
    process.stdout.write(`${values.scenario} ${values['edge-cli']}: ${Math.round(total / requests)} instructions per request (${requests} requests, ${total} in all)\n`);
  } finally {
    await cleanup();
  }
}

if (import.meta.main) main().catch((err: unknown) => { process.stderr.write(`instructions: ${(err as Error).message}\n`); process.exitCode = 1; });
