// A clock for the renewal loop that tests move by hand: timers fire in time order as the
// clock passes them, and the loop is let finish its pass after each one.

import type { Clock } from '../../src/acme/renewer.ts';

type Timer = { at: number; fn: () => void };

export class FakeClock implements Clock {
  #now: number;
  readonly #timers = new Set<Timer>();

  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): { clear(): void } {
    const timer = { at: this.#now + Math.max(0, ms), fn };
    this.#timers.add(timer);
    return { clear: () => this.#timers.delete(timer) };
  }

  /** When the earliest pending timer fires, or null. */
  get nextTimer(): number | null {
    let next: number | null = null;
    for (const t of this.#timers) if (next === null || t.at < next) next = t.at;
    return next;
  }

  /** Moves to `to`, firing each timer due on the way at its own time, then `settle()`. */
  async advanceTo(to: number, settle: () => Promise<void>): Promise<void> {
    for (;;) {
      let next: Timer | null = null;
      for (const t of this.#timers) if (t.at <= to && (next === null || t.at < next.at)) next = t;
      if (!next) break;
      this.#timers.delete(next);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await settle();
    }
    this.#now = Math.max(this.#now, to);
  }
}
