// One measured run: a scenario against one target's port. The load generator runs in its own
// process (pinned to the load CPU); the proxy's CPU time is sampled from /proc right before
// and right after the measured part (warm-up excluded), and its peak RSS read after it.
// With a rate (requests per second per connection), the run is a fixed-rate one: h2load
// paces every protocol (--h1 for HTTP/1.1), and the figure that matters is its latency.

import { fileURLToPath } from 'node:url';
import { startProcess } from '../lib/processes.ts';
import { cpuDelta, cpuSeconds, peakRssKiB, sampleCpu } from '../lib/proc-stats.ts';
import { SITE_HOST } from '../lib/fixtures.ts';
import type { RunningTarget } from '../targets/target.ts';
import type { Scenario } from './scenarios.ts';
import type { ChildMessage, LoadResult, LoadSpec, ParentMessage } from './protocol.ts';
import { h2Run, h2Warmup } from './h2load.ts';
import { wrkRun, wrkWarmup } from './wrk.ts';

export type Measurement = {
  result: LoadResult;
  /** The proxy's utime + stime over the measured part, all its processes. */
  proxyCpuS: number | null;
  /** Microseconds of proxy CPU per completed request. */
  cpuUsPerReq: number | null;
  /** VmHWM summed over the proxy's processes after the run, KiB. */
  rssKiB: number | null;
  /** Processes measured (master + workers). */
  processes: number;
  /** CPU the load generator used, as a fraction of one CPU (1 = saturated). */
  loadCpu: number | null;
  /** CPU the origin used over the same time, as a fraction of one CPU. */
  originCpu: number | null;
};

export type DriverOptions = {
  durationS: number;
  warmupS: number;
  loadCpus: string | null;
  h2load: string | null;
  /** wrk's path when it drives the HTTP/1.1 keep-alive scenarios instead of autocannon. */
  wrk: string | null;
  dir: string;
  originPids: () => number[];
};

const CHILDREN: Record<'autocannon' | 'newconn', string> = {
  autocannon: fileURLToPath(new URL('./autocannon-child.ts', import.meta.url)),
  newconn: fileURLToPath(new URL('./newconn-child.ts', import.meta.url)),
};

export async function measure(scenario: Scenario, port: number, target: RunningTarget, options: DriverOptions, rate?: number): Promise<Measurement> {
  const spec: LoadSpec = {
    port,
    tls: scenario.protocol !== 'http',
    path: `/${scenario.file}`,
    host: SITE_HOST,
    connections: scenario.connections,
    durationS: options.durationS,
    warmupS: options.warmupS,
  };
  let pids: number[] = [];
  let before = new Map<number, number>();
  let proxyCpuS: number | null = null;
  let originBefore = new Map<number, number>();
  let originCpuS: number | null = null;
  const begin = () => {
    pids = target.pids();
    before = sampleCpu(pids);
    originBefore = sampleCpu(options.originPids());
  };
  const end = () => {
    const after = sampleCpu(target.pids());
    proxyCpuS = after.size > 0 ? cpuDelta(before, after) : null;
    const originAfter = sampleCpu(options.originPids());
    originCpuS = originAfter.size > 0 ? cpuDelta(originBefore, originAfter) : null;
  };

  let result: LoadResult;
  let loadCpuS: number | null;
  let wallS: number;
  if (rate !== undefined && scenario.driver === 'newconn') throw new Error('no fixed-rate run for new connections');
  if (scenario.driver === 'h2load' || rate !== undefined) {
    if (!options.h2load) throw new Error('h2load is not installed (apt-get install nghttp2-client)');
    const h1 = scenario.protocol !== 'h2';
    const h2 = { ...spec, streams: h1 ? 1 : (scenario.streams ?? 1), h2load: options.h2load, cpus: options.loadCpus, dir: options.dir, h1, rps: rate };
    await h2Warmup(h2);
    const run = await h2Run(h2, begin, end);
    result = run.result;
    loadCpuS = run.loadCpuS;
    wallS = result.durationS;
  } else if (scenario.driver === 'autocannon' && options.wrk) {
    const spec2 = { ...spec, wrk: options.wrk, cpus: options.loadCpus };
    await wrkWarmup(spec2);
    const run = await wrkRun(spec2, begin, end);
    result = run.result;
    loadCpuS = run.loadCpuS;
    wallS = result.durationS;
  } else {
    ({ result, loadCpuS, wallS } = await runChild(CHILDREN[scenario.driver], spec, options, begin, end));
  }
  const measuredPids = target.pids();
  return {
    result,
    proxyCpuS,
    cpuUsPerReq: proxyCpuS !== null && result.requests > 0 ? (proxyCpuS * 1e6) / result.requests : null,
    rssKiB: peakRssKiB(measuredPids),
    processes: measuredPids.length,
    loadCpu: loadCpuS !== null && wallS > 0 ? loadCpuS / wallS : null,
    originCpu: originCpuS !== null && wallS > 0 ? originCpuS / wallS : null,
  };
}

/** Runs a node load generator child through ready -> go -> result -> bye, with a deadline. */
async function runChild(
  script: string,
  spec: LoadSpec,
  options: DriverOptions,
  begin: () => void,
  end: () => void,
): Promise<{ result: LoadResult; loadCpuS: number | null; wallS: number }> {
  const proc = startProcess('load', process.execPath, [script, JSON.stringify(spec)], { cpus: options.loadCpus, ipc: true });
  const limitMs = (spec.warmupS + spec.durationS + 30) * 1000;
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load generator still running after ${limitMs / 1000} s`)), limitMs);
      let childBefore: number | null = null;
      let started = 0;
      const send = (message: ParentMessage) => proc.child.send(message);
      proc.child.on('message', (message: ChildMessage) => {
        if (message.type === 'ready') {
          begin();
          childBefore = cpuSeconds(proc.pid);
          started = performance.now();
          send({ type: 'go' });
        } else if (message.type === 'result') {
          end();
          const wallS = (performance.now() - started) / 1000;
          const childAfter = cpuSeconds(proc.pid);
          clearTimeout(timer);
          send({ type: 'bye' });
          resolve({
            result: message.result,
            loadCpuS: childBefore !== null && childAfter !== null ? childAfter - childBefore : null,
            wallS,
          });
        } else {
          clearTimeout(timer);
          reject(new Error(message.error));
        }
      });
      void proc.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`load generator exited (${code ?? signal}): ${proc.tail().split('\n').slice(-3).join(' | ')}`));
      });
    });
  } finally {
    await proc.stop(2000);
  }
}
