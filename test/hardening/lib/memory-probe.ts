// Preloaded into an opam-edge child by the hardening tests (NODE_OPTIONS="--expose-gc
// --import=.../memory-probe.ts"): on SIGUSR2 it collects garbage and writes one JSON event
// {"event":"memory_probe",...} to stderr, which test/helpers/edge-process.ts collects with the
// others. Test instrumentation only: opam-edge itself has no SIGUSR2 handler.

process.on('SIGUSR2', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const m = process.memoryUsage();
  process.stderr.write(`${JSON.stringify({ level: 'info', event: 'memory_probe', at: Date.now(), rss: m.rss, heap_used: m.heapUsed, heap_total: m.heapTotal, external: m.external, array_buffers: m.arrayBuffers })}\n`);
});
