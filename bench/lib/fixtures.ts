// What every target shares: the files the origin serves, one TLS certificate for the proxies
// (ECDSA P-256, signed by a throw-away CA, names bench.test + localhost + 127.0.0.1), and free
// loopback ports.

import { randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCA, makeCert } from '../../test/helpers/certs.ts';

/** The Host and SNI every load generator sends; every proxy serves it. */
export const SITE_HOST = 'bench.test';
/** The name nginx-as-deployed and opam-edge resolve through the bench's DNS server. */
export const ORIGIN_NAME = 'origin.bench.test';

export const FILES = { '1k': 1024, '100k': 100 * 1024, '10m': 10 * 1024 * 1024 } as const;
export type FileName = keyof typeof FILES;

export type Fixtures = {
  dir: string;
  www: string;
  cert: string;
  key: string;
  ca: string;
};

export async function makeFixtures(dir: string): Promise<Fixtures> {
  const www = join(dir, 'www');
  mkdirSync(www, { recursive: true });
  for (const [name, size] of Object.entries(FILES)) {
    // Random bytes: nothing along the way can compress them.
    writeFileSync(join(www, name), randomFillSync(Buffer.alloc(size)));
  }
  const certs = join(dir, 'certs');
  mkdirSync(certs, { recursive: true });
  const ca = await makeCA(certs, 'opam-edge bench CA');
  const leaf = await makeCert({ names: [SITE_HOST, 'localhost', '127.0.0.1'], dir: certs, stem: 'bench', ca });
  return { dir, www, cert: leaf.certPath, key: leaf.keyPath, ca: ca.certPath };
}

/** Writes a config file next to the others and returns its path. */
export function writeConfig(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
