// Where opam-edge's CPU time goes: the top frames by self time of one or more V8 CPU
// profiles (`npm run bench -- --edge-profile DIR` writes them). Several files are summed,
// so the profiles of all workers of one run read as one.
//
//   node bench/profile-top.ts [--top N] FILE.cpuprofile...

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

type Frame = { functionName: string; url: string; lineNumber: number };
type Node = { id: number; callFrame: Frame; children?: number[] };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[] };

function frameKey(f: Frame): string {
  const name = f.functionName || '(anonymous)';
  if (!f.url) return name;
  const url = f.url.startsWith('file://') ? relative(process.cwd(), new URL(f.url).pathname) : f.url;
  return `${name} ${url}:${f.lineNumber + 1}`;
}

function main(argv: string[]): void {
  let top = 25;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--top') top = Number(argv[++i]);
    else files.push(argv[i]!);
  }
  if (files.length === 0 || !Number.isFinite(top)) {
    process.stderr.write('usage: node bench/profile-top.ts [--top N] FILE.cpuprofile...\n');
    process.exit(2);
  }
  const self = new Map<string, number>();
  // Time by area of the code: ours (src/), a dependency, node's own JS, or native/GC/idle.
  const area = new Map<string, number>();
  let total = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < profile.samples.length; i++) {
      const node = byId.get(profile.samples[i]!);
      const dt = profile.timeDeltas[i] ?? 0;
      if (!node || dt < 0) continue;
      const key = frameKey(node.callFrame);
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
      const url = node.callFrame.url;
      const kind = url.includes('/node_modules/')
        ? `dependency ${url.split('/node_modules/').pop()!.split('/')[0]}`
        : url.includes('/src/') && url.startsWith('file://')
          ? 'opam-edge src/'
          : url.startsWith('node:')
            ? 'node (JS)'
            : node.callFrame.functionName.startsWith('(')
              ? node.callFrame.functionName
              : 'native';
      area.set(kind, (area.get(kind) ?? 0) + dt);
    }
  }
  const busy = total - (self.get('(idle)') ?? 0);
  const pct = (v: number, of: number) => `${((100 * v) / of).toFixed(1).padStart(5)}%`;
  process.stdout.write(`${files.length} profile(s), ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy\n\n`);
  process.stdout.write('by area (share of busy time):\n');
  for (const [k, v] of [...area].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1])) {
    process.stdout.write(`  ${pct(v, busy)}  ${k}\n`);
  }
  process.stdout.write(`\ntop ${top} frames by self time (share of busy time):\n`);
  for (const [k, v] of [...self].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`  ${pct(v, busy)}  ${k}\n`);
  }
}

main(process.argv.slice(2));
