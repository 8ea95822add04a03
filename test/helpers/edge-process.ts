// Runs opam-edge as a real process (node src/cli.ts) with a config file written to a
// temporary directory, and reads its JSON events from stderr. Ports are 0 in test configs;
// the "listening" events say which ports the kernel gave.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { EventWaiters } from './event-waiters.ts';

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export type EdgeEvent = { level: string; event: string; [key: string]: unknown };

export type EdgeProcess = {
  child: ChildProcess;
  dir: string;
  configPath: string;
  events: EdgeEvent[];
  stdout: string[];
  /** Bound ports by role, in config order: { http: [..], https: [..], admin: [..] }. */
  ports: Record<string, number[]>;
  waitForEvent(match: (e: EdgeEvent) => boolean, timeoutMs?: number): Promise<EdgeEvent>;
  writeConfig(config: unknown): void;
  signal(sig: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
};

/** A fresh temporary directory, removed by the caller (usually in t.after). */
export function tempDir(prefix = 'opam-edge-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startEdgeProcess(
  config: unknown,
  options: { env?: Record<string, string>; args?: string[]; nodeArgs?: string[]; waitFor?: string; dir?: string } = {},
): Promise<EdgeProcess> {
  const dir = options.dir ?? tempDir();
  const configPath = join(dir, 'config.yaml');
  const writeConfig = (c: unknown) => writeFileSync(configPath, typeof c === 'string' ? c : stringify(c));
  writeConfig(config);
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, '--config', configPath, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: EdgeEvent[] = [];
  const stdout: string[] = [];
  const ports: Record<string, number[]> = {};
  const waiters = new EventWaiters<EdgeEvent>();
  let stderrTail = '';
  let buffered = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        const event = JSON.parse(line) as EdgeEvent;
        events.push(event);
        if (event.event === 'listening') {
          const bound = String(event.bound);
          (ports[String(event.role)] ??= []).push(Number(bound.slice(bound.lastIndexOf(':') + 1)));
        }
      } catch {
        stderrTail = (stderrTail + line + '\n').slice(-4000);
      }
      waiters.notify();
    }
  });
  let outBuffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    outBuffered += chunk;
    let nl;
    while ((nl = outBuffered.indexOf('\n')) >= 0) {
      stdout.push(outBuffered.slice(0, nl));
      outBuffered = outBuffered.slice(nl + 1);
    }
    waiters.notify();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      waiters.notify();
      resolve({ code, signal });
    });
  });
  const waitForEvent = (match: (e: EdgeEvent) => boolean, timeoutMs = 10_000) =>
    waiters.waitFor(events, match, {
      timeoutMs,
      describe: () => `last events: ${JSON.stringify(events.slice(-5))} stderr: ${stderrTail}`,
      gone: () =>
        child.exitCode !== null || child.signalCode !== null
          ? `opam-edge exited (${child.exitCode ?? child.signalCode}) before the expected event; stderr: ${stderrTail}`
          : null,
    });
  const edge: EdgeProcess = {
    child,
    dir,
    configPath,
    events,
    stdout,
    ports,
    waitForEvent,
    writeConfig,
    exited,
    signal: (sig) => child.kill(sig),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 35_000);
        await exited;
        clearTimeout(timer);
      }
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  const wanted = options.waitFor ?? 'started';
  await waitForEvent((e) => e.event === wanted);
  return edge;
}
