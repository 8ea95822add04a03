// Every distinct upstream of the config (host + port) with its resolver and its pools. The
// request path holds an UpstreamTarget (found through the routes) and calls pick(); the
// control plane (start, reload, stop) adds and retires targets. A target whose upstream
// stays across a reload keeps its pools and addresses.

import type { Config, Upstream } from '../config.ts';
import type { EventLog } from '../log.ts';
import { AddressPools } from './pools.ts';
import type { Picked, PoolSettings } from './pools.ts';
import { createLookup, Resolver } from './resolver.ts';
import type { Lookup } from './resolver.ts';

/** How long start() waits for the first answers before letting the listeners open anyway. */
const FIRST_ANSWER_WAIT_MS = 5000;

export type UpstreamTarget = {
  /** "http://opam_live:80" as configured. */
  readonly label: string;
  /** A pool and address, round-robin; null when no address is known yet (503). */
  pick(): Picked | null;
  /** Current pools (tests, /status). */
  readonly pools: AddressPools;
};

type Entry = {
  target: UpstreamTarget;
  pools: AddressPools;
  resolver: Resolver | null;
  upstream: Upstream;
};

export type UpstreamsDeps = {
  log: EventLog;
  /** DNS seam: defaults to createLookup(resolver.servers). */
  lookup?: (servers: readonly string[]) => Lookup;
};

function keyOf(upstream: Upstream): string {
  return `${upstream.host}|${upstream.port}`;
}

function poolSettings(config: Config): PoolSettings {
  return {
    connectTimeoutMs: config.limits.upstream_connect_timeout,
    readTimeoutMs: config.limits.upstream_read_timeout,
  };
}

function resolverKey(config: Config): string {
  return `${config.resolver.servers.join(',')}|${config.resolver.valid}`;
}

export class Upstreams {
  readonly #log: EventLog;
  readonly #makeLookup: (servers: readonly string[]) => Lookup;
  #entries = new Map<string, Entry>();
  #resolverKey = '';
  #lookup: Lookup | null = null;
  #stopped = false;

  constructor(deps: UpstreamsDeps) {
    this.#log = deps.log;
    this.#makeLookup = deps.lookup ?? createLookup;
  }

  /** Creates the targets and waits (bounded) for the first DNS answers. Never fails on DNS. */
  async start(config: Config): Promise<void> {
    const commit = await this.reload(config);
    await commit();
  }

  /**
   * Prepares the targets of a new config: new upstreams are created and resolved first,
   * kept ones get the new settings. Returns a commit function that retires the upstreams
   * no longer configured; call it once the new routes are in place.
   */
  async reload(config: Config): Promise<() => Promise<void>> {
    const settings = poolSettings(config);
    const resolverChanged = resolverKey(config) !== this.#resolverKey;
    this.#resolverKey = resolverKey(config);
    if (resolverChanged || this.#lookup === null) this.#lookup = this.#makeLookup(config.resolver.servers);
    const lookup = this.#lookup;
    const next = new Map<string, Entry>();
    const firstAnswers: Promise<void>[] = [];
    for (const site of config.sites) {
      const key = keyOf(site.upstream);
      if (next.has(key)) continue;
      const existing = this.#entries.get(key);
      if (existing) {
        existing.pools.setSettings(settings);
        if (resolverChanged && existing.resolver) {
          // New servers or interval: a new loop, seeded with the last good answer.
          existing.resolver.stop();
          existing.resolver = this.#resolver(existing.upstream, existing.pools, config, lookup, existing.resolver.addresses);
          firstAnswers.push(existing.resolver.start());
        }
        next.set(key, existing);
        continue;
      }
      const entry = this.#create(site.upstream, config, settings, lookup);
      if (entry.resolver) firstAnswers.push(entry.resolver.start());
      next.set(key, entry);
    }
    if (firstAnswers.length > 0) await waitAtMost(Promise.all(firstAnswers), FIRST_ANSWER_WAIT_MS);
    const previous = this.#entries;
    this.#entries = next;
    return async () => {
      const retired = [...previous].filter(([key, entry]) => next.get(key) !== entry).map(([, entry]) => entry);
      await Promise.all(retired.map((entry) => this.#retire(entry)));
    };
  }

  /** The target of a configured upstream (the routes hold it). */
  get(upstream: Upstream): UpstreamTarget {
    const entry = this.#entries.get(keyOf(upstream));
    if (!entry) throw new Error(`no upstream ${upstream.text}: reload() must come first`);
    return entry.target;
  }

  /** Stops the resolvers and closes every pool; in-flight requests finish (up to `graceMs`). */
  async stop(graceMs = 0): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const entries = [...this.#entries.values()];
    this.#entries = new Map();
    for (const e of entries) e.resolver?.stop();
    const closed = Promise.all(entries.map((e) => e.pools.close()));
    if (!(await waitAtMost(closed, graceMs))) await Promise.all(entries.map((e) => e.pools.destroy()));
  }

  /** Per upstream: current addresses, the last lookup's failure and the last good answer's time (ms). */
  status(): { upstream: string; addresses: readonly string[]; lastFailure: string | null; resolvedAt: number | null }[] {
    return [...this.#entries.values()].map((e) => ({
      upstream: e.upstream.text,
      addresses: e.pools.addresses,
      lastFailure: e.resolver?.status.lastFailure ?? null,
      resolvedAt: e.resolver?.status.lastSuccessAt ?? null,
    }));
  }

  #create(upstream: Upstream, config: Config, settings: PoolSettings, lookup: Lookup): Entry {
    const pools = new AddressPools(upstream.port, settings, this.#log, upstream.text);
    const target: UpstreamTarget = Object.freeze({ label: upstream.text, pools, pick: () => pools.pick() });
    // An IP literal is used as it is: never resolved.
    if (upstream.literal) {
      pools.setAddresses([upstream.host]);
      return { target, pools, resolver: null, upstream };
    }
    return { target, pools, resolver: this.#resolver(upstream, pools, config, lookup, []), upstream };
  }

  #resolver(upstream: Upstream, pools: AddressPools, config: Config, lookup: Lookup, initial: readonly string[]): Resolver {
    return new Resolver({
      name: upstream.host,
      label: upstream.text,
      validMs: config.resolver.valid,
      lookup,
      log: this.#log,
      initial,
      onChange: (addresses) => pools.setAddresses(addresses),
    });
  }

  async #retire(entry: Entry): Promise<void> {
    entry.resolver?.stop();
    await entry.pools.close();
    this.#log.info('upstream_removed', { upstream: entry.upstream.text });
  }
}

/** true when `promise` settled within `ms`. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
