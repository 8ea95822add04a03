// The files and directories a config names, checked as start-up will use them: certificate
// pairs read by start-up's own reader (tls/cert-files.ts), then parsed, matched and dated;
// the certbot tree, ACME storage, the challenge webroot (the admin token file is read by
// config.ts). What is missing only on the machine `check` runs on (a volume not mounted, a
// directory certbot or ACME creates later) is a warning; what start-up would refuse is a
// problem.

import { access, constants, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Config } from './config.ts';
import { errnoText } from './errors.ts';
import type { Findings } from './problem.ts';
import { EXPIRY_WARN_DAYS } from './admin/health.ts';
import { isRefusal, parsePair } from './tls/pem.ts';
import { certFileSettings, listCertbot, listFiles } from './tls/cert-files.ts';
import type { ReadPair } from './tls/cert-files.ts';

/** A certificate this close to its end is a warning, as the health check says degraded. */
const EXPIRY_WARNING_MS = EXPIRY_WARN_DAYS * 86_400_000;

/** A directory's state: missing, usable, or why it cannot be used. */
async function directory(path: string, mode: number): Promise<'missing' | 'ok' | string> {
  try {
    if (!(await stat(path)).isDirectory()) return `${path} is not a directory`;
    await access(path, mode);
    return 'ok';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'missing' : `cannot use ${path}: ${errnoText(err)}`;
  }
}

/**
 * A pair as start-up reads it (tls/cert-files.ts), parsed and validated: why it is refused
 * (the half at fault), or when it ends. `label` says what the key must match.
 */
function checkPair(item: ReadPair, keyPath: string, label: string, now: number): { field: 'cert' | 'key'; message: string } | { notAfter: Date } {
  if (!('pair' in item)) return { field: item.field, message: item.reason };
  const parsed = parsePair(item.pair, now);
  if (!isRefusal(parsed)) return { notAfter: parsed.info.notAfter };
  const reason = parsed.reason === 'does not match the certificate' ? `does not match ${label}` : parsed.reason;
  return { field: parsed.field, message: `${parsed.field === 'key' ? keyPath : item.pair.origin}: ${reason}` };
}

function expiryWarning(path: string, notAfter: Date, now: number): string | null {
  const left = notAfter.getTime() - now;
  if (left >= EXPIRY_WARNING_MS) return null;
  return `${path} expires in ${(left / 86_400_000).toFixed(1)} days (${notAfter.toISOString()})`;
}

async function checkCertificateFiles(config: Config, found: Findings, now: number): Promise<void> {
  for (const item of (await listFiles(config.tls)).items) {
    const i = item.index!;
    const at = ['tls', 'certificates', i];
    const result = checkPair(item, config.tls.certificates[i]!.key, `tls.certificates[${i}].cert`, now);
    if ('field' in result) found.problem([...at, result.field], result.message);
    else {
      const soon = expiryWarning(config.tls.certificates[i]!.cert, result.notAfter, now);
      if (soon) found.warning([...at, 'cert'], soon);
    }
  }
}

/**
 * tls.certbot: a directory certbot has not created yet is a warning when something else
 * provides certificates (ACME, tls.certificates), a problem when nothing would. Lineages
 * that do not load are warnings: start-up skips them and serves the rest.
 */
async function checkCertbot(config: Config, found: Findings, now: number): Promise<void> {
  const dir = config.tls.certbot;
  if (dir === null) return;
  const at = ['tls', 'certbot'];
  const live = join(dir, 'live');
  let state = await directory(dir, constants.R_OK | constants.X_OK);
  if (state === 'ok') state = await directory(live, constants.R_OK | constants.X_OK);
  if (state === 'missing') {
    const others = [config.acme ? 'acme' : '', config.tls.certificates.length > 0 ? 'tls.certificates' : ''].filter(Boolean);
    if (others.length > 0) found.warning(at, `${live} does not exist yet (certificates come from ${others.join(' and ')} until it does)`);
    else found.problem(at, `${live} does not exist, and neither acme nor tls.certificates provides a certificate`);
    return;
  }
  if (state !== 'ok') {
    found.problem(at, state);
    return;
  }
  const listed = await listCertbot(certFileSettings(config));
  if (listed.unreadable) found.problem(at, listed.unreadable.reason);
  for (const item of listed.items) {
    const cert = 'pair' in item ? item.pair.origin : item.origin;
    const result = checkPair(item, join(dirname(cert), 'privkey.pem'), cert, now);
    if ('field' in result) found.warning(at, `lineage ${basename(dirname(cert))} is skipped: ${result.message}`);
    else {
      const soon = expiryWarning(cert, result.notAfter, now);
      if (soon) found.warning(at, soon);
    }
  }
}

async function checkDirectories(config: Config, found: Findings): Promise<void> {
  if (config.acme) {
    // Created at start when missing; one that exists must take the account key and certificates.
    const storage = await directory(config.acme.storage, constants.R_OK | constants.W_OK | constants.X_OK);
    if (storage !== 'ok' && storage !== 'missing') found.problem(['acme', 'storage'], storage);
  }
  const webroot = config.challenges.webroot;
  if (webroot !== null) {
    const state = await directory(webroot, constants.R_OK | constants.X_OK);
    if (state === 'missing') found.warning(['challenges', 'webroot'], `${webroot} does not exist: no challenge file can be served from it`);
    else if (state !== 'ok') found.problem(['challenges', 'webroot'], state);
  }
}

/** Every file and directory of `config`, checked now. */
export async function checkFiles(config: Config, found: Findings, now = Date.now()): Promise<void> {
  await checkCertificateFiles(config, found, now);
  await checkCertbot(config, found, now);
  await checkDirectories(config, found);
}
