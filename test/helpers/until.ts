// Polls a condition every 20 ms until it holds; fails after `ms` naming what it waited for.

/** Resolves with the milliseconds it took. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<number> {
  const started = Date.now();
  while (!cond()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}
