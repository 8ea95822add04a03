// An EventLog that keeps every event in memory, with a way to wait for one.

import type { EventLog, Fields } from '../../src/log.ts';

export type MemoryEvent = { level: string; event: string } & Fields;

export type MemoryLog = EventLog & {
  events: MemoryEvent[];
  waitFor(match: (e: MemoryEvent) => boolean, timeoutMs?: number): Promise<MemoryEvent>;
  /** Events named `name`, in order. */
  named(name: string): MemoryEvent[];
};

export function memoryLog(options: { echo?: boolean } = {}): MemoryLog {
  const events: MemoryEvent[] = [];
  const waiters = new Set<() => void>();
  const push = (level: string) => (event: string, fields: Fields = {}) => {
    const e = { level, event, ...fields } as MemoryEvent;
    events.push(e);
    if (options.echo || process.env.OPAM_EDGE_TEST_ECHO) process.stderr.write(`${JSON.stringify(e)}\n`);
    for (const w of waiters) w();
  };
  return {
    events,
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    named: (name) => events.filter((e) => e.event === name),
    waitFor(match, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find(match);
          if (found) {
            done();
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for an event; last: ${JSON.stringify(events.slice(-6))}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
