// The soak: mixed traffic over TLS for a bounded time against one opam-edge process, with
// its certificate swapped every minute (certbot layout: a new lineage version, picked up
// by the file watcher, every other one followed by a SIGHUP reload) and the upstream's
// DNS answer changed every 30 s (pebble-challtestsrv; two origins on 127.0.0.2/.3).
// Traffic: HTTP/1.1 keep-alive, h2, a new TLS connection per request, small and large
// bodies both ways, and deliberate aborts mid-download (expected, counted apart).
// Figures: requests, unexpected errors (must be 0), RSS and heap after warm-up and at the
// end (RSS growth must stay under 10 %), open fds at start and after the traffic (must
// come back to the baseline).
// Used by `npm run soak` (10 minutes, test/hardening/soak.ts) and, 60 s long, by
// soak-ci.hardening.ts.

import { spawnSync } from 'node:child_process';
import { Agent, request } from 'undici';
import { join } from 'node:path';
import { startWorld, startNamedOrigins, HOST } from './world.ts';
import { fdKinds, sample, mib } from './process-stats.ts';
import type { MemorySample } from './process-stats.ts';
import { makeCert } from '../../helpers/certs.ts';
import { certbotTree } from '../../helpers/certbot-tree.ts';
import { serialFor } from '../../helpers/tls-client.ts';

export type SoakOptions = {
  durationMs: number;
  warmupMs: number;
  certEveryMs: number;
  dnsEveryMs: number;
  /** Progress lines (the CLI prints them). */
  progress?: (line: string) => void;
};

export type SoakResult = {
  seconds: number;
  requests: number;
  byKind: Record<string, number>;
  aborted: number;
  unexpected: number;
  errors: string[];
  certSwaps: number;
  certSwapsSeen: number;
  dnsChanges: number;
  start: MemorySample;
  warm: MemorySample;
  /** Highest RSS seen after warm-up, while the traffic ran. */
  peakRss: number;
  end: MemorySample;
  /** After the traffic stopped and idle connections were let go. */
  after: MemorySample;
  rssGrowth: number;
  /** Kinds of the fds open at start and after the traffic. */
  fdsAtStart: string;
  fdsAfter: string;
  /** How long after the traffic the fds took to come back (or 20 s: not back). */
  backAfterMs: number;
  /** ss lines of the sockets still open when the fds were not back. */
  leftover: string[];
  samples: { t: number; rss: number; heapUsed: number; fds: number }[];
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const cleanups: (() => unknown)[] = [];
  const scope = { after: (fn: () => unknown) => void cleanups.push(fn) };
  try {
    return await soak(options, scope);
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

async function soak(o: SoakOptions, scope: { after(fn: () => unknown): void }): Promise<SoakResult> {
  const say = o.progress ?? (() => {});
  const { dns, port } = await startNamedOrigins(scope);
  const certbotDir = join((await import('node:os')).tmpdir(), `opam-edge-soak-certbot-${process.pid}-${Date.now()}`);
  const tree = certbotTree(certbotDir);
  scope.after(async () => (await import('node:fs')).rmSync(certbotDir, { recursive: true, force: true }));
  const issue = async () => {
    const cert = await makeCert({ names: [HOST, 'localhost'], dir: certbotDir, stem: `soak-${Date.now()}` });
    tree.issue(HOST, cert);
    return cert.serial;
  };
  let serial = await issue();
  const world = await startWorld(scope, {
    probe: true,
    resolver: { servers: [dns.server], valid: '1s' },
    upstream: () => `http://app.test:${port}`,
    // idle_timeout 10 s: connections a client leaves open after its last request (undici's
    // h2 sessions after close() can stay half-open) are closed by the edge within the wait below.
    limits: { idle_timeout: '10s' },
    extra: { tls: { certbot: certbotDir, unknown_sni: 'default' } },
  });
  const { edge, httpsPort } = world;
  await sleep(1500);
  const start = await sample(edge);
  const fdsAtStart = fdKinds(edge.child.pid!);
  say(`opam-edge pid ${edge.child.pid}: RSS ${mib(start.rss)} MiB, heap ${mib(start.heapUsed)} MiB, ${start.fds} fds`);

  const started = Date.now();
  const stopAt = started + o.durationMs;
  const byKind: Record<string, number> = {};
  let aborted = 0;
  let unexpected = 0;
  const errors: string[] = [];
  const fail = (what: string) => {
    unexpected++;
    if (errors.length < 20) errors.push(`${new Date().toISOString()} ${what}`);
  };
  const tlsOptions = { rejectUnauthorized: false, servername: HOST };
  const kinds = [
    // [name, dispatcher factory (null: a new connection per request), allowH2]
    ['h1 keep-alive', false],
    ['h1 keep-alive', false],
    ['h2', true],
    ['h2', true],
    ['new connection', false],
  ] as const;
  const loop = async (kind: string, h2: boolean, index: number) => {
    const shared = kind === 'new connection' ? null : new Agent({ connect: tlsOptions, allowH2: h2, headersTimeout: 30_000, bodyTimeout: 30_000 });
    for (let i = 0; Date.now() < stopAt; i++) {
      const dispatcher = shared ?? new Agent({ connect: tlsOptions, pipelining: 0 });
      const pick = (i + index) % 20;
      // 1 in 20 a 1 MiB download, 1 in 20 a 256 KiB upload, 1 in 20 an abort mid-download
      // (HTTP/1.1 only: undici's abort of an h2 request does not reset the stream, it reads
      // on and discards, so ~150 of them pile up in one session until Node's maxSessionMemory
      // refuses new streams with ENHANCE_YOUR_CALM; browsers send RST_STREAM).
      const path = pick === 0 ? '/size/1048576' : pick === 1 ? '/upload' : pick === 2 && !h2 ? '/size/4194304' : pick < 8 ? '/size/102400' : '/';
      const controller = new AbortController();
      const aborting = pick === 2 && !h2;
      const label = aborting ? `${kind} abort` : `${kind} ${path === '/' ? 'small' : path}`;
      try {
        const res = await request(`https://127.0.0.1:${httpsPort}${path}`, {
          method: pick === 1 ? 'POST' : 'GET',
          body: pick === 1 ? Buffer.alloc(256 * 1024, 0x63) : undefined,
          headers: { host: HOST },
          dispatcher,
          signal: controller.signal,
        });
        let bytes = 0;
        for await (const chunk of res.body) {
          bytes += (chunk as Buffer).length;
          if (aborting && bytes > 256 * 1024) {
            controller.abort();
            break;
          }
        }
        if (aborting) aborted++;
        else if (res.statusCode !== 200) fail(`${label}: status ${res.statusCode}`);
        byKind[label] = (byKind[label] ?? 0) + 1;
      } catch (err) {
        if (aborting && controller.signal.aborted) aborted++;
        else fail(`${label}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
      } finally {
        if (!shared) await dispatcher.close().catch(() => {});
      }
    }
    await shared?.close();
  };
  const traffic = Promise.all(kinds.map(([kind, h2], i) => loop(kind, h2, i * 7)));

  // Control plane: certificate swaps, DNS changes, samples.
  let certSwaps = 0;
  let certSwapsSeen = 0;
  let dnsChanges = 0;
  const answers = [['127.0.0.3'], ['127.0.0.2', '127.0.0.3'], ['127.0.0.2']];
  let nextCert = started + o.certEveryMs;
  let nextDns = started + o.dnsEveryMs;
  let nextSample = started + Math.min(30_000, o.warmupMs);
  let warm: MemorySample | null = null;
  let peakRss = 0;
  const samples: SoakResult['samples'] = [];
  while (Date.now() < stopAt) {
    await sleep(250);
    const now = Date.now();
    if (now >= nextCert) {
      nextCert += o.certEveryMs;
      serial = await issue();
      certSwaps++;
      // Every other swap is also announced with SIGHUP (a full reload); the others are
      // found by the certificate file watcher.
      if (certSwaps % 2 === 0) edge.signal('SIGHUP');
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline) {
        if ((await serialFor(httpsPort, HOST).catch(() => '')) === serial) {
          certSwapsSeen++;
          break;
        }
        await sleep(200);
      }
    }
    if (now >= nextDns) {
      nextDns += o.dnsEveryMs;
      await dns.setA('app.test', answers[dnsChanges % answers.length]!);
      dnsChanges++;
    }
    if (now >= nextSample) {
      nextSample += Math.min(30_000, o.warmupMs);
      const s = await sample(edge);
      samples.push({ t: Math.round((Date.now() - started) / 1000), rss: s.rss, heapUsed: s.heapUsed, fds: s.fds });
      if (warm === null && Date.now() - started >= o.warmupMs) warm = s;
      else if (warm !== null) peakRss = Math.max(peakRss, s.rss);
      say(`${Math.round((Date.now() - started) / 1000)} s: ${Object.values(byKind).reduce((x, y) => x + y, 0)} requests, ${unexpected} unexpected errors, RSS ${mib(s.rss)} MiB, heap ${mib(s.heapUsed)} MiB, ${s.fds} fds, ${certSwaps} cert swaps, ${dnsChanges} DNS changes`);
    }
  }
  await traffic;
  const end = await sample(edge);
  warm ??= end;
  peakRss = Math.max(peakRss, end.rss);
  // Client connections are closed; idle upstream connections go after 4 s without use
  // (undici checks its keep-alive timers about once a second): fds come back. Up to 20 s.
  const idleFrom = Date.now();
  let after = await sample(edge);
  while (after.fds > start.fds && Date.now() - idleFrom < 20_000) {
    await sleep(1000);
    after = await sample(edge);
  }
  const backAfterMs = Date.now() - idleFrom;
  // Evidence when they are not back: the child's sockets (TCP, UDP, unix) as ss(8) lists them.
  const leftover =
    after.fds > start.fds
      ? (spawnSync('ss', ['-anpo'], { encoding: 'utf8' }).stdout ?? '')
          .split('\n')
          .filter((l) => l.includes(`pid=${edge.child.pid},`) && !l.startsWith('LISTEN'))
          .map((l) => l.replace(/\s+/g, ' ').trim())
      : [];
  const fdsAfter = fdKinds(edge.child.pid!);
  const requests = Object.values(byKind).reduce((x, y) => x + y, 0);
  const failures = edge.events.filter((e) => e.event === 'request_failed').length;
  if (failures > 0) fail(`${failures} request_failed events`);
  if (edge.child.exitCode !== null) fail('opam-edge exited');
  return {
    seconds: Math.round((Date.now() - started) / 1000),
    requests,
    byKind,
    aborted,
    unexpected,
    errors,
    certSwaps,
    certSwapsSeen,
    dnsChanges,
    start,
    warm,
    peakRss,
    end,
    after,
    rssGrowth: (end.rss - warm.rss) / warm.rss,
    fdsAtStart,
    fdsAfter,
    backAfterMs,
    leftover,
    samples,
  };
}

/** The figures rows for REPORT.md. */
export function soakRows(r: SoakResult, minutes: number): [string, string | number][] {
  return [
    ['duration', `${r.seconds} s (bound ${minutes} min of traffic, then up to 20 s idle)`],
    ['requests (h1 keep-alive, h2, new TLS connection each; 100 KiB–4 MiB bodies, 256 KiB uploads)', r.requests],
    ['deliberate aborts mid-download', r.aborted],
    ['unexpected errors', r.unexpected],
    ['certificate swaps (seen by a new handshake)', `${r.certSwaps} (${r.certSwapsSeen})`],
    ['DNS answer changes', r.dnsChanges],
    ['RSS: start / after warm-up / end of traffic (MiB)', `${mib(r.start.rss)} / ${mib(r.warm.rss)} / ${mib(r.end.rss)}`],
    ['RSS growth after warm-up', `${(r.rssGrowth * 100).toFixed(1)} % (peak ${mib(r.peakRss)} MiB; limit 10 %)`],
    ['heap used after GC: after warm-up / end (MiB)', `${mib(r.warm.heapUsed)} / ${mib(r.end.heapUsed)}`],
    ['open fds: start / end of traffic / after', `${r.start.fds} / ${r.end.fds} / ${r.after.fds} (${r.after.fds <= r.start.fds ? 'back to the baseline' : 'NOT back'} ${Math.round(r.backAfterMs / 100) / 10} s after the traffic)`],
    ['fd kinds at start → after', `${r.fdsAtStart} → ${r.fdsAfter}`],
    ['aborts', 'HTTP/1.1 only: undici\'s abort of an h2 request leaves the stream open on the server (it reads on and discards); ~150 of them fill a session\'s maxSessionMemory (10 MB) and every new stream of that session is refused with ENHANCE_YOUR_CALM'],
  ];
}
