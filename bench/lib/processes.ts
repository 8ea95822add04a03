// Every process the bench starts, and the one way they all stop. Servers and load generators
// run in their own process group (detached), so that stopping one kills its workers too
// (nginx master + workers, node cluster) and so that Ctrl-C on the terminal reaches the bench
// first, which then stops them in order. Cleanup runs on completion, on failure, on
// SIGINT/SIGTERM and, as a last resort, synchronously on exit.

import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Managed = {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Last lines of stdout + stderr, for "why did it fail" messages. */
  tail(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
  /** SIGTERM to the group, SIGKILL after `graceMs`. Resolves once the leader has exited. */
  stop(graceMs?: number): Promise<void>;
};

const running = new Set<Managed>();
const tempDirs = new Set<string>();
let hooked = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Spawns `command` in its own process group. `cpus` ("0", "1", "0-1") pins it with taskset
 * when given; taskset execs the command, so the pid is the command's own.
 */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: { cpus?: string | null; env?: NodeJS.ProcessEnv; cwd?: string; ipc?: boolean } = {},
): Managed {
  installCleanupHooks();
  const [file, argv] = options.cpus ? ['taskset', ['-c', options.cpus, command, ...args]] : [command, [...args]];
  const spawnOptions: SpawnOptions = {
    detached: true,
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  };
  const child = spawn(file, argv, spawnOptions);
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      keep(Buffer.from(`spawn failed: ${err.message}\n`));
      resolve({ code: -1, signal: null });
    });
  });
  const managed: Managed = {
    name,
    child,
    pid: child.pid ?? -1,
    tail: () => tail.trim(),
    exited,
    isRunning: () => child.exitCode === null && child.signalCode === null && child.pid !== undefined,
    async stop(graceMs = 5000) {
      if (child.pid !== undefined && managed.isRunning()) {
        killGroup(child.pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      await exited;
    },
  };
  running.add(managed);
  void exited.then(() => {
    // The leader is gone: whatever is left of its group (workers that outlived a crashed
    // master) goes now, while the group id still cannot belong to anyone else.
    if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
    running.delete(managed);
  });
  return managed;
}

/** A temporary directory removed by cleanup(). */
export function makeTempDir(prefix: string): string {
  installCleanupHooks();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Stops every process still running and removes the temporary directories. */
export async function cleanup(): Promise<void> {
  await Promise.all([...running].map((m) => m.stop(3000)));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function cleanupSync(): void {
  for (const m of running) if (m.child.pid !== undefined) killGroup(m.child.pid, 'SIGKILL');
  running.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function installCleanupHooks(): void {
  if (hooked) return;
  hooked = true;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      cleanupSync();
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}, stopping the servers...\n`);
    const force = setTimeout(() => {
      cleanupSync();
      process.exit(130);
    }, 8000);
    force.unref();
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', cleanupSync);
}
