// Polling until something holds, failing after a deadline that names what was awaited.

/**
 * Calls `probe` (sync or async) every `everyMs` until it returns a truthy value, and resolves
 * with that value; fails after `ms` naming `what`.
 */
export async function untilValue<T>(probe: () => T | Promise<T>, ms = 5000, what = 'condition', everyMs = 20): Promise<NonNullable<T>> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Polls a condition every 20 ms until it holds; resolves with the milliseconds it took. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<number> {
  const started = Date.now();
  await untilValue(cond, ms, what);
  return Date.now() - started;
}
