// Waiting for an event in a list that grows as a log is read: the in-memory log of an
// in-process edge, and the JSON events of an opam-edge child process.

export type WaitOptions = {
  timeoutMs: number;
  /** Look at events from this index on (a restarted process's new run). */
  from?: number;
  /** Prefix and tail of the timeout error (recent events, stderr). */
  describe: () => string;
  /** A reason when waiting is pointless (the process exited), else null. */
  gone?: () => string | null;
};

export class EventWaiters<E> {
  readonly #waiters = new Set<() => void>();

  /** Wakes every waiter: call after the list grew or the source ended. */
  notify(): void {
    for (const w of this.#waiters) w();
  }

  /** The first event of `events` (from `options.from`) that matches, as soon as there is one. */
  waitFor(events: readonly E[], match: (e: E) => boolean, options: WaitOptions): Promise<E> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = events.slice(options.from ?? 0).find(match);
        const gone = found === undefined ? (options.gone?.() ?? null) : null;
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (gone !== null) {
          done();
          reject(new Error(gone));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for an event; ${options.describe()}`));
      }, options.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}
