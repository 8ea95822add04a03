// V8 heap settings that can be changed at run time, so they hold however the process was
// started (container ENTRYPOINT, the installed `opam-edge` command, `npm start`, a cluster
// worker). The young-generation size cannot: it is a node flag in the ENTRYPOINT.

import { setFlagsFromString } from 'node:v8';

/**
 * The old generation grows to 2.5x what survived the last full collection before the next
 * one, instead of V8's own factor of up to 4x. Measured (bench, 3 rounds, workers 1): peak
 * RSS over the run 268-275 -> 205-213 MiB; CPU per request https-100k 79-86 -> 76-77 us,
 * h2-1k equal, h2-100k 83-84 -> 95-97 us. 50 % was too tight: 100 KiB cost 2.4x the CPU.
 */
export const HEAP_GROWING_PERCENT = 150;

/** Applies the settings, unless the operator gave node the same flag. */
export function tuneHeap(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
