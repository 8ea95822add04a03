// `npm run bench [-- options]`: opam-edge against nginx (as deployed and at its best), Caddy
// and the bare origin, on loopback, interleaved round by round, medians reported with ratios
// to both nginx set-ups. Writes bench/results/<stamp>.{json,md,svg} (committed) and
// reports/bench/latest.{json,md,svg} (git-ignored).
// Every server stops on completion, failure, Ctrl-C or when the run overruns its budget.

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { cleanup, makeTempDir } from './lib/processes.ts';
import { processTree } from './lib/proc-stats.ts';
import { cpuPlan, ensureTools, machineDescription } from './lib/tools.ts';
import type { Tools } from './lib/tools.ts';
import { estimateSeconds, parseOptions, USAGE } from './lib/options.ts';
import type { Options } from './lib/options.ts';
import { makeFixtures, ORIGIN_NAME } from './lib/fixtures.ts';
import { startDnsServer } from './lib/dns-server.ts';
import { nginxBest, nginxSeed, originTarget, startOrigin } from './targets/nginx.ts';
import { caddy } from './targets/caddy.ts';
import { opamEdge, opamEdgeAdmin } from './targets/opam-edge.ts';
import type { RunningTarget, TargetContext, TargetDef, TargetId } from './targets/target.ts';
import { SCENARIOS } from './load/scenarios.ts';
import { measure } from './load/driver.ts';
import { fixedRate, FIXED_RATE_FRACTION } from './load/h2load.ts';
import type { DriverOptions } from './load/driver.ts';
import { median, SCHEMA, summarize } from './report/results.ts';
import type { Results, RunRecord } from './report/results.ts';
import { fmtCount, fmtMs, renderMarkdown, renderText } from './report/table.ts';
import { renderSvg } from './report/svg.ts';

const DEFS: Record<TargetId, TargetDef> = {
  origin: originTarget,
  'nginx-seed': nginxSeed,
  'nginx-best': nginxBest,
  caddy,
  'opam-edge': opamEdge,
  'opam-edge-admin': opamEdgeAdmin,
};

const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

async function bench(options: Options, tools: Tools): Promise<Results> {
  const startedAt = Date.now();
  const plan = cpuPlan(tools);
  const scenarios = SCENARIOS.filter((s) => options.scenarios.includes(s.id));
  const wrkPath = options.loadgen === 'autocannon' ? null : (tools.wrk?.path ?? null);
  if (options.loadgen === 'wrk' && !wrkPath) throw new Error('--loadgen wrk: wrk is not installed (apt-get install wrk)');
  const driverOf = (driver: string) => (driver === 'autocannon' && wrkPath ? 'wrk' : driver);
  for (const w of options.workers) say(`workers ${w}: ${plan.description[String(w)]}`);
  say(`about ${Math.ceil(estimateSeconds(options) / 60)} min: ${options.rounds} round(s) x ${options.workers.length} worker set(s) x ${options.targets.length} targets x ${scenarios.length} scenarios`);

  const dir = makeTempDir('opam-edge-bench-');
  say(`working in ${dir}`);
  const fixtures = await makeFixtures(dir);
  const dns = await startDnsServer(ORIGIN_NAME, '127.0.0.1');
  mkdirSync(join(dir, 'origin'));
  const origin = await startOrigin(join(dir, 'origin'), fixtures, tools, plan);
  const originPids = () => (origin.proc.isRunning() ? processTree(origin.proc.pid) : []);
  // "auto" = one worker per CPU of the machine, for every proxy alike.
  const autoCount = plan.count;
  const runs: RunRecord[] = [];
  const descriptions = new Map<TargetId, Record<string, string>>();
  const total = options.rounds * options.workers.length * options.targets.length * scenarios.length;
  let done = 0;

  try {
    for (const workers of options.workers) {
      const ctx: TargetContext = {
        dir: join(dir, `workers-${workers}`),
        fixtures,
        tools,
        plan,
        workers,
        autoCount,
        origin: { http: origin.http, https: origin.https, pids: originPids },
        dnsPort: dns.port,
        edgeCli: options.edgeCli,
        edgeProfile: options.edgeProfile,
      };
      mkdirSync(ctx.dir);
      const running = new Map<TargetId, RunningTarget>();
      for (const id of options.targets) {
        const def = DEFS[id];
        (descriptions.get(id) ?? descriptions.set(id, {}).get(id)!)[String(workers)] = def.describe(workers, autoCount);
        const target = await def.start(ctx);
        running.set(id, target);
        const offered = (['http', 'https', 'h2'] as const).map((p) => `${p} ${target.protocols[p].ok ? 'ok' : 'n/a'}`).join(', ');
        say(`workers ${workers}: ${id} started (${offered})`);
      }
      const driver: DriverOptions = {
        durationS: options.durationS,
        warmupS: options.warmupS,
        loadCpus: plan.load,
        h2load: tools.h2load?.path ?? null,
        wrk: wrkPath,
        dir,
        originPids,
      };
      try {
        for (let round = 1; round <= options.rounds; round++) {
          for (const scenario of scenarios) {
            for (const id of options.targets) {
              done++;
              const target = running.get(id)!;
              const base = { workers, round, scenario: scenario.id, target: id };
              const available = target.protocols[scenario.protocol];
              let record: RunRecord;
              if (!available.ok) {
                record = { ...base, status: 'not-available', reason: available.reason };
              } else if (scenario.driver === 'h2load' && !tools.h2load) {
                record = { ...base, status: 'not-available', reason: 'h2load is not installed (apt-get install nghttp2-client)' };
              } else if (target.pids().length === 0) {
                record = { ...base, status: 'failed', reason: 'the server is no longer running' };
              } else {
                record = await measureOne(base, scenario, available.port, target, driver);
              }
              runs.push(record);
              say(`[${done}/${total}] workers ${workers} round ${round} ${scenario.id} ${id}: ${describeRecord(record)}`);
            }
          }
        }
        // Latency at a fixed offered load, the same for every target: half of what nginx as
        // deployed did in this cell (its median over the rounds above). One run per target.
        for (const scenario of scenarios) {
          const seedRps = runs.filter((r) => r.workers === workers && r.scenario === scenario.id && r.target === 'nginx-seed' && r.status === 'ok').map((r) => r.rps ?? 0);
          const rate = seedRps.length > 0 ? fixedRate(median(seedRps), scenario.connections) : null;
          for (const id of options.targets) {
            const target = running.get(id)!;
            const base = { workers, round: 1, scenario: scenario.id, target: id, phase: 'fixed-rate' as const, ...(rate ? { offered_rps: rate.offered } : {}) };
            const available = target.protocols[scenario.protocol];
            let record: RunRecord;
            if (scenario.driver === 'newconn') record = { ...base, status: 'not-available', reason: 'no fixed-rate run for new connections (the new-connection generator has no pacing)' };
            else if (!rate) record = { ...base, status: 'not-available', reason: 'nginx-seed was not measured in this scenario: no rate to offer' };
            else if (!tools.h2load) record = { ...base, status: 'not-available', reason: 'h2load is not installed (apt-get install nghttp2-client): it paces the fixed-rate runs' };
            else if (!available.ok) record = { ...base, status: 'not-available', reason: available.reason };
            else if (target.pids().length === 0) record = { ...base, status: 'failed', reason: 'the server is no longer running' };
            else record = await measureOne(base, scenario, available.port, target, driver, rate.perConnection);
            runs.push(record);
            if (record.status !== 'not-available' || id === options.targets[0]) {
              say(`workers ${workers} fixed rate ${rate ? rate.offered : '-'} req/s ${scenario.id} ${id}: ${describeRecord(record)}`);
            }
          }
        }
      } finally {
        for (const target of running.values()) await target.stop();
      }
    }
  } finally {
    await origin.proc.stop();
    await dns.close();
  }

  const stamp = new Date(startedAt).toISOString().slice(0, 16).replace('T', '-').replace(':', '') + (options.quick ? '-quick' : '');
  const { summary, flags } = summarize(runs, plan.pinned && plan.origin === plan.load);
  return {
    schema: SCHEMA,
    date: new Date(startedAt).toISOString(),
    stamp,
    quick: options.quick,
    elapsed_s: (Date.now() - startedAt) / 1000,
    options: {
      rounds: options.rounds,
      duration_s: options.durationS,
      warmup_s: options.warmupS,
      workers: options.workers,
      targets: options.targets,
      scenarios: scenarios.map((s) => s.id),
    },
    machine: { ...machineDescription(), node: process.version },
    tools: {
      nginx: tools.nginx?.version ?? null,
      caddy: tools.caddy?.version ?? null,
      h2load: tools.h2load?.version ?? null,
      wrk: tools.wrk?.version ?? null,
      autocannon: autocannonVersion(),
    },
    pinning: plan.description,
    scenarios: scenarios.map(({ id, title, driver, connections, streams }) => ({ id, title, driver: driverOf(driver), connections, ...(streams ? { streams } : {}) })),
    targets: options.targets.map((id) => ({ id, label: DEFS[id].label, description: descriptions.get(id) ?? {} })),
    notes: notes(options, plan.pinned),
    runs,
    summary,
    flags,
  };
}

async function measureOne(
  base: Pick<RunRecord, 'workers' | 'round' | 'scenario' | 'target' | 'phase' | 'offered_rps'>,
  scenario: (typeof SCENARIOS)[number],
  port: number,
  target: RunningTarget,
  driver: DriverOptions,
  rate?: number,
): Promise<RunRecord> {
  try {
    const m = await measure(scenario, port, target, driver, rate);
    const r = m.result;
    if (r.requests === 0) return { ...base, status: 'failed', reason: `no request completed during the ${driver.durationS} s run (${r.errors} errors)` };
    return {
      ...base,
      status: 'ok',
      requests: r.requests,
      duration_s: round(r.durationS, 3),
      rps: round(r.rps, 1),
      p50_ms: round(r.p50, 3),
      p99_ms: round(r.p99, 3),
      mb_per_s: round(r.bytesPerS / 1e6, 2),
      errors: r.errors,
      non2xx: r.non2xx,
      proxy_cpu_s: m.proxyCpuS === null ? null : round(m.proxyCpuS, 3),
      cpu_us_per_req: m.cpuUsPerReq === null ? null : round(m.cpuUsPerReq, 2),
      rss_mib: m.rssKiB === null ? null : round(m.rssKiB / 1024, 1),
      processes: m.processes,
      load_cpu: m.loadCpu === null ? null : round(m.loadCpu, 3),
      origin_cpu: m.originCpu === null ? null : round(m.originCpu, 3),
      ...(r.tls ? { tls: r.tls } : {}),
    };
  } catch (err) {
    return { ...base, status: 'failed', reason: (err as Error).message };
  }
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function describeRecord(r: RunRecord): string {
  if (r.status !== 'ok') return `${r.status}: ${r.reason}`;
  const cpu = r.cpu_us_per_req == null ? '' : `, ${Math.round(r.cpu_us_per_req)} us CPU/req`;
  const load = r.load_cpu == null ? '' : `, load gen ${Math.round(r.load_cpu * 100)}% CPU`;
  return `${fmtCount(r.rps)} req/s, p99 ${fmtMs(r.p99_ms)} ms, ${fmtCount(r.mb_per_s)} MB/s${cpu}${load}${r.errors || r.non2xx ? `, ${r.errors} errors, ${r.non2xx} non-2xx` : ''}`;
}

function autocannonVersion(): string | null {
  try {
    return (createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version;
  } catch {
    return null;
  }
}

function notes(options: Options, pinned: boolean): string[] {
  const list = [
    'The origin is nginx serving the three files with sendfile. The "origin" rows hit it directly, on the CPU it shares with the load generator: what that side alone can do. A proxy within 5% of it (or above it: with large bodies a proxy takes part of the copying off that CPU) is flagged as a tie, not ranked.',
    'nginx-seed and opam-edge resolve the origin by name through a DNS server the bench runs (TTL and valid 15 s); nginx-best and Caddy dial 127.0.0.1 directly.',
    'Both nginx set-ups offer h2 on their TLS port (`listen ... ssl http2`) so that HTTP/2 can be compared; the seed text does not show whether its nginx does. Both raise the client-side keepalive_requests from 1000 to 100000: otherwise nginx closes each load-generator connection every 1000 requests (for h2 with a GOAWAY that fails the streams in flight), which real clients, making a few requests per connection, never meet.',
    'opam-edge has no plain-HTTP proxy by design (its port 80 answers ACME challenges and redirects), so its http-* rows are not available.',
    'autocannon appends every response body to a string (for body checks this bench does not use); the load generator turns that off, without which it caps near 50 MB/s.',
    'wrk (or autocannon) and the new-connection generator send HTTP/1.1 without ALPN; h2load negotiates h2. TLS: ECDSA P-256 certificate, no session resumption for new connections; the new-connection generator offers X25519 first, the negotiated group and cipher are given per target. autocannon reports latency in whole milliseconds.',
    `"p99 @ rate": after the capacity rounds, every target is offered the same fixed load, ${FIXED_RATE_FRACTION * 100}% of nginx-seed's median req/s in that scenario, for one run of the same length, paced by h2load --rps (evenly per connection, same connections; --h1 for HTTP/1.1, whose capacity runs use wrk, which has no rate): latency where no target is saturated. Not for tls-new-conn.`,
    'The machine is shared and noisy (rounds can differ by 30%): compare ratios within one run, and CPU per request, the steadiest figure.',
  ];
  if (!pinned) list.push('Processes were not pinned to CPUs (one CPU, or no taskset): the proxy, the origin and the load generator competed for the same CPUs.');
  if (options.quick) list.push('Quick run: one round, workers 1, short runs; indicative only.');
  return list;
}

/** Writes <stamp>.{json,md,svg} into `out` and latest.{json,md,svg} into `latest` (may be the same). */
export function writeResults(results: Results, out: string, latest = out): string[] {
  mkdirSync(out, { recursive: true });
  mkdirSync(latest, { recursive: true });
  const files: string[] = [];
  const put = (name: string, content: string, dir = out) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    files.push(path);
  };
  put(`${results.stamp}.json`, `${JSON.stringify(results, null, 2)}\n`);
  put(`${results.stamp}.md`, renderMarkdown(results, `${results.stamp}.svg`));
  put(`${results.stamp}.svg`, renderSvg(results));
  copyFileSync(join(out, `${results.stamp}.json`), join(latest, 'latest.json'));
  copyFileSync(join(out, `${results.stamp}.svg`), join(latest, 'latest.svg'));
  put('latest.md', renderMarkdown(results, 'latest.svg'), latest);
  return files;
}

async function main(): Promise<number> {
  const parsed = parseOptions(process.argv.slice(2));
  if ('help' in parsed) {
    process.stdout.write(USAGE);
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`bench: ${parsed.error}\n${USAGE}`);
    return 2;
  }
  const tools = ensureTools(parsed.install, say);
  if (!tools.nginx) {
    say('nginx is required (it is the origin): apt-get install nginx-light, or run the bench as root');
    return 1;
  }
  const budget = estimateSeconds(parsed) * 2 + 120;
  const guard = setTimeout(() => {
    say(`still running after ${budget} s (twice the estimate): stopping`);
    void cleanup().finally(() => process.exit(1));
  }, budget * 1000);
  guard.unref();
  try {
    const results = await bench(parsed, tools);
    const files = writeResults(results, parsed.out, parsed.latest);
    process.stdout.write(`${renderText(results)}\n\n`);
    for (const f of results.flags) process.stdout.write(`! workers ${f.workers}, ${f.scenario}: ${f.flag}\n`);
    say(`wrote ${files.join(', ')}`);
    return 0;
  } catch (err) {
    say(`failed: ${(err as Error).stack ?? String(err)}`);
    return 1;
  } finally {
    clearTimeout(guard);
    await cleanup();
  }
}

if (import.meta.main) main().then((code) => process.exit(code));
