// The container's HEALTHCHECK: `node /app/dist/healthcheck.js [--config FILE]`. The image has
// no curl, so node itself probes the running opam-edge. Exit 0 healthy, 1 unhealthy (Docker
// reserves 2); one line on stdout says why, and Docker keeps it in `docker inspect`.
//
// What it probes, from the config the running process uses:
//   `admin` set  -> GET http://ADMIN/healthz must answer 200 (503 carries the reason);
//   otherwise    -> a TCP connection to the first http listener (the first https one when
//                   http is off) must be accepted.
// Which config: --config FILE, else $OPAM_EDGE_CONFIG, else the --config of the running
// opam-edge process (read from /proc, so a changed CMD is followed), else ./opam-edge.yaml
// when it exists, else the image's default /etc/opam-edge/config.yaml (configPath(), which
// `opam-edge status` uses too).
//
// The file is read leniently (the YAML library, no schema): an edited config that the running
// process refused on SIGHUP must not turn into a failing health check and a restart loop.
// It answers "healthy" for ok and degraded (/healthz 200): a restart fixes neither.
// Imports stay small (it runs every 30 s): node's own modules, units.ts and the YAML library
// (about 16 MiB and 20 ms of a probe; the zod schema and the edge are never loaded).

import { existsSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { parseListen } from './units.ts';

export const DEFAULT_CONFIG = '/etc/opam-edge/config.yaml';
const TIMEOUT_MS = 4000;

export type Probe =
  | { kind: 'admin'; host: string; port: number; address: string }
  | { kind: 'tcp'; role: 'http' | 'https'; host: string; port: number; address: string }
  | { kind: 'none'; reason: string };

export type Health = { healthy: boolean; message: string };

/** A wildcard bind address is probed on loopback (IPv4: it answers on a dual-stack socket too). */
function probeHost(host: string): string {
  return host === '::' || host === '0.0.0.0' || host === '' ? '127.0.0.1' : host;
}

function address(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Picks what to probe from a parsed (unvalidated) config, with docs/configuration.md's defaults. */
export function probeFor(raw: unknown): Probe {
  const config = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const admin = typeof config.admin === 'string' || typeof config.admin === 'number' ? parseListen(config.admin) : null;
  if (admin && !('error' in admin) && admin.port !== 0) {
    const host = probeHost(admin.host);
    return { kind: 'admin', host, port: admin.port, address: address(host, admin.port) };
  }
  const listen = (config.listen && typeof config.listen === 'object' ? config.listen : {}) as Record<string, unknown>;
  for (const [role, fallback] of [['http', '[::]:80'], ['https', '[::]:443']] as const) {
    const list = Array.isArray(listen[role]) ? (listen[role] as unknown[]) : [fallback];
    for (const entry of list) {
      if (typeof entry !== 'string' && typeof entry !== 'number') continue;
      const parsed = parseListen(entry);
      if ('error' in parsed || parsed.port === 0) continue;
      const host = probeHost(parsed.host);
      return { kind: 'tcp', role, host, port: parsed.port, address: address(host, parsed.port) };
    }
  }
  return { kind: 'none', reason: 'no admin address and no listener with a fixed port to probe' };
}

const ENTRY_POINTS = ['src/cli.ts', 'dist/cli.js', 'bin/opam-edge.js', 'opam-edge'];

/** The config path in an opam-edge command line, resolved against its working directory. */
export function configFromArgv(argv: readonly string[], cwd: string): string | null {
  const entry = argv.findIndex((a) => ENTRY_POINTS.some((e) => a === e || a.endsWith(`/${e}`)));
  if (entry < 0) return null;
  const args = argv.slice(entry + 1);
  if (args[0] === 'check') return null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if ((arg === '--config' || arg === '-c') && args[i + 1]) return resolve(cwd, args[i + 1]!);
    if (arg.startsWith('--config=') && arg.length > '--config='.length) return resolve(cwd, arg.slice('--config='.length));
  }
  return null;
}

/** The --config of the running opam-edge: PID 1 first (the container's entrypoint), then the rest. */
export async function runningConfig(procDir = '/proc'): Promise<string | null> {
  let pids: string[];
  try {
    pids = (await readdir(procDir)).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
  } catch {
    return null;
  }
  pids.sort((a, b) => Number(a) - Number(b));
  for (const pid of pids) {
    let argv: string[];
    try {
      argv = (await readFile(`${procDir}/${pid}/cmdline`, 'utf8')).split('\0').filter((a) => a !== '');
    } catch {
      continue;
    }
    const cwd = await readlink(`${procDir}/${pid}/cwd`).catch(() => '/');
    const found = configFromArgv(argv, cwd);
    if (found) return found;
  }
  return null;
}

/** FILE of `--config FILE`, `-c FILE` or `--config=FILE` in a probe's own arguments; null without one. */
export function configFlag(argv: readonly string[]): string | null {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if ((arg === '--config' || arg === '-c') && argv[i + 1]) return argv[i + 1]!;
    if (arg.startsWith('--config=') && arg.length > '--config='.length) return arg.slice('--config='.length);
  }
  return null;
}

/**
 * The config a probe (this HEALTHCHECK, `opam-edge status`) reads: FLAG, else
 * $OPAM_EDGE_CONFIG, else the running opam-edge's --config, else ./opam-edge.yaml when it
 * exists, else the image's default.
 */
export async function configPath(flag: string | null, env: NodeJS.ProcessEnv, procDir?: string, cwd = process.cwd()): Promise<string> {
  if (flag) return flag;
  if (env.OPAM_EDGE_CONFIG) return env.OPAM_EDGE_CONFIG;
  const running = await runningConfig(procDir);
  if (running) return running;
  const local = resolve(cwd, 'opam-edge.yaml');
  return existsSync(local) ? local : DEFAULT_CONFIG;
}

/** GET on the admin listener: status and body (up to `limit` characters); rejects on no answer. */
export function adminGet(probe: Extract<Probe, { kind: 'admin' }>, path: string, limit: number): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: probe.host, port: probe.port, path, method: 'GET', timeout: TIMEOUT_MS, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < limit) body += chunk;
      });
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', fail);
    req.end();
  });
}

async function checkAdmin(probe: Extract<Probe, { kind: 'admin' }>): Promise<Health> {
  try {
    const { status, body } = await adminGet(probe, '/healthz', 500);
    const said = body.trim().split('\n')[0]!.slice(0, 200);
    return { healthy: status === 200, message: `admin ${probe.address}/healthz answered ${status}${said ? `: ${said}` : ''}` };
  } catch (err) {
    return { healthy: false, message: `admin ${probe.address}/healthz: ${(err as Error).message}` };
  }
}

function checkTcp(probe: Extract<Probe, { kind: 'tcp' }>): Promise<Health> {
  return new Promise((done) => {
    const socket = connect({ host: probe.host, port: probe.port, timeout: TIMEOUT_MS });
    socket.on('connect', () => {
      socket.destroy();
      done({ healthy: true, message: `${probe.role} listener ${probe.address} accepts connections` });
    });
    socket.on('timeout', () => socket.destroy(new Error(`no connection in ${TIMEOUT_MS} ms`)));
    socket.on('error', (err) => done({ healthy: false, message: `${probe.role} listener ${probe.address}: ${err.message}` }));
  });
}

/** The config's admin and listen keys, read leniently; throws when the file cannot be read or parsed. */
export async function readLenient(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  return (await import('yaml')).parse(text);
}

export async function healthcheck(argv: readonly string[], env: NodeJS.ProcessEnv, procDir?: string): Promise<Health> {
  const path = await configPath(configFlag(argv), env, procDir);
  let raw: unknown = null;
  let note = '';
  try {
    raw = await readLenient(path);
  } catch (err) {
    // Probe the defaults rather than fail: the running process may well be serving them.
    note = ` (config ${path} unreadable: ${(err as Error).message.split('\n')[0]}; probed the defaults)`;
  }
  const probe = probeFor(raw);
  if (probe.kind === 'none') return { healthy: false, message: `${path}: ${probe.reason}` };
  const health = probe.kind === 'admin' ? await checkAdmin(probe) : await checkTcp(probe);
  return { healthy: health.healthy, message: health.message + note };
}

if (import.meta.main) {
  healthcheck(process.argv.slice(2), process.env).then(
    ({ healthy, message }) => {
      process.stdout.write(`${healthy ? 'healthy' : 'unhealthy'}: ${message}\n`);
      process.exit(healthy ? 0 : 1);
    },
    (err: unknown) => {
      process.stdout.write(`unhealthy: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
