// The programs the bench drives: nginx (origin and two proxy set-ups), Caddy, h2load (the
// HTTP/2 load generator), wrk (the HTTP/1.1 one) and taskset. Missing Debian packages are installed with apt-get when
// the bench runs as root, unless --no-install; otherwise the bench says how and carries on
// with what it has (nginx is the origin, so it is the one hard requirement).

import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export type Tool = { path: string; version: string } | null;

export type Tools = {
  nginx: Tool;
  caddy: Tool;
  h2load: Tool;
  wrk: Tool;
  taskset: Tool;
};

const PACKAGES: Record<'nginx' | 'caddy' | 'h2load' | 'wrk', string> = {
  nginx: 'nginx-light',
  caddy: 'caddy',
  h2load: 'nghttp2-client',
  wrk: 'wrk',
};

function which(name: string): string | null {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/bin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')]) {
    if (!dir) continue;
    const path = `${dir}/${name}`;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // Not there.
    }
  }
  return null;
}

function versionOf(path: string, args: string[], pattern: RegExp): string {
  const out = spawnSync(path, args, { encoding: 'utf8', timeout: 5000 });
  const text = `${out.stdout ?? ''}${out.stderr ?? ''}`;
  return pattern.exec(text)?.[1] ?? text.trim().split('\n')[0] ?? 'unknown';
}

export function findTools(): Tools {
  const nginx = which('nginx');
  const caddy = which('caddy');
  const h2load = which('h2load');
  const wrk = which('wrk');
  const taskset = which('taskset');
  return {
    nginx: nginx ? { path: nginx, version: versionOf(nginx, ['-v'], /nginx\/(\S+)/) } : null,
    caddy: caddy ? { path: caddy, version: versionOf(caddy, ['version'], /^v?(\S+)/) } : null,
    h2load: h2load ? { path: h2load, version: versionOf(h2load, ['--version'], /nghttp2\/(\S+)/) } : null,
    wrk: wrk ? { path: wrk, version: versionOf(wrk, ['--version'], /wrk (?:debian\/)?(\S+)/) } : null,
    taskset: taskset ? { path: taskset, version: versionOf(taskset, ['--version'], /(\d[\d.]*)/) } : null,
  };
}

/** Installs what is missing (root + apt-get), or prints the command. Returns the tools found after. */
export function ensureTools(install: boolean, say: (line: string) => void): Tools {
  let tools = findTools();
  const missing = (Object.keys(PACKAGES) as (keyof typeof PACKAGES)[]).filter((k) => tools[k] === null).map((k) => PACKAGES[k]);
  if (missing.length === 0) return tools;
  const isRoot = process.getuid?.() === 0;
  if (install && isRoot && which('apt-get')) {
    say(`installing ${missing.join(', ')} with apt-get (the bench runs as root)...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const attempt = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env, timeout: 300_000 });
    if (attempt().status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit', env, timeout: 300_000 });
      attempt();
    }
    // The nginx package starts a system nginx on :80; the bench uses its own high loopback
    // ports, so that one does not collide and is left as the package configured it.
    tools = findTools();
  } else {
    say(`missing: ${missing.join(', ')}; install with: sudo apt-get install ${missing.join(' ')}`);
  }
  return tools;
}

/**
 * Where each role runs. Two CPUs or more: the proxy alone on CPU 0, the origin and the load
 * generator on CPU 1 (on three or more, the origin gets CPU 2). With one CPU or no taskset,
 * nothing is pinned and the results say so.
 */
export type CpuPlan = {
  pinned: boolean;
  count: number;
  proxy: string | null;
  /** The proxy set for workers "auto": every CPU (one worker per CPU, like a deployment). */
  proxyAll: string | null;
  origin: string | null;
  load: string | null;
  /** Where things ran, per worker set ("1", "auto"), for the results. */
  description: Record<string, string>;
};

export function cpuPlan(tools: Tools): CpuPlan {
  const count = cpus().length;
  if (!tools.taskset || count < 2) {
    const none = `not pinned (${tools.taskset ? `${count} CPU` : 'no taskset'})`;
    return { pinned: false, count, proxy: null, proxyAll: null, origin: null, load: null, description: { '1': none, auto: none } };
  }
  const origin = count >= 3 ? '2' : '1';
  return {
    pinned: true,
    count,
    proxy: '0',
    proxyAll: `0-${count - 1}`,
    origin,
    load: '1',
    description: {
      '1': count >= 3 ? 'proxy on CPU 0, load generator on CPU 1, origin on CPU 2' : 'proxy on CPU 0, origin + load generator on CPU 1',
      auto: `proxy on every CPU (${count} workers), ${count >= 3 ? 'load generator on CPU 1, origin on CPU 2' : 'origin + load generator on CPU 1'}`,
    },
  };
}

/** One line that says what the machine is, for the results. */
export function machineDescription(): { cpus: number; model: string; kernel: string; memory_gib: number } {
  const list = cpus();
  let kernel = 'unknown';
  try {
    kernel = execFileSync('uname', ['-sr'], { encoding: 'utf8' }).trim();
  } catch {
    // Not fatal.
  }
  let memory = 0;
  try {
    memory = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024 / 1024;
  } catch {
    // Not fatal.
  }
  return { cpus: list.length, model: list[0]?.model.trim() ?? 'unknown', kernel, memory_gib: Math.round(memory * 10) / 10 };
}
