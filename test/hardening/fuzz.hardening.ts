// Fuzzing, bounded in count and time and seeded: mutated corpus requests (byte flips,
// splices, truncations, duplicated/dropped/swapped lines, random inserts) and random bytes
// on both ports (port 80 in clear, the https port inside TLS), mutated ClientHellos and
// random TLS records on the https port. Meanwhile a well-behaved client must be served
// every time; afterwards the process is still up, its heap and RSS are back near the
// baseline taken after warm-up, and its file descriptors are back to the baseline.
//
// Reproduce a run: OPAM_EDGE_FUZZ_SEED=<seed printed by the run> npm run test:hardening.
// Bounds: OPAM_EDGE_FUZZ_ITERATIONS (default 6000), OPAM_EDGE_FUZZ_SECONDS (default 120).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadCorpus } from './corpus.ts';
import { startWorld, HOST } from './lib/world.ts';
import { startSteadyClient } from './lib/steady-client.ts';
import { sample, mib, MiB } from './lib/process-stats.ts';
import { mutate, mutateClientHello, randomRecords, rng } from './lib/mutate.ts';
import { captureClientHello, poke } from './lib/poke.ts';
import type { Poke } from './lib/poke.ts';
import { recordFigures } from './lib/figures.ts';

const SEED = Number(process.env.OPAM_EDGE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ITERATIONS = Number(process.env.OPAM_EDGE_FUZZ_ITERATIONS ?? 6000);
const SECONDS = Number(process.env.OPAM_EDGE_FUZZ_SECONDS ?? 120);
const CONCURRENCY = 8;

/** How the iterations are shared out (weights). */
const KINDS = [
  ['mutated request, port 80', 30],
  ['mutated request, https', 30],
  ['random bytes, port 80', 8],
  ['random bytes inside TLS', 7],
  ['mutated ClientHello', 15],
  ['random TLS records', 10],
] as const;
type Kind = (typeof KINDS)[number][0];

function kindOf(i: number): Kind {
  const total = KINDS.reduce((n, [, w]) => n + w, 0);
  let slot = i % total;
  for (const [kind, weight] of KINDS) {
    if (slot < weight) return kind;
    slot -= weight;
  }
  return KINDS[0][0];
}

test('fuzzing both ports and the TLS handshake: the process stays up, others are served, memory comes back', { timeout: 600_000 }, async (t) => {
  process.stderr.write(`\nfuzz seed: ${SEED} (OPAM_EDGE_FUZZ_SEED=${SEED} replays this run)\n`);
  t.diagnostic(`seed ${SEED}; at most ${ITERATIONS} iterations in ${SECONDS} s`);
  const world = await startWorld(t, { probe: true, limits: { header_timeout: '5s', idle_timeout: '10s' } });
  const { edge, httpsPort, httpPort } = world;
  const corpus = loadCorpus().map((c) => c.bytes).filter((b) => b.length < 8192);
  const hellos = [await captureClientHello(HOST, ['h2', 'http/1.1']), await captureClientHello(HOST, ['http/1.1']), await captureClientHello(undefined, [])];

  // Warm-up: the code paths the run will take, then the baseline.
  const warm = startSteadyClient({ httpsPort, httpPort, pauseMs: 2 });
  for (let i = 0; i < 60; i++) await poke(i % 2 ? httpsPort : httpPort, mutate(rng(i), corpus[i % corpus.length]!, corpus), { tls: i % 2 === 1, servername: HOST, waitMs: 100 });
  const warmed = await warm.stop();
  assert.equal(warmed.failed, 0, warmed.errors.join('\n'));
  await new Promise((r) => setTimeout(r, 1000));
  const baseline = await sample(edge);

  const steady = startSteadyClient({ httpsPort, httpPort });
  const started = Date.now();
  const outcomes = new Map<string, number>();
  const perKind = new Map<Kind, number>();
  let done = 0;
  let next = 0;
  const one = async (i: number): Promise<Poke> => {
    const r = rng(SEED + i);
    const kind = kindOf(i);
    perKind.set(kind, (perKind.get(kind) ?? 0) + 1);
    switch (kind) {
      case 'mutated request, port 80':
        return poke(httpPort, mutate(r, r.pick(corpus), corpus));
      case 'mutated request, https':
        return poke(httpsPort, mutate(r, r.pick(corpus), corpus), { tls: true, servername: HOST });
      case 'random bytes, port 80':
        return poke(httpPort, r.bytes(1 + r.int(2048)));
      case 'random bytes inside TLS':
        return poke(httpsPort, r.bytes(1 + r.int(2048)), { tls: true, servername: HOST });
      case 'mutated ClientHello':
        return poke(httpsPort, mutateClientHello(r, r.pick(hellos)));
      case 'random TLS records':
        return poke(httpsPort, randomRecords(r));
    }
  };
  const worker = async () => {
    while (next < ITERATIONS && Date.now() - started < SECONDS * 1000) {
      const i = next++;
      const seen = await one(i);
      const key = seen.status !== null ? `answered ${seen.status}` : seen.outcome;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      done++;
      if (edge.child.exitCode !== null || edge.child.signalCode !== null) throw new Error(`opam-edge died at iteration ${i} (seed ${SEED})`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = Math.round((Date.now() - started) / 1000);
  const served = await steady.stop();

  // Give the process a moment: connections the run left waiting time out (header_timeout 5 s).
  await new Promise((r) => setTimeout(r, 6500));
  const after = await sample(edge);
  const alive = edge.child.exitCode === null && edge.child.signalCode === null;
  const failures = edge.events.filter((e) => e.event === 'request_failed' || e.level === 'fatal');

  const heapLimit = baseline.heapUsed * 1.5 + 4 * MiB;
  const rssLimit = baseline.rss + 48 * MiB;
  recordFigures('fuzz', {
    title: 'Fuzzing (both ports, TLS handshake)',
    by: 'npm run test:hardening (fuzz.hardening.ts)',
    rows: [
      ['seed', SEED],
      ['iterations', `${done} in ${seconds} s (bound: ${ITERATIONS} or ${SECONDS} s)`],
      ...[...perKind].map(([k, n]) => [`· ${k}`, n] as [string, number]),
      ['outcomes', [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ')],
      ['well-behaved requests served / failed meanwhile', `${served.ok} / ${served.failed}`],
      ['process up afterwards', alive ? 'yes' : 'NO'],
      ['request handler failures (500) logged', failures.length],
      ['heap used after GC: baseline → after (MiB)', `${mib(baseline.heapUsed)} → ${mib(after.heapUsed)} (limit ${mib(heapLimit)})`],
      ['RSS: baseline → after (MiB)', `${mib(baseline.rss)} → ${mib(after.rss)} (limit ${mib(rssLimit)})`],
      ['open fds: baseline → after', `${baseline.fds} → ${after.fds}`],
    ],
  });
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);

  assert.ok(alive, 'opam-edge is still running');
  assert.equal(served.failed, 0, `the well-behaved client failed (seed ${SEED}):\n${served.errors.join('\n')}`);
  assert.ok(served.ok > 0);
  assert.deepEqual(failures, [], 'no request handler failed');
  assert.ok(after.heapUsed <= heapLimit, `heap ${mib(after.heapUsed)} MiB, baseline ${mib(baseline.heapUsed)} MiB`);
  assert.ok(after.rss <= rssLimit, `RSS ${mib(after.rss)} MiB, baseline ${mib(baseline.rss)} MiB`);
  assert.ok(after.fds <= baseline.fds + 2, `fds ${after.fds}, baseline ${baseline.fds}`);
  // And it still answers a normal request on each port.
  const last = startSteadyClient({ httpsPort, httpPort, pauseMs: 0 });
  await new Promise((r) => setTimeout(r, 300));
  const final = await last.stop();
  assert.equal(final.failed, 0, final.errors.join('\n'));
});
