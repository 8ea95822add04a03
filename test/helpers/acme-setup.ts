// One ACME test world on loopback: an Edge (src/edge.ts) answering HTTP-01 on a free port,
// pebble-challtestsrv resolving the test names to 127.0.0.1, Pebble validating against
// the Edge, and a storage directory. Everything is closed in t.after.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import { AcmeIssuer } from '../../src/acme/issuer.ts';
import type { AcmeIssuerOptions } from '../../src/acme/issuer.ts';
import { AcmeStorage } from '../../src/acme/storage.ts';
import { memoryLog } from './event-log.ts';
import type { MemoryLog } from './event-log.ts';
import { tempDir } from './edge-process.ts';
import { requirePebble, startChallTestSrv, startPebble } from './pebble.ts';
import type { ChallTestSrv, Pebble } from './pebble.ts';

export const TEST_NAMES = ['opam.test', 'www.opam.test'];

export type AcmeWorld = {
  dir: string;
  log: MemoryLog;
  edge: Edge;
  dns: ChallTestSrv;
  pebble: Pebble;
  storage: AcmeStorage;
  /** An issuer for Pebble (or `directory`), polling fast. */
  issuer(options?: Partial<AcmeIssuerOptions>): AcmeIssuer;
};

/** null when the tools are missing (the test was skipped). */
export async function acmeWorld(
  t: TestContext,
  options: { validitySeconds?: number; pebbleEnv?: Record<string, string> } = {},
): Promise<AcmeWorld | null> {
  if (!requirePebble(t)) return null;
  const dir = tempDir('opam-edge-acme-');
  const log = memoryLog();
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const parsed = validateConfig(
    { listen: { http: ['127.0.0.1:0'], https: [] }, access_log: 'off', sites: [{ hosts: TEST_NAMES, upstream: 'http://127.0.0.1:9' }] },
    'acme-test',
  );
  if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
  const edge = await Edge.start(parsed.config, { log });
  cleanups.push(() => edge.stop(0));
  const dns = await startChallTestSrv();
  cleanups.push(() => dns.stop());
  for (const name of TEST_NAMES) await dns.addA(name, ['127.0.0.1']);
  const pebble = await startPebble({ dir, httpPort: edge.ports.http[0]!, dnsServer: dns.dns, validitySeconds: options.validitySeconds, env: options.pebbleEnv });
  cleanups.push(() => pebble.stop());
  const storage = new AcmeStorage(join(dir, 'storage'), log);
  await storage.init();
  const issuers: AcmeIssuer[] = [];
  cleanups.push(async () => {
    for (const i of issuers) await i.close();
  });
  return {
    dir,
    log,
    edge,
    dns,
    pebble,
    storage,
    issuer(overrides = {}) {
      const issuer = new AcmeIssuer({
        directory: pebble.directory,
        email: 'ops@example.org',
        keyType: 'ecdsa-p256',
        profile: null,
        caBundle: pebble.caBundle,
        storage,
        challenges: edge.challenges,
        log,
        poll: { attempts: 20, minMs: 100, maxMs: 500 },
        orderTimeoutMs: 30_000,
        ...overrides,
      });
      issuers.push(issuer);
      return issuer;
    },
  };
}
