// A target is one thing the load generators hit: the bare origin, or a proxy in front of it.
// Each one starts from a generated config on loopback ports and reports, per protocol, either
// the port to drive or why it is not available (so a proxy that cannot do TLS yet becomes
// "not available" in the results instead of stopping the run).

import type { Fixtures } from '../lib/fixtures.ts';
import { freePort } from '../../test/helpers/ports.ts';
import type { CpuPlan, Tools } from '../lib/tools.ts';
import type { Managed } from '../lib/processes.ts';
import { startProcess } from '../lib/processes.ts';
import { alpnOf, getStatus, waitFor200 } from '../lib/probe.ts';
import { processTree } from '../lib/proc-stats.ts';

export const TARGET_IDS = ['origin', 'nginx-seed', 'nginx-best', 'caddy', 'opam-edge', 'opam-edge-admin'] as const;
export type TargetId = (typeof TARGET_IDS)[number];
/** What runs without --targets: opam-edge-admin (the cost of metrics) only when asked for. */
export const DEFAULT_TARGETS: readonly TargetId[] = TARGET_IDS.filter((t) => t !== 'opam-edge-admin');

export const PROTOCOLS = ['http', 'https', 'h2'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export type WorkerSet = 1 | 'auto';

export type Availability = { ok: true; port: number } | { ok: false; reason: string };

export type TargetContext = {
  dir: string;
  fixtures: Fixtures;
  tools: Tools;
  plan: CpuPlan;
  workers: WorkerSet;
  /** Worker processes for "auto": one per CPU. */
  autoCount: number;
  origin: { http: number; https: number; pids(): number[] };
  dnsPort: number;
  /** opam-edge's entry point (src/cli.ts). */
  edgeCli: string;
  /** --edge-profile: opam-edge's CPU profiles go here. */
  edgeProfile: string | null;
};

export type RunningTarget = {
  id: TargetId;
  /** The pids to measure (the process tree: master + workers). */
  pids(): number[];
  protocols: Record<Protocol, Availability>;
  stop(): Promise<void>;
};

export type TargetDef = {
  id: TargetId;
  label: string;
  /** One sentence for the results: what this target is and how it is configured. */
  describe(workers: WorkerSet, autoCount: number): string;
  start(ctx: TargetContext): Promise<RunningTarget>;
};

/** The CPUs a proxy runs on: CPU 0 for one worker, every CPU for "auto". */
export function proxyCpus(ctx: TargetContext): string | null {
  return ctx.workers === 1 ? ctx.plan.proxy : ctx.plan.proxyAll;
}

export function workerCount(ctx: TargetContext): number {
  return ctx.workers === 1 ? 1 : ctx.autoCount;
}

export function unavailable(id: TargetId, reason: string): RunningTarget {
  const no: Availability = { ok: false, reason };
  return { id, pids: () => [], protocols: { http: no, https: no, h2: no }, stop: async () => {} };
}

export type ServerSpec = {
  id: TargetId;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cpus: string | null;
  http: number | null;
  https: number | null;
  /** Why there is no plain HTTP proxy port, when `http` is null. */
  noHttpReason?: string;
  /** Give up on readiness this long after the process says it has started (text on its output). */
  startedMarker?: string;
  readyTimeoutMs?: number;
};

/** Starts a server and probes what it offers. A server that does not come up is stopped. */
export async function startServer(spec: ServerSpec): Promise<RunningTarget> {
  const proc = startProcess(spec.id, spec.command, spec.args, { cpus: spec.cpus, env: spec.env });
  const started = Date.now();
  let deadline = started + (spec.readyTimeoutMs ?? 15_000);
  if (spec.startedMarker) {
    const marker = spec.startedMarker;
    const watch = () => {
      if (!proc.tail().includes(marker)) return;
      deadline = Math.min(deadline, Date.now() + 3000);
      proc.child.stdout?.off('data', watch);
      proc.child.stderr?.off('data', watch);
    };
    proc.child.stdout?.on('data', watch);
    proc.child.stderr?.on('data', watch);
  }
  const gone = () => {
    if (proc.isRunning()) return null;
    const how = proc.child.signalCode ? `signal ${proc.child.signalCode}` : `code ${proc.child.exitCode}`;
    return `exited during start-up (${how}): ${lastLines(proc)}`;
  };
  const protocols: Record<Protocol, Availability> = {
    http: { ok: false, reason: spec.noHttpReason ?? 'no plain HTTP port' },
    https: { ok: false, reason: 'no TLS port' },
    h2: { ok: false, reason: 'no TLS port' },
  };
  if (spec.http !== null) {
    const port = spec.http;
    const failure = await waitFor200(() => getStatus(port, false), () => deadline, gone);
    protocols.http = failure ? { ok: false, reason: `http port ${port}: ${failure}` } : { ok: true, port };
  }
  if (spec.https !== null) {
    const port = spec.https;
    const failure = await waitFor200(() => getStatus(port, true), () => deadline, gone);
    if (failure) {
      protocols.https = { ok: false, reason: `https port ${port}: ${failure}` };
      protocols.h2 = protocols.https;
    } else {
      protocols.https = { ok: true, port };
      const alpn = await alpnOf(port).catch((err: Error) => `error: ${err.message}`);
      protocols.h2 = alpn === 'h2' ? { ok: true, port } : { ok: false, reason: `ALPN chose "${alpn || 'nothing'}", not h2` };
    }
  }
  if (!PROTOCOLS.some((p) => protocols[p].ok)) {
    await proc.stop(2000);
  }
  return {
    id: spec.id,
    pids: () => (proc.isRunning() ? processTree(proc.pid) : []),
    protocols,
    stop: () => proc.stop(),
  };
}

function lastLines(proc: Managed): string {
  return proc.tail().split('\n').slice(-3).join(' | ').slice(0, 400) || 'no output';
}

export { freePort };
