// What the bench and a load-generator child process say to each other over IPC. The child
// warms up, says "ready"; the bench samples the proxy's CPU and says "go"; the child runs the
// measured load and sends "result"; the bench samples again and says "bye". The child exits
// on "bye" or when the IPC channel closes (the bench died), so it never outlives the bench.

export type LoadSpec = {
  port: number;
  tls: boolean;
  path: string;
  /** Host header and TLS SNI. */
  host: string;
  connections: number;
  durationS: number;
  warmupS: number;
};

/** The figures every driver produces. Latencies in ms, throughput in bytes per second. */
export type LoadResult = {
  requests: number;
  durationS: number;
  rps: number;
  p50: number;
  p99: number;
  bytesPerS: number;
  errors: number;
  non2xx: number;
  /** New TLS connections: the key exchange group, cipher and version negotiated. */
  tls?: string;
};

export type ChildMessage = { type: 'ready' } | { type: 'result'; result: LoadResult } | { type: 'failed'; error: string };
export type ParentMessage = { type: 'go' } | { type: 'bye' };

/** Child side: wait for "go", run, report, then wait for "bye". */
export function serveOneRun(run: (spec: LoadSpec) => Promise<LoadResult>, warmup: (spec: LoadSpec) => Promise<void>): void {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const send = (message: ChildMessage) => process.send?.(message);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'go') {
      run(spec).then(
        (result) => send({ type: 'result', result }),
        (err: unknown) => send({ type: 'failed', error: String((err as Error)?.message ?? err) }),
      );
    } else if (message.type === 'bye') {
      process.exit(0);
    }
  });
  warmup(spec).then(
    () => send({ type: 'ready' }),
    (err: unknown) => send({ type: 'failed', error: `warm-up: ${String((err as Error)?.message ?? err)}` }),
  );
}
