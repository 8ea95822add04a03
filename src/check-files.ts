// The files and directories a config names, checked as start-up will use them: certificate
// pairs (readable, parse, key matches, valid now), the certbot tree, ACME storage, the
// challenge webroot (the admin token file is read by config.ts). What is missing only on the machine `check`
// runs on (a volume not mounted, a directory certbot or ACME creates later) is a warning;
// what start-up would refuse is a problem.

import { access, constants, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from './config.ts';
import { errnoText } from './problem.ts';
import type { Findings } from './problem.ts';
import { EXPIRY_WARN_DAYS } from './admin/health.ts';
import { isRefusal, parsePair } from './tls/pem.ts';

/** A certificate chain or key is a few KB; anything this large is not one. */
const MAX_FILE_BYTES = 1024 * 1024;
/** A certificate this close to its end is a warning, as the health check says degraded. */
const EXPIRY_WARNING_MS = EXPIRY_WARN_DAYS * 86_400_000;

/** The text of a regular file, or why it cannot be had ("cannot read PATH: no such file"). */
async function readSmallFile(path: string): Promise<{ text: string } | { error: string }> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) return { error: `cannot read ${path}: it is a directory, not a file` };
    if (!s.isFile()) return { error: `cannot read ${path}: not a regular file` };
    if (s.size > MAX_FILE_BYTES) return { error: `${path} is too large (${s.size} bytes)` };
    return { text: await readFile(path, 'utf8') };
  } catch (err) {
    return { error: `cannot read ${path}: ${errnoText(err)}` };
  }
}

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
 * One certificate/key pair read and validated; a refusal names the half at fault. `label`
 * says what the key must match ("tls.certificates[0].cert").
 */
async function checkPair(
  certPath: string,
  keyPath: string,
  label: string,
  now: number,
): Promise<{ field: 'cert' | 'key'; message: string } | { notAfter: Date }> {
  const cert = await readSmallFile(certPath);
  if ('error' in cert) return { field: 'cert', message: cert.error };
  const key = await readSmallFile(keyPath);
  if ('error' in key) return { field: 'key', message: key.error };
  const parsed = parsePair({ cert: cert.text, key: key.text, origin: certPath }, now);
  if (!isRefusal(parsed)) return { notAfter: parsed.info.notAfter };
  const reason = parsed.reason === 'does not match the certificate' ? `does not match ${label}` : parsed.reason;
  return { field: parsed.field, message: `${parsed.field === 'key' ? keyPath : certPath}: ${reason}` };
}

function expiryWarning(path: string, notAfter: Date, now: number): string | null {
  const left = notAfter.getTime() - now;
  if (left >= EXPIRY_WARNING_MS) return null;
  return `${path} expires in ${(left / 86_400_000).toFixed(1)} days (${notAfter.toISOString()})`;
}

async function checkCertificateFiles(config: Config, found: Findings, now: number): Promise<void> {
  const first = new Map<string, number>();
  for (const [i, { cert, key }] of config.tls.certificates.entries()) {
    const at = ['tls', 'certificates', i];
    const earlier = first.get(cert);
    if (earlier !== undefined) {
      found.problem([...at, 'cert'], `${cert} is also tls.certificates[${earlier}].cert`);
      continue;
    }
    first.set(cert, i);
    const result = await checkPair(cert, key, `tls.certificates[${i}].cert`, now);
    if ('field' in result) found.problem([...at, result.field], result.message);
    else {
      const soon = expiryWarning(cert, result.notAfter, now);
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
  const names = (await readdir(live).catch(() => [])).filter((n) => !n.startsWith('.')).sort();
  for (const name of names) {
    const lineage = join(live, name);
    if (!(await stat(lineage).catch(() => null))?.isDirectory()) continue;
    const cert = join(lineage, 'fullchain.pem');
    const result = await checkPair(cert, join(lineage, 'privkey.pem'), cert, now);
    if ('field' in result) found.warning(at, `lineage ${name} is skipped: ${result.message}`);
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
