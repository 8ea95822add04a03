// One opam-edge node as a real process inside a network namespace: its config file, its
// JSON events (stderr) and its JSON access log (stdout), kill and restart.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { EventWaiters } from '../../helpers/event-waiters.ts';

export type Event = { level: string; event: string; [key: string]: unknown };
export type AccessLine = { remote_addr: string; request: string; status: number; host: string; [key: string]: unknown };

export type NodeProcess = {
  name: string;
  /** Events and access lines of every run of this node (restarts included), in order. */
  events: Event[];
  access: AccessLine[];
  /** Index into `events` where the current run began. */
  runStart: number;
  waitFor(match: (e: Event) => boolean, timeoutMs?: number, from?: number): Promise<Event>;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
  get running(): boolean;
};

export function nodeProcess(options: { name: string; dir: string; wrap: string[]; entry: string; config: unknown }): NodeProcess {
  mkdirSync(options.dir, { recursive: true });
  const configPath = join(options.dir, 'config.yaml');
  writeFileSync(configPath, stringify(options.config));
  const events: Event[] = [];
  const access: AccessLine[] = [];
  const waiters = new EventWaiters<Event>();
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stderrTail = '';

  const lines = (stream: NodeJS.ReadableStream, onLine: (line: string) => void) => {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
      waiters.notify();
    });
  };

  const node: NodeProcess = {
    name: options.name,
    events,
    access,
    runStart: 0,
    get running() {
      return child !== null && child.exitCode === null && child.signalCode === null;
    },
    waitFor: (match, timeoutMs = 30_000, from = 0) =>
      waiters.waitFor(events, match, {
        timeoutMs,
        from,
        describe: () => `${options.name}: last: ${JSON.stringify(events.slice(-6))} stderr: ${stderrTail}`,
      }),
    async start() {
      node.runStart = events.length;
      const [cmd, ...args] = [...options.wrap, process.execPath, options.entry, '--config', configPath];
      const proc = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OPAM_EDGE_LOG_LEVEL: 'info' } });
      child = proc;
      exited = new Promise((resolve) => proc.once('exit', () => resolve()));
      lines(proc.stderr!, (line) => {
        try {
          events.push({ ...(JSON.parse(line) as Event), node: options.name });
        } catch {
          stderrTail = (stderrTail + line + '\n').slice(-3000);
        }
      });
      lines(proc.stdout!, (line) => {
        try {
          access.push(JSON.parse(line) as AccessLine);
        } catch {}
      });
      await node.waitFor((e) => e.event === 'started', 20_000, node.runStart);
    },
    async stop() {
      if (!node.running) return;
      child!.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
    async kill9() {
      if (!node.running) return;
      child!.kill('SIGKILL');
      await exited;
    },
  };
  return node;
}
