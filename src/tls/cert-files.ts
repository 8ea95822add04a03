// Certificates from files: `tls.certificates` ({cert, key} paths) and `tls.certbot` (every
// live/<name>/fullchain.pem + privkey.pem, which certbot keeps as symlinks into
// archive/<name>/), handed to the certificate store as the sources "file" and "certbot".
//
// Watching is by polling, not fs.watch: certbot renews by writing archive/<name>/*N.pem and
// flipping the live/ symlinks, operators copy or rename files over the old ones, and
// configs are often bind-mounted into containers. inotify follows the inode a watch was
// set on (the old target, or a file renamed away) and misses those changes, or reports
// them on a directory it was not asked about. A stat of each file's real path every
// couple of seconds sees all of them and costs nothing. A change is acted upon once the
// files have held still for one interval (certbot flips privkey.pem before
// fullchain.pem), so a renewal is picked up within two intervals.
//
// A pair that cannot be read or is refused never replaces the one serving from the same
// origin: the previous certificate keeps serving, and the refusal is logged.
//
// A certbot directory that does not exist yet (a fresh host, before certbot's first run)
// is only a warning when acme or tls.certificates can provide certificates meanwhile; the
// poll picks the lineages up once it appears.

import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CertRefusal, PemPair } from './certificate.ts';
import type { CertStore } from './cert-store.ts';
import type { EventLog } from '../log.ts';
import { errnoText } from '../errors.ts';

export const DEFAULT_WATCH_INTERVAL_MS = 2000;
/** A certificate chain or key is a few KB; anything this large is not one. */
const MAX_PEM_BYTES = 1024 * 1024;

export type CertFileSettings = {
  readonly certificates: readonly { readonly cert: string; readonly key: string }[];
  readonly certbot: string | null;
  /**
   * Something else can provide certificates (acme, tls.certificates): a certbot directory
   * that does not exist yet (a fresh host, before certbot's first run) is then a warning,
   * watched until it appears, instead of a problem.
   */
  readonly certbotOptional?: boolean;
};

/** The settings for a config: `tls.certbot` may be missing when acme or tls.certificates is set. */
export function certFileSettings(config: { readonly tls: CertFileSettings; readonly acme: object | null }): CertFileSettings {
  const { certificates, certbot } = config.tls;
  return { certificates, certbot, certbotOptional: config.acme !== null || certificates.length > 0 };
}

type SourceId = 'file' | 'certbot';

/** A pair read from disk, or why it could not be (the half at fault; the reason names the file). */
export type ReadPair = { pair: PemPair } | { origin: string; field: 'cert' | 'key'; reason: string };

/** What a source lists: its pairs as read (`index`: the tls.certificates entry), or why it cannot be listed. */
export type Listed = {
  items: (ReadPair & { index?: number })[];
  /** The certbot directory itself could not be listed: why, and whether that is only a warning. */
  unreadable?: { reason: string; missing: boolean };
};

/** One source as read from disk, not yet handed to the store. */
type Candidate = {
  id: SourceId;
  signature: string;
  listed: Listed;
  pairs: PemPair[];
  lastRead: Map<string, PemPair>;
  /** What start-up (and so a reload) refuses. */
  problems: string[];
};

/** Both sources read and checked; commit() hands them to the store. */
type PreparedFiles = { problems: string[]; commit(): Promise<void> };

export class CertificateFiles {
  readonly #store: Pick<CertStore, 'setSource' | 'check'>;
  readonly #log: EventLog;
  readonly #intervalMs: number;
  #settings: CertFileSettings = { certificates: [], certbot: null };
  readonly #loaded: Record<SourceId, string> = { file: '', certbot: '' };
  readonly #seen: Record<SourceId, string> = { file: '', certbot: '' };
  readonly #lastRead: Record<SourceId, Map<string, PemPair>> = { file: new Map(), certbot: new Map() };
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #running = false;

  constructor(options: { store: Pick<CertStore, 'setSource' | 'check'>; log: EventLog; intervalMs?: number }) {
    this.#store = options.store;
    this.#log = options.log;
    this.#intervalMs = options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
  }

  /**
   * Reads and checks every configured certificate without touching the store (a reload's
   * first phase). `problems` are what start-up refuses, as "key.path: message": a
   * `tls.certificates` pair that does not load, or a certbot directory that cannot be read.
   */
  prepare(settings: CertFileSettings): Promise<PreparedFiles> {
    return this.#serial(async () => {
      const candidates = [await this.#read('file', settings), await this.#read('certbot', settings)];
      const commit = () =>
        this.#serial(async () => {
          this.#settings = settings;
          for (const candidate of candidates) this.#apply(candidate);
        });
      return { problems: candidates.flatMap((c) => c.problems), commit };
    });
  }

  /** Reads every configured certificate now and hands them to the store; returns prepare()'s problems. */
  async load(settings: CertFileSettings): Promise<string[]> {
    const prepared = await this.prepare(settings);
    await prepared.commit();
    return prepared.problems;
  }

  /** Re-reads every file. Refusals are logged; what serves keeps serving. */
  reload(): Promise<string[]> {
    return this.load(this.#settings);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#serial(() => this.#poll())
        .catch((err: unknown) => this.#log.error('certificate_watch_failed', { error: String(err) }))
        .finally(() => this.#schedule());
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    for (const id of ['file', 'certbot'] as const) {
      if (!this.#running) return;
      const signature = await this.#signature(id, this.#settings);
      if (signature === this.#loaded[id]) {
        this.#seen[id] = signature;
      } else if (signature !== this.#seen[id]) {
        // Still changing (or just changed): look again next time.
        this.#seen[id] = signature;
      } else {
        this.#log.info('certificate_files_changed', { source: id });
        this.#apply(await this.#read(id, this.#settings));
      }
    }
  }

  async #read(id: SourceId, settings: CertFileSettings): Promise<Candidate> {
    const signature = await this.#signature(id, settings);
    const listed = id === 'file' ? await listFiles(settings) : await listCertbot(settings);
    const problems: string[] = [];
    const previous = this.#lastRead[id];
    const lastRead = new Map<string, PemPair>();
    const pairs: PemPair[] = [];
    const keep = (pair: PemPair) => {
      pairs.push(pair);
      lastRead.set(pair.origin, pair);
    };
    if (listed.unreadable !== undefined) {
      if (!listed.unreadable.missing) problems.push(`tls.certbot: ${listed.unreadable.reason}`);
      // Keep serving what was read before.
      for (const pair of previous.values()) keep(pair);
    }
    for (const item of listed.items) {
      if ('pair' in item) keep(item.pair);
      else {
        if (id === 'file') problems.push(`tls.certificates[${item.index}].${item.field}: ${item.reason}`);
        const last = previous.get(item.origin);
        if (last) keep(last);
      }
    }
    if (id === 'file') {
      const fresh = listed.items.flatMap((item) => ('pair' in item ? [item.pair] : []));
      for (const refusal of this.#store.check(fresh)) problems.push(describe(refusal, settings));
    }
    return { id, signature, listed, pairs, lastRead, problems };
  }

  /** Hands a source to the store; what could not be read is logged here, refusals by the store. */
  #apply({ id, signature, listed, pairs, lastRead }: Candidate): void {
    const { unreadable } = listed;
    if (unreadable?.missing) {
      this.#log.warn('certificate_dir_missing', { key: 'tls.certbot', source: id, error: unreadable.reason, message: 'watched until it appears' });
    } else if (unreadable) {
      this.#log.error('certificate_dir_unreadable', { source: id, error: unreadable.reason });
    }
    for (const item of listed.items) {
      if (!('pair' in item)) this.#log.error('certificate_refused', { code: 'CERT_INVALID', origin: item.origin, reason: item.reason, source: id });
    }
    this.#lastRead[id] = lastRead;
    this.#store.setSource(id, id, pairs);
    this.#loaded[id] = signature;
    this.#seen[id] = signature;
  }

  /** What the poll compares: each file's real path, inode, size and mtime. */
  async #signature(id: SourceId, settings: CertFileSettings): Promise<string> {
    const paths: string[] = [];
    if (id === 'file') {
      for (const { cert, key } of settings.certificates) paths.push(cert, key);
    } else if (settings.certbot !== null) {
      const dir = settings.certbot;
      const names = await lineages(dir);
      if ('reason' in names) return `!${names.reason}`;
      paths.push(`live=${names.join(',')}`);
      for (const name of names) paths.push(join(dir, 'live', name, 'fullchain.pem'), join(dir, 'live', name, 'privkey.pem'));
    }
    const parts = await Promise.all(paths.map((p) => (p.startsWith('live=') ? p : fileSignature(p))));
    return parts.join('|');
  }

  /** One load or poll at a time: a SIGHUP during a poll waits for it. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => {});
    return run;
  }
}

/** "tls.certificates[0].key: /etc/ssl/k.pem: does not match tls.certificates[0].cert", as `check` words it. */
function describe(refusal: CertRefusal, settings: CertFileSettings): string {
  const index = settings.certificates.findIndex((c) => c.cert === refusal.origin);
  const entry = settings.certificates[index];
  const field = refusal.field ?? 'cert';
  const path = field === 'key' ? entry?.key : entry?.cert;
  const reason =
    field === 'key' && refusal.reason === 'does not match the certificate' ? `does not match tls.certificates[${index}].cert` : refusal.reason;
  return `tls.certificates[${index}].${field}: ${path ?? refusal.origin}: ${reason}`;
}

/** Every tls.certificates pair, read (not parsed); `check` and start-up both read them here. */
export async function listFiles(settings: Pick<CertFileSettings, 'certificates'>): Promise<Listed> {
  const items: Listed['items'] = [];
  const seen = new Map<string, number>();
  for (const [index, { cert, key }] of settings.certificates.entries()) {
    // The certificate path is the origin: one path, one entry.
    const first = seen.get(cert);
    if (first !== undefined) {
      items.push({ origin: `${cert}#${index}`, field: 'cert', reason: `${cert} is also tls.certificates[${first}].cert`, index });
      continue;
    }
    seen.set(cert, index);
    items.push({ ...(await readPair(cert, key, cert)), index });
  }
  return { items };
}

/** Every certbot lineage's pair, read (not parsed); or why live/ cannot be listed. */
export async function listCertbot(settings: CertFileSettings): Promise<Listed> {
  const dir = settings.certbot;
  if (dir === null) return { items: [] };
  const names = await lineages(dir);
  if ('reason' in names) {
    if (names.code !== 'ENOENT') return { items: [], unreadable: { reason: names.reason, missing: false } };
    if (settings.certbotOptional) return { items: [], unreadable: { reason: names.reason, missing: true } };
    return { items: [], unreadable: { reason: `${names.reason}; nothing else provides a certificate (no acme, no tls.certificates)`, missing: false } };
  }
  const items: Listed['items'] = [];
  for (const name of names) {
    const live = join(dir, 'live', name);
    items.push(await readPair(join(live, 'fullchain.pem'), join(live, 'privkey.pem'), join(live, 'fullchain.pem')));
  }
  return { items };
}

async function fileSignature(path: string): Promise<string> {
  try {
    const real = await realpath(path);
    const s = await stat(real);
    return `${real}:${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (err) {
    return `${path}!${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** The certbot lineage names (directories under live/), sorted; or why live/ cannot be read. */
async function lineages(dir: string): Promise<string[] | { code: string; reason: string }> {
  const live = join(dir, 'live');
  let entries: string[];
  try {
    entries = await readdir(live);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return { code, reason: `cannot read ${live}: ${errnoText(err)}` };
  }
  const names: string[] = [];
  for (const name of entries.sort()) {
    if (name.startsWith('.')) continue;
    try {
      if ((await stat(join(live, name))).isDirectory()) names.push(name);
    } catch {
      // A dangling entry: not a lineage.
    }
  }
  return names;
}

async function readPair(certPath: string, keyPath: string, origin: string): Promise<ReadPair> {
  const cert = await readPem(certPath);
  if (typeof cert !== 'string') return { origin, field: 'cert', reason: cert.error };
  const key = await readPem(keyPath);
  if (typeof key !== 'string') return { origin, field: 'key', reason: key.error };
  return { pair: { cert, key, origin } };
}

/** A PEM file's text, or why it cannot be had ("cannot read /x.pem: no such file"). */
async function readPem(path: string): Promise<string | { error: string }> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) return { error: `cannot read ${path}: it is a directory, not a file` };
    if (!s.isFile()) return { error: `cannot read ${path}: not a regular file` };
    if (s.size > MAX_PEM_BYTES) return { error: `${path} is too large for a PEM file (${s.size} bytes)` };
    return await readFile(path, 'utf8');
  } catch (err) {
    return { error: `cannot read ${path}: ${errnoText(err)}` };
  }
}
