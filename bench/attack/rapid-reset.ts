// `node bench/attack/rapid-reset.ts [--streams 20000] [--seconds 10] [--connections 20]
//   [--targets nginx-seed,opam-edge] [--edge-cli PATH]`
// HTTP/2 Rapid Reset (CVE-2023-44487) against each target in turn, on loopback: the origin
// (nginx) and each proxy as the bench runs them (workers 1, proxy pinned to CPU 0), then
// `streams` HEADERS + RST_STREAM pairs spread over `connections` connections in `seconds`.
// Per target: resident memory idle, at the end and its peak, the proxy's CPU per reset
// stream, the origin's CPU (upstream requests the resets caused), how many streams the
// proxy let through before closing connections, and the GOAWAY codes it sent.
// Bounded: every connection gives up after seconds + 10 s; servers stop on exit.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanup, makeTempDir } from '../lib/processes.ts';
import { cpuDelta, currentRssKiB, peakRssKiB, processTree, sampleCpu } from '../lib/proc-stats.ts';
import { cpuPlan, ensureTools } from '../lib/tools.ts';
import { DEFAULT_EDGE_CLI } from '../lib/options.ts';
import { makeFixtures, ORIGIN_NAME, SITE_HOST } from '../lib/fixtures.ts';
import { startDnsServer } from '../lib/dns-server.ts';
import { nginxBest, nginxSeed, startOrigin } from '../targets/nginx.ts';
import { opamEdge } from '../targets/opam-edge.ts';
import type { TargetContext, TargetDef } from '../targets/target.ts';
import { rapidReset } from './rapid-reset-client.ts';
import type { RapidResetOutcome } from './rapid-reset-client.ts';

const DEFS: Record<string, TargetDef> = { 'nginx-seed': nginxSeed, 'nginx-best': nginxBest, 'opam-edge': opamEdge };
const say = (line: string) => process.stderr.write(`rapid-reset: ${line}\n`);
const mib = (kib: number | null) => (kib === null ? 'n/a' : `${(kib / 1024).toFixed(1)} MiB`);

type Row = {
  target: string;
  idleKiB: number | null;
  endKiB: number | null;
  peakKiB: number | null;
  cpuUsPerStream: number;
  originCpuMs: number;
  sent: number;
  responses: number;
  /** Connections opened: a slot whose connection the server closes opens another. */
  connections: number;
  goaways: string;
};

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      streams: { type: 'string', default: '20000' },
      seconds: { type: 'string', default: '10' },
      connections: { type: 'string', default: '20' },
      targets: { type: 'string', default: 'nginx-seed,opam-edge' },
      'edge-cli': { type: 'string', default: DEFAULT_EDGE_CLI },
    },
  });
  const streams = Number(values.streams);
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const ids = values.targets.split(',');
  if (![streams, seconds, connections].every((n) => Number.isInteger(n) && n > 0) || ids.some((id) => !(id in DEFS))) {
    say(`bad options: integers > 0, targets among ${Object.keys(DEFS).join(', ')}`);
    return 2;
  }
  const tools = ensureTools(true, say);
  if (!tools.nginx) return say('nginx is required'), 1;
  const plan = cpuPlan(tools);
  const dir = makeTempDir('opam-edge-rapid-reset-');
  const fixtures = await makeFixtures(dir);
  const dns = await startDnsServer(ORIGIN_NAME, '127.0.0.1');
  mkdirSync(join(dir, 'origin'));
  const origin = await startOrigin(join(dir, 'origin'), fixtures, tools, plan);
  const originPids = () => (origin.proc.isRunning() ? processTree(origin.proc.pid) : []);
  const rows: Row[] = [];
  try {
    for (const id of ids) {
      const ctx: TargetContext = {
        dir: join(dir, id), fixtures, tools, plan, workers: 1, autoCount: 1,
        origin: { http: origin.http, https: origin.https, pids: originPids },
        dnsPort: dns.port, edgeCli: values['edge-cli'], edgeProfile: null,
      };
      mkdirSync(ctx.dir);
      const target = await DEFS[id]!.start(ctx);
      try {
        const h2 = target.protocols.h2;
        if (!h2.ok) {
          say(`${id}: h2 not available (${h2.reason})`);
          continue;
        }
        // Settle after the readiness probes, then read the idle figures.
        await new Promise((r) => setTimeout(r, 1000));
        const pids = target.pids();
        const idleKiB = currentRssKiB(pids);
        const before = sampleCpu(pids);
        const originBefore = sampleCpu(originPids());
        const perSlot = Math.ceil(streams / connections);
        const slots = await Promise.all(Array.from({ length: connections }, () => attackSlot(h2.port, perSlot, perSlot / seconds, seconds)));
        const outcomes = slots.flat();
        // Let the proxy finish what the resets left it (closing upstream requests) before the second sample.
        await new Promise((r) => setTimeout(r, 1000));
        const cpuS = cpuDelta(before, sampleCpu(target.pids()));
        const originCpuS = cpuDelta(originBefore, sampleCpu(originPids()));
        const sent = outcomes.reduce((n, o) => n + o.sent, 0);
        const codes = new Map<string, number>();
        for (const o of outcomes) if (o.goaway !== null) codes.set(String(o.goaway), (codes.get(String(o.goaway)) ?? 0) + 1);
        const row: Row = {
          target: id,
          idleKiB,
          endKiB: currentRssKiB(target.pids()),
          peakKiB: peakRssKiB(target.pids()),
          cpuUsPerStream: (cpuS * 1e6) / sent,
          originCpuMs: originCpuS * 1000,
          sent,
          responses: outcomes.reduce((n, o) => n + o.responses, 0),
          connections: outcomes.length,
          goaways: [...codes].map(([code, n]) => `${n} x ${code}`).join(', ') || 'none',
        };
        rows.push(row);
        say(`${id}: ${JSON.stringify(row)}`);
      } finally {
        await target.stop();
      }
    }
  } finally {
    await origin.proc.stop();
    await dns.close();
    await cleanup();
  }
  process.stdout.write(
    `Rapid Reset: ${streams} streams (HEADERS + RST_STREAM) over ${connections} connections in ${seconds} s, workers 1, ${plan.description['1']}\n\n` +
      '| target | RSS idle | RSS after | peak RSS | CPU us per reset stream | origin CPU ms | streams sent | responses started | connections opened | GOAWAY codes |\n' +
      '|---|---|---|---|---|---|---|---|---|---|\n' +
      rows
        .map((r) => `| ${r.target} | ${mib(r.idleKiB)} | ${mib(r.endKiB)} | ${mib(r.peakKiB)} | ${r.cpuUsPerStream.toFixed(1)} | ${r.originCpuMs.toFixed(0)} | ${r.sent} | ${r.responses} | ${r.connections} | ${r.goaways} |`)
        .join('\n') +
      '\n',
  );
  return 0;
}

/**
 * One attacker slot: `streams` reset streams at `rate` per second; when the server closes the
 * connection, a new one carries on with the rest, as attack tools do. Bounded by seconds + 10 s.
 */
async function attackSlot(port: number, streams: number, rate: number, seconds: number): Promise<RapidResetOutcome[]> {
  const outcomes: RapidResetOutcome[] = [];
  const deadline = Date.now() + (seconds + 10) * 1000;
  let left = streams;
  while (left > 0 && Date.now() < deadline) {
    const o = await rapidReset({ port, host: SITE_HOST, path: '/1k', streams: left, rate, timeoutMs: deadline - Date.now() });
    outcomes.push(o);
    left -= o.sent;
    if (!o.closedByServer) break;
  }
  return outcomes;
}

if (import.meta.main) main().then((code) => process.exit(code));
