// Host -> site. Built once per config (start, SIGHUP) into a HostMap and read per request:
// the exact name first, then the wildcard one label deep (host-name.ts holds the rule).

import { HostMap, normalizeHostName } from '../host-name.ts';

export type SiteHosts = { readonly hosts: readonly string[] };

export type Routes<T> = {
  /** `host` is lower-case, without port (checkRequest's `host`). null: no site, answer 421. */
  lookup(host: string): T | null;
  readonly size: number;
};

/** `make` turns each site into what the request path needs (the site plus its upstream). */
export function buildRoutes<S extends SiteHosts, T>(sites: readonly S[], make: (site: S, index: number) => T): Routes<T> {
  const table = new HostMap<T>();
  sites.forEach((site, index) => {
    const value = make(site, index);
    for (const pattern of site.hosts) table.set(normalizeHostName(pattern), value);
  });
  return Object.freeze({
    size: table.size,
    lookup: (host: string): T | null => table.lookup(host) ?? null,
  });
}
