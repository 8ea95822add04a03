// The one in-memory EventLog for tests: keeps every event flat ({ level, event, ...fields },
// as the real JSON log writes it), with a filter by name and a way to wait for one.

import type { EventLog, Fields } from '../../src/log.ts';
import { EventWaiters } from './event-waiters.ts';

export type MemoryEvent = { level: string; event: string } & Fields;

export type MemoryLog = EventLog & {
  events: MemoryEvent[];
  waitFor(match: (e: MemoryEvent) => boolean, timeoutMs?: number): Promise<MemoryEvent>;
  /** Events named `name`, in order. */
  named(name: string): MemoryEvent[];
};

/** `echo` (or OPAM_EDGE_TEST_ECHO in the environment) also writes each event to stderr. */
export function memoryLog(options: { echo?: boolean } = {}): MemoryLog {
  const events: MemoryEvent[] = [];
  const waiters = new EventWaiters<MemoryEvent>();
  const push = (level: string) => (event: string, fields: Fields = {}) => {
    const e = { level, event, ...fields } as MemoryEvent;
    events.push(e);
    if (options.echo || process.env.OPAM_EDGE_TEST_ECHO) process.stderr.write(`${JSON.stringify(e)}\n`);
    waiters.notify();
  };
  return {
    events,
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    named: (name) => events.filter((e) => e.event === name),
    waitFor: (match, timeoutMs = 20_000) =>
      waiters.waitFor(events, match, { timeoutMs, describe: () => `last: ${JSON.stringify(events.slice(-6))}` }),
  };
}
