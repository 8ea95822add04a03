// The bench's command line. `--quick` is the under-three-minutes run: one round, one worker,
// short runs. Everything else defaults to the full run: three rounds, workers 1 and auto.

import { fileURLToPath } from 'node:url';
import { DEFAULT_TARGETS, TARGET_IDS } from '../targets/target.ts';
import type { TargetId, WorkerSet } from '../targets/target.ts';
import { SCENARIOS } from '../load/scenarios.ts';

export type Options = {
  quick: boolean;
  rounds: number;
  durationS: number;
  warmupS: number;
  workers: WorkerSet[];
  targets: TargetId[];
  scenarios: string[];
  out: string;
  /** Where latest.{json,md,svg} go: reports/bench/ (git-ignored) by default, `out` with --out. */
  latest: string;
  install: boolean;
  /** The opam-edge entry point to run (another checkout's src/cli.ts, to compare). */
  edgeCli: string;
  /** When set, opam-edge runs with --cpu-prof and writes its profiles here. */
  edgeProfile: string | null;
  /** HTTP/1.1 keep-alive load generator: wrk when installed (auto), or the one named. */
  loadgen: 'auto' | 'autocannon' | 'wrk';
};

export const DEFAULT_OUT = fileURLToPath(new URL('../results/', import.meta.url));
// Dated runs are committed; the copy of the last run changes on every run, so it stays out of git.
export const DEFAULT_LATEST = fileURLToPath(new URL('../../reports/bench/', import.meta.url));
export const DEFAULT_EDGE_CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export const USAGE = `Usage: npm run bench -- [options]
  --quick              one round, workers 1 only, 1.5 s runs (under three minutes)
  --rounds N           rounds, targets interleaved in each (default 3)
  --duration S         seconds per measured run (default 5)
  --warmup S           seconds of unmeasured load before each run (default 1)
  --workers LIST       1, auto or 1,auto (default 1,auto)
  --targets LIST       ${TARGET_IDS.join(',')} (default all but opam-edge-admin)
  --scenarios LIST     ${SCENARIOS.map((s) => s.id).join(',')} (default all)
  --out DIR            where results go (default bench/results/, latest.* in reports/bench/)
  --no-install         never apt-get install nginx-light, caddy, nghttp2-client
  --edge-cli FILE      the opam-edge entry point to run (default: this checkout's src/cli.ts)
  --loadgen NAME       HTTP/1.1 load generator: wrk or autocannon (default wrk when installed)
  --edge-profile DIR   run opam-edge under node --cpu-prof, profiles to DIR
                       (read them with: node bench/profile-top.ts DIR/*.cpuprofile)
  --help
`;

export function parseOptions(argv: readonly string[]): Options | { error: string } | { help: true } {
  const options: Options = {
    quick: false,
    rounds: 3,
    durationS: 5,
    warmupS: 1,
    workers: [1, 'auto'],
    targets: [...DEFAULT_TARGETS],
    scenarios: SCENARIOS.map((s) => s.id),
    out: DEFAULT_OUT,
    latest: DEFAULT_LATEST,
    install: true,
    edgeCli: DEFAULT_EDGE_CLI,
    edgeProfile: null,
    loadgen: 'auto',
  };
  const explicit = new Set<string>();
  const args = [...argv];
  const list = (name: string, value: string | undefined, allowed: readonly string[]): string[] | string => {
    if (!value) return `${name} needs a value`;
    const items = value.split(',').map((v) => v.trim()).filter(Boolean);
    const bad = items.filter((v) => !allowed.includes(v));
    return bad.length > 0 ? `${name}: unknown ${bad.join(', ')} (known: ${allowed.join(', ')})` : items;
  };
  const number = (name: string, value: string | undefined, min: number, max: number): number | string => {
    const n = Number(value);
    return value !== undefined && Number.isFinite(n) && n >= min && n <= max ? n : `${name} must be a number from ${min} to ${max}`;
  };
  while (args.length > 0) {
    const arg = args.shift()!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? args.shift();
    explicit.add(flag);
    switch (flag) {
      case '--help':
      case '-h':
        return { help: true };
      case '--quick':
        options.quick = true;
        break;
      case '--no-install':
        options.install = false;
        break;
      case '--rounds': {
        const n = number(flag, value(), 1, 20);
        if (typeof n === 'string') return { error: n };
        options.rounds = Math.round(n);
        break;
      }
      case '--duration': {
        const n = number(flag, value(), 0.5, 120);
        if (typeof n === 'string') return { error: n };
        options.durationS = n;
        break;
      }
      case '--warmup': {
        const n = number(flag, value(), 0, 60);
        if (typeof n === 'string') return { error: n };
        options.warmupS = n;
        break;
      }
      case '--workers': {
        const items = list(flag, value(), ['1', 'auto']);
        if (typeof items === 'string') return { error: items };
        options.workers = items.map((w) => (w === 'auto' ? 'auto' : 1));
        break;
      }
      case '--targets': {
        const items = list(flag, value(), TARGET_IDS);
        if (typeof items === 'string') return { error: items };
        options.targets = TARGET_IDS.filter((t) => items.includes(t));
        break;
      }
      case '--scenarios': {
        const items = list(flag, value(), SCENARIOS.map((s) => s.id));
        if (typeof items === 'string') return { error: items };
        options.scenarios = SCENARIOS.map((s) => s.id).filter((s) => items.includes(s));
        break;
      }
      case '--out': {
        const dir = value();
        if (!dir) return { error: '--out needs a directory' };
        options.out = dir;
        options.latest = dir;
        break;
      }
      case '--edge-cli': {
        const file = value();
        if (!file) return { error: '--edge-cli needs a file' };
        options.edgeCli = file;
        break;
      }
      case '--loadgen': {
        const name = value();
        if (name !== 'wrk' && name !== 'autocannon') return { error: '--loadgen is wrk or autocannon' };
        options.loadgen = name;
        break;
      }
      case '--edge-profile': {
        const dir = value();
        if (!dir) return { error: '--edge-profile needs a directory' };
        options.edgeProfile = dir;
        break;
      }
      default:
        return { error: `unknown option ${arg}` };
    }
  }
  if (options.quick) {
    if (!explicit.has('--rounds')) options.rounds = 1;
    if (!explicit.has('--duration')) options.durationS = 1.5;
    if (!explicit.has('--warmup')) options.warmupS = 0.5;
    if (!explicit.has('--workers')) options.workers = [1];
  }
  return options;
}

/** Seconds the run should take (for the printed estimate and the overall deadline). */
export function estimateSeconds(options: Options): number {
  // Per run: warm-up + measure + about 0.6 s to start a load generator twice (h2load) or once.
  const perRun = options.warmupS + options.durationS + 0.6;
  // The rounds, then one fixed-rate run per target and scenario (none for tls-new-conn).
  const fixed = options.scenarios.filter((s) => s !== 'tls-new-conn').length;
  const runs = (options.rounds * options.scenarios.length + fixed) * options.workers.length * options.targets.length;
  // Start-up of the servers per worker set, and the fixtures.
  return Math.ceil(runs * perRun + options.workers.length * 8 + 5);
}
