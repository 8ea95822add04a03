// What the built-in ACME keeps on disk under `acme.storage`, written so that a crash at any
// moment (kill -9, power loss) leaves either the old or the new certificate, never a key
// that does not match its certificate:
//
//   STORAGE/                                   0700
//     accounts/HOST[_PORT]-PATH/               0700  one account per ACME directory
//       key.pem                                0600  account key, created once and kept
//       account.json                           0600  {"directory","url","email","created"}
//     certificates/NAME/                       0700
//       20261126T101500123Z-0A1B2C3D4E5F/      0700  one directory per issuance, never rewritten
//         fullchain.pem                        0644  leaf first, then the chain
//         privkey.pem                          0600
//       current -> 20261126T101500123Z-0A1B2C3D4E5F  symlink, replaced by rename(2)
//     state.json                               0600  renewal schedule (next attempt, failures, ARI)
//
// A new issuance is written into a hidden temporary directory (files fsynced), renamed to
// its version name, then `current` is swapped by renaming a fresh symlink over it; the
// parent directory is fsynced after each rename. Readers follow `current`, check that the
// key matches the certificate, and fall back to the newest valid version if it does not.

import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventLog } from '../log.ts';
import { silentLog } from '../log.ts';

export type StoredCertificate = {
  name: string;
  /** The issuance directory's name, e.g. "20261126T101500123Z-0A1B2C3D4E5F" (UTC, ms). */
  version: string;
  /** Full chain, leaf first (PEM). */
  cert: string;
  key: string;
  /** Upper-case hex, as node:tls reports it. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** Path of fullchain.pem, for logs. */
  path: string;
};

export type AriState = {
  /** The serial whose window this is: a new certificate starts over. */
  serial: string;
  start: string;
  end: string;
  /** The random moment inside the window chosen for the renewal; null: the window is ignored. */
  selected: string | null;
  /** When to ask again (the server's Retry-After). */
  next_poll: string;
  explanation_url: string | null;
};

export type NameState = {
  failures: number;
  next_attempt: string | null;
  last_attempt: string | null;
  last_success: string | null;
  last_error: string | null;
  ari: AriState | null;
};

export type RenewalState = { version: 1; names: Record<string, NameState> };

export type Account = { key: string; url: string | null };

/** How many issuances of a name are kept (the current one and the ones before it). */
const KEEP_VERSIONS = 3;
const VERSION = /^\d{8}T\d{9}Z-[0-9A-F]+$/;

export function emptyNameState(): NameState {
  return { failures: 0, next_attempt: null, last_attempt: null, last_success: null, last_error: null, ari: null };
}

/** Checks a PEM pair: parsable, key matches the leaf, names the expected DNS name. */
export function inspectPair(cert: string, key: string, name?: string): { serial: string; notBefore: Date; notAfter: Date } {
  const leaf = new X509Certificate(cert);
  if (!leaf.checkPrivateKey(createPrivateKey(key))) throw new Error('the private key does not match the certificate');
  if (name !== undefined) {
    const sans = (leaf.subjectAltName ?? '').split(', ').map((s) => s.toLowerCase());
    if (!sans.includes(`dns:${name}`)) throw new Error(`the certificate does not name ${name}`);
  }
  return { serial: leaf.serialNumber.toUpperCase(), notBefore: leaf.validFromDate, notAfter: leaf.validToDate };
}

export class AcmeStorage {
  readonly root: string;
  readonly #log: EventLog;

  constructor(root: string, log: EventLog = silentLog) {
    this.root = root;
    this.#log = log;
  }

  /** Creates the directories (0700). */
  async init(): Promise<void> {
    await ensureDir(this.root);
    await ensureDir(join(this.root, 'accounts'));
    await ensureDir(join(this.root, 'certificates'));
  }

  // --- account ------------------------------------------------------------------------

  #accountDir(directory: string): string {
    return join(this.root, 'accounts', directorySlug(directory));
  }

  async loadAccount(directory: string): Promise<Account | null> {
    const dir = this.#accountDir(directory);
    let key: string;
    try {
      key = await readFile(join(dir, 'key.pem'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    let url: string | null = null;
    try {
      const meta = JSON.parse(await readFile(join(dir, 'account.json'), 'utf8')) as { url?: unknown; directory?: unknown };
      if (typeof meta.url === 'string' && meta.directory === directory) url = meta.url;
    } catch {
      // No URL yet (or unreadable): the account is looked up again by its key.
    }
    return { key, url };
  }

  /** Writes the account key once. A key already there is kept and returned instead. */
  async saveAccountKey(directory: string, key: string): Promise<string> {
    const dir = this.#accountDir(directory);
    await ensureDir(dir);
    const existing = await readFile(join(dir, 'key.pem'), 'utf8').catch(() => null);
    if (existing !== null) return existing;
    await writeFileAtomic(join(dir, 'key.pem'), key, 0o600);
    return key;
  }

  async saveAccountUrl(directory: string, url: string | null, email: string | null): Promise<void> {
    const dir = this.#accountDir(directory);
    await ensureDir(dir);
    const body = JSON.stringify({ directory, url, email, created: new Date().toISOString() }, null, 2);
    await writeFileAtomic(join(dir, 'account.json'), `${body}\n`, 0o600);
  }

  // --- certificates -------------------------------------------------------------------

  #nameDir(name: string): string {
    // Names are validated host names (config.ts); this keeps a path from ever escaping.
    if (!/^[a-z0-9_.-]+$/.test(name) || name.startsWith('.')) throw new Error(`not a storable name: ${JSON.stringify(name)}`);
    return join(this.root, 'certificates', name);
  }

  /** Writes a new issuance and makes it current. Returns it as a reader will see it. */
  async saveCertificate(name: string, cert: string, key: string): Promise<StoredCertificate> {
    const dir = this.#nameDir(name);
    const info = inspectPair(cert, key, name);
    await ensureDir(dir);
    const version = `${compactTime(new Date())}-${info.serial.slice(0, 32)}`;
    const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
    await mkdir(tmp, { mode: 0o700 });
    await writeFileDurable(join(tmp, 'fullchain.pem'), cert, 0o644);
    await writeFileDurable(join(tmp, 'privkey.pem'), key, 0o600);
    await fsyncDir(tmp);
    try {
      await rename(tmp, join(dir, version));
    } catch (err) {
      // The same certificate (a serial is never reused) saved twice in one millisecond:
      // the directory there is complete already.
      await rm(tmp, { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await fsyncDir(dir);
    const link = join(dir, `.current-${randomBytes(6).toString('hex')}`);
    await symlink(version, link);
    await rename(link, join(dir, 'current'));
    await fsyncDir(dir);
    await this.#prune(name, dir, version);
    return { name, version, cert, key, ...info, path: join(dir, version, 'fullchain.pem') };
  }

  /**
   * The current certificate of a name: `current` if its pair is sound, else the newest
   * sound version. Leftovers of an interrupted write are removed on the way.
   */
  async loadCertificate(name: string): Promise<StoredCertificate | null> {
    const dir = this.#nameDir(name);
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    for (const entry of entries) {
      if (entry.startsWith('.tmp-') || entry.startsWith('.current-')) await rm(join(dir, entry), { recursive: true, force: true });
    }
    const current = await readlink(join(dir, 'current')).catch(() => null);
    const versions = entries.filter((e) => VERSION.test(e)).sort().reverse();
    const order = current !== null && VERSION.test(current) ? [current, ...versions.filter((v) => v !== current)] : versions;
    for (const version of order) {
      try {
        return await this.#readVersion(name, dir, version);
      } catch (err) {
        this.#log.warn('acme_storage_skipped', { code: 'ACME_STORAGE_FAILED', name, version, reason: (err as Error).message });
      }
    }
    return null;
  }

  async #readVersion(name: string, dir: string, version: string): Promise<StoredCertificate> {
    const path = join(dir, version, 'fullchain.pem');
    const cert = await readFile(path, 'utf8');
    const key = await readFile(join(dir, version, 'privkey.pem'), 'utf8');
    return { name, version, cert, key, ...inspectPair(cert, key, name), path };
  }

  /** Keeps the newest KEEP_VERSIONS issuances (never the current one's directory). */
  async #prune(name: string, dir: string, current: string): Promise<void> {
    try {
      const versions = (await readdir(dir)).filter((e) => VERSION.test(e) && e !== current).sort().reverse();
      for (const old of versions.slice(KEEP_VERSIONS - 1)) await rm(join(dir, old), { recursive: true, force: true });
    } catch (err) {
      this.#log.warn('acme_storage_prune_failed', { code: 'ACME_STORAGE_FAILED', name, reason: (err as Error).message });
    }
  }

  // --- renewal state ------------------------------------------------------------------

  async loadState(): Promise<RenewalState> {
    try {
      const raw = JSON.parse(await readFile(join(this.root, 'state.json'), 'utf8')) as Partial<RenewalState>;
      if (raw.version !== 1 || typeof raw.names !== 'object' || raw.names === null) throw new Error('unknown format');
      const names: Record<string, NameState> = {};
      for (const [name, value] of Object.entries(raw.names)) names[name] = { ...emptyNameState(), ...value };
      return { version: 1, names };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.warn('acme_state_unreadable', { code: 'ACME_STORAGE_FAILED', reason: (err as Error).message });
      }
      return { version: 1, names: {} };
    }
  }

  async saveState(state: RenewalState): Promise<void> {
    await writeFileAtomic(join(this.root, 'state.json'), `${JSON.stringify(state, null, 2)}\n`, 0o600);
  }
}

/** "https://acme-v02.api.letsencrypt.org/directory" -> "acme-v02.api.letsencrypt.org-directory" */
export function directorySlug(directory: string): string {
  const url = new URL(directory);
  const host = url.port ? `${url.hostname}_${url.port}` : url.hostname;
  const path = url.pathname.replace(/^\/+|\/+$/g, '').replace(/[^A-Za-z0-9.-]+/g, '-');
  return `${host.replace(/[^A-Za-z0-9.-]+/g, '_')}${path ? `-${path}` : ''}`;
}

/** "20261126T101500123Z": sorts in time order, to the millisecond. */
function compactTime(d: Date): string {
  return d.toISOString().replace(/[-:.]/g, '');
}

async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** Writes and fsyncs a new file (it must not exist yet). */
async function writeFileDurable(path: string, data: string, mode: number): Promise<void> {
  const file = await open(path, 'wx', mode);
  try {
    await file.writeFile(data);
    await file.chmod(mode);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Temporary file in the same directory, fsync, rename over the target, fsync the directory. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const dir = join(path, '..');
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFileDurable(tmp, data, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
