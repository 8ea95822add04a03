// The periodic resolver of one upstream name (docs/behaviour.md, "Upstream resolution"),
// nginx's `resolver ... valid=`:
// A and AAAA at start and then every `valid`, through `resolver.servers` (or the system
// resolver when the list is empty, so /etc/hosts and Docker's resolv.conf work). A lookup
// that fails keeps the last good answer (per address family) and is logged; a changed
// answer is logged with the old and new sets and handed to `onChange`. One loop with
// start()/stop(), an unref'd timer, and a faster retry while it has never succeeded.

import { lookup, promises as dnsPromises } from 'node:dns';
import { promisify } from 'node:util';
import type { EventLog } from '../log.ts';

const lookupAll = promisify(lookup);

/** Per try; two tries per family. A DNS server that does not answer costs 4 s at most. */
const QUERY_TIMEOUT_MS = 2000;
const QUERY_TRIES = 2;
/** While there is no address at all, retry after 1 s, 2 s, 4 s... up to `valid`. */
const FIRST_RETRY_MS = 1000;

/** "Not there" answers: the name exists without records of this family, or does not exist. */
const EMPTY_ANSWER = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'ENONAME']);

export type FamilyAnswer = { ok: true; addresses: string[] } | { ok: false; reason: string };
export type Answer = { v4: FamilyAnswer; v6: FamilyAnswer };

/** One lookup of a name, both families. The seam tests and `check` use. */
export type Lookup = (name: string) => Promise<Answer>;

/** servers [] = the system resolver (getaddrinfo); else these DNS servers, "[::1]:5353" style. */
export function createLookup(servers: readonly string[]): Lookup {
  if (servers.length === 0) return systemLookup;
  const resolver = new dnsPromises.Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
  resolver.setServers(servers as string[]);
  const family = async (query: Promise<string[]>): Promise<FamilyAnswer> => {
    try {
      return { ok: true, addresses: await query };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      return EMPTY_ANSWER.has(code) ? { ok: true, addresses: [] } : { ok: false, reason: code };
    }
  };
  return async (name) => {
    const [v4, v6] = await Promise.all([family(resolver.resolve4(name)), family(resolver.resolve6(name))]);
    return { v4, v6 };
  };
}

async function systemLookup(name: string): Promise<Answer> {
  try {
    const all = await lookupAll(name, { all: true, order: 'ipv4first' });
    const v4: string[] = [];
    const v6: string[] = [];
    for (const a of all) (a.family === 6 ? v6 : v4).push(a.address);
    return { v4: { ok: true, addresses: v4 }, v6: { ok: true, addresses: v6 } };
  } catch (err) {
    // getaddrinfo does not tell the families apart: one failure is both.
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    return { v4: { ok: false, reason }, v6: { ok: false, reason } };
  }
}

/** A stable order (IPv4 first, then lexical): DNS servers rotate answers, that is no change. */
export function sortAddresses(addresses: readonly string[]): string[] {
  return [...new Set(addresses)].sort((a, b) => {
    const av6 = a.includes(':');
    if (av6 !== b.includes(':')) return av6 ? 1 : -1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export type ResolverOptions = {
  /** The upstream name, e.g. "opam_live". Never an IP literal (those are not resolved). */
  name: string;
  /** The upstream as configured, for logs ("http://opam_live:80"). */
  label: string;
  validMs: number;
  lookup: Lookup;
  log: EventLog;
  onChange: (addresses: readonly string[]) => void;
  /** The last good answer of a previous resolver for this name (reload). */
  initial?: readonly string[];
};

export class Resolver {
  readonly #o: ResolverOptions;
  #v4: readonly string[] = [];
  #v6: readonly string[] = [];
  #current: readonly string[];
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #retryMs = FIRST_RETRY_MS;
  #lastFailure: string | null = null;
  #lastSuccessAt: number | null = null;

  constructor(options: ResolverOptions) {
    this.#o = options;
    this.#current = Object.freeze(sortAddresses(options.initial ?? []));
    this.#v4 = this.#current.filter((a) => !a.includes(':'));
    this.#v6 = this.#current.filter((a) => a.includes(':'));
  }

  /** The current addresses (sorted, frozen); empty until the first good answer. */
  get addresses(): readonly string[] {
    return this.#current;
  }

  get status() {
    return { name: this.#o.name, addresses: this.#current, lastFailure: this.#lastFailure, lastSuccessAt: this.#lastSuccessAt };
  }

  /** Starts the loop. Resolves after the first attempt, successful or not: never rejects. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#tick();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** One resolution now (also what the loop runs). Never throws. */
  async refresh(): Promise<void> {
    let answer: Answer;
    try {
      answer = await this.#o.lookup(this.#o.name);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? String(err);
      answer = { v4: { ok: false, reason }, v6: { ok: false, reason } };
    }
    const failures: string[] = [];
    const v4 = answer.v4.ok ? answer.v4.addresses : (failures.push(`A ${answer.v4.reason}`), this.#v4);
    const v6 = answer.v6.ok ? answer.v6.addresses : (failures.push(`AAAA ${answer.v6.reason}`), this.#v6);
    if (v4.length + v6.length === 0) {
      // No address at all (NXDOMAIN while a container is replaced, say): nothing to send
      // requests to, so the last good answer is the better bet.
      if (failures.length === 0) failures.push('no A or AAAA records');
    } else {
      this.#v4 = v4;
      this.#v6 = v6;
    }
    if (failures.length > 0) {
      this.#lastFailure = failures.join(', ');
      this.#o.log.warn('upstream_resolve_failed', {
        code: 'RESOLVE_FAILED',
        upstream: this.#o.label,
        name: this.#o.name,
        reason: this.#lastFailure,
        keeping: this.#current,
      });
    } else {
      this.#lastFailure = null;
      this.#lastSuccessAt = Date.now();
    }
    const next = sortAddresses([...this.#v4, ...this.#v6]);
    if (!sameList(next, this.#current)) {
      const old = this.#current;
      this.#current = Object.freeze(next);
      this.#o.log.info('upstream_addresses_changed', { upstream: this.#o.label, name: this.#o.name, old, new: this.#current });
      try {
        this.#o.onChange(this.#current);
      } catch (err) {
        this.#o.log.error('upstream_update_failed', { upstream: this.#o.label, error: String(err) });
      }
    }
  }

  async #tick(): Promise<void> {
    this.#timer = null;
    await this.refresh();
    if (!this.#running) return;
    let delay = this.#o.validMs;
    if (this.#current.length === 0) {
      // Start-up with DNS down: come back sooner than `valid`, with jitter.
      delay = Math.min(this.#o.validMs, this.#retryMs) * (0.8 + Math.random() * 0.4);
      this.#retryMs = Math.min(this.#retryMs * 2, this.#o.validMs);
    } else {
      this.#retryMs = FIRST_RETRY_MS;
    }
    this.#timer = setTimeout(() => void this.#tick(), delay);
    this.#timer.unref();
  }
}

/**
 * `opam-edge check`: does every upstream name resolve through the configured resolver now?
 * One entry (the site's index and why) per site whose name does not; IP literals pass.
 */
export async function checkUpstreamNames(
  sites: readonly { readonly upstream: { readonly host: string; readonly literal: boolean; readonly text: string } }[],
  servers: readonly string[],
  lookup: Lookup = createLookup(servers),
): Promise<{ site: number; message: string }[]> {
  const via = servers.length === 0 ? 'the system resolver' : `resolver.servers (${servers.join(', ')})`;
  const answers = new Map<string, Promise<Answer>>();
  const problems = await Promise.all(
    sites.map(async (site, i) => {
      const { host, literal } = site.upstream;
      if (literal) return null;
      if (!answers.has(host)) answers.set(host, lookup(host).catch((err: unknown) => failedAnswer(err)));
      const answer = await answers.get(host)!;
      const found = (answer.v4.ok ? answer.v4.addresses.length : 0) + (answer.v6.ok ? answer.v6.addresses.length : 0);
      if (found > 0) return null;
      const reasons = [answer.v4, answer.v6].map((a) => (a.ok ? 'no records' : a.reason));
      return { site: i, message: `"${host}" does not resolve through ${via} (A: ${reasons[0]}, AAAA: ${reasons[1]})` };
    }),
  );
  return problems.filter((p) => p !== null);
}

function failedAnswer(err: unknown): Answer {
  const reason = (err as NodeJS.ErrnoException).code ?? String(err);
  return { v4: { ok: false, reason }, v6: { ok: false, reason } };
}
