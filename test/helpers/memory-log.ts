// An EventLog that keeps what it is given, for tests that assert on events.

import type { EventLog, Fields } from '../../src/log.ts';

export type LoggedEvent = { level: string; event: string } & Fields;

export function memoryLog(): { log: EventLog; events: LoggedEvent[]; named: (event: string) => LoggedEvent[] } {
  const events: LoggedEvent[] = [];
  const push = (level: string) => (event: string, fields: Fields = {}) => void events.push({ ...fields, level, event });
  return {
    log: { debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') },
    events,
    named: (event) => events.filter((e) => e.event === event),
  };
}
