// What built-in ACME needs from the disk before its loop can run: a readable CA bundle
// (when set) and a storage directory it can create and write. AcmeManager.start takes
// both from here, and a reload checks them here before it stops the running ACME.

import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { Config } from '../config.ts';
import type { EventLog } from '../log.ts';
import { AcmeStorage } from './storage.ts';
import { errnoText } from '../errors.ts';

type AcmeSettings = NonNullable<Config['acme']>;

/** `acme.ca_bundle` read and holding PEM, or why not (`check` and start-up both ask here). */
export async function readCaBundle(acme: AcmeSettings): Promise<{ caBundle: string | null } | { message: string }> {
  if (!acme.ca_bundle) return { caBundle: null };
  let text: string;
  try {
    text = await readFile(acme.ca_bundle, 'utf8');
  } catch (err) {
    return { message: `cannot read ${acme.ca_bundle}: ${errnoText(err)}` };
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return { message: `${acme.ca_bundle} holds no PEM certificate` };
  return { caBundle: text };
}

/** `acme.storage` created (0700) and writable, or why not. */
export async function openStorage(acme: AcmeSettings, log: EventLog): Promise<{ storage: AcmeStorage } | { message: string }> {
  const storage = new AcmeStorage(acme.storage, log);
  try {
    await storage.init();
    await access(acme.storage, constants.R_OK | constants.W_OK | constants.X_OK);
    return { storage };
  } catch (err) {
    return { message: `cannot use ${acme.storage}: ${errnoText(err)}` };
  }
}

/** Every problem AcmeManager.start would stop at, for a config with `acme` set. */
export async function acmeProblems(config: Config, log: EventLog): Promise<string[]> {
  if (!config.acme) return [];
  const caBundle = await readCaBundle(config.acme);
  const storage = await openStorage(config.acme, log);
  return [...('message' in caBundle ? [`acme.ca_bundle: ${caBundle.message}`] : []), ...('message' in storage ? [`acme.storage: ${storage.message}`] : [])];
}
