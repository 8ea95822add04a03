// Network namespaces for the two-node test, made and removed by the test itself:
//
//   oe-PID-RAND-ca   the CA side: a bridge (br0) with .1, Pebble and its DNS server
//   oe-PID-RAND-a    node A: one veth onto the bridge, .2 and ::2
//   oe-PID-RAND-b    node B: one veth onto the bridge, .3 and ::3
//   (root)           a veth onto the bridge with .254 and ::fe, so the test process itself
//                    reaches every node (admin API, Pebble's management, the origin)
//
// Addresses are 10.231.K.0/24 and fd42:231:K::/64 with K chosen per run. Deleting the CA
// namespace destroys the bridge ports and with them the root's veth. Namespaces left by a
// run that died (its PID is gone) are removed, with whatever still runs in them, by the
// next run's sweepStale().

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';

const PREFIX = 'oe-';

export type NodeName = 'ca' | 'a' | 'b';

export type Topology = {
  ns: Record<NodeName, string>;
  v4: Record<NodeName | 'host', string>;
  v6: Record<NodeName | 'host', string>;
  /** Command prefix that runs a program inside a namespace. */
  wrap(node: NodeName): string[];
  destroy(): void;
};

function ip(args: string[], allowFail = false): string {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0 && !allowFail) throw new Error(`ip ${args.join(' ')}: ${result.stderr || result.error}`);
  return result.stdout ?? '';
}

function namespaces(): string[] {
  return ip(['netns', 'list'], true)
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name.startsWith(PREFIX));
}

/** Kills what runs in a namespace (processes a test started there) and deletes it. */
function removeNamespace(name: string): void {
  for (const pid of ip(['netns', 'pids', name], true).split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {}
  }
  ip(['netns', 'del', name], true);
}

/** Removes the namespaces of runs whose process is gone. */
export function sweepStale(): string[] {
  const removed: string[] = [];
  for (const name of namespaces()) {
    const pid = Number(name.slice(PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !existsSync(`/proc/${pid}`)) {
      removeNamespace(name);
      removed.push(name);
    }
  }
  return removed;
}

function pickSubnet(): number {
  const routes = ip(['-4', 'route', 'show'], true);
  for (let tries = 0; tries < 50; tries++) {
    const k = 1 + Math.floor(Math.random() * 250);
    if (!routes.includes(`10.231.${k}.`)) return k;
  }
  throw new Error('no free 10.231.K.0/24 subnet');
}

export function createTopology(): Topology {
  const tag = randomBytes(2).toString('hex');
  const base = `${PREFIX}${process.pid}-${tag}`;
  const ns: Record<NodeName, string> = { ca: `${base}-ca`, a: `${base}-a`, b: `${base}-b` };
  const k = pickSubnet();
  const v4 = { ca: `10.231.${k}.1`, a: `10.231.${k}.2`, b: `10.231.${k}.3`, host: `10.231.${k}.254` };
  const v6 = { ca: `fd42:231:${k}::1`, a: `fd42:231:${k}::2`, b: `fd42:231:${k}::3`, host: `fd42:231:${k}::fe` };
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const name of [ns.a, ns.b, ns.ca]) removeNamespace(name);
    ip(['link', 'del', `oe${tag}h`], true);
  };
  try {
    for (const name of Object.values(ns)) {
      ip(['netns', 'add', name]);
      ip(['-n', name, 'link', 'set', 'lo', 'up']);
    }
    ip(['-n', ns.ca, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', ns.ca, 'link', 'set', 'br0', 'up']);
    ip(['-n', ns.ca, 'addr', 'add', `${v4.ca}/24`, 'dev', 'br0']);
    ip(['-n', ns.ca, '-6', 'addr', 'add', `${v6.ca}/64`, 'dev', 'br0', 'nodad']);
    const plug = (end: string, peer: string) => {
      ip(['link', 'add', end, 'type', 'veth', 'peer', 'name', peer]);
      ip(['link', 'set', peer, 'netns', ns.ca]);
      ip(['-n', ns.ca, 'link', 'set', peer, 'master', 'br0', 'up']);
    };
    for (const node of ['a', 'b'] as const) {
      const end = `oe${tag}${node}`;
      plug(end, `${end}p`);
      ip(['link', 'set', end, 'netns', ns[node]]);
      ip(['-n', ns[node], 'link', 'set', end, 'up']);
      ip(['-n', ns[node], 'addr', 'add', `${v4[node]}/24`, 'dev', end]);
      ip(['-n', ns[node], '-6', 'addr', 'add', `${v6[node]}/64`, 'dev', end, 'nodad']);
    }
    const host = `oe${tag}h`;
    plug(host, `${host}p`);
    ip(['link', 'set', host, 'up']);
    ip(['addr', 'add', `${v4.host}/24`, 'dev', host]);
    ip(['-6', 'addr', 'add', `${v6.host}/64`, 'dev', host, 'nodad']);
  } catch (err) {
    destroy();
    throw err;
  }
  return { ns, v4, v6, wrap: (node) => ['ip', 'netns', 'exec', ns[node]], destroy };
}
