// What built-in ACME needs from the disk before its loop can run: a readable CA bundle
// (when set) and a storage directory it can create and write. AcmeManager.start takes
// both from here, and a reload checks them here before it stops the running ACME.

import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { Config } from '../config.ts';
import type { EventLog } from '../log.ts';
import { AcmeStorage } from './storage.ts';

type AcmeSettings = NonNullable<Config['acme']>;

/** `acme.ca_bundle` read, or the problem, named by its key. */
export async function readCaBundle(acme: AcmeSettings): Promise<{ caBundle: string | null } | { problem: string }> {
  if (!acme.ca_bundle) return { caBundle: null };
  try {
    return { caBundle: await readFile(acme.ca_bundle, 'utf8') };
  } catch (err) {
    return { problem: `acme.ca_bundle: cannot read ${acme.ca_bundle} (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
}

/** `acme.storage` created (0700) and writable, or the problem, named by its key. */
export async function openStorage(acme: AcmeSettings, log: EventLog): Promise<{ storage: AcmeStorage } | { problem: string }> {
  const storage = new AcmeStorage(acme.storage, log);
  try {
    await storage.init();
    await access(acme.storage, constants.R_OK | constants.W_OK | constants.X_OK);
    return { storage };
  } catch (err) {
    return { problem: `acme.storage: cannot use ${acme.storage} (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
}

/** Every problem AcmeManager.start would stop at, for a config with `acme` set. */
export async function acmeProblems(config: Config, log: EventLog): Promise<string[]> {
  if (!config.acme) return [];
  const results = [await readCaBundle(config.acme), await openStorage(config.acme, log)];
  return results.flatMap((r) => ('problem' in r ? [r.problem] : []));
}
