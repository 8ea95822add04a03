// Host -> site. Built once per config (start, SIGHUP) into a HostMap and read per request:
// the exact name first, then the wildcard one label deep (host-name.ts holds the rule).

import { HostMap, normalizeHostName } from '../host-name.ts';
import type { HostLookup } from '../host-name.ts';

export type SiteHosts = { readonly hosts: readonly string[] };

/** lookup(host): `host` as checkRequest gives it (normal form). null: no site, answer 421. */
export type Routes<T> = Pick<HostLookup<T>, 'lookup' | 'size'>;

/** `make` turns each site into what the request path needs (the site plus its upstream). */
export function buildRoutes<S extends SiteHosts, T>(sites: readonly S[], make: (site: S, index: number) => T): Routes<T> {
  const table = new HostMap<T>();
  sites.forEach((site, index) => {
    const value = make(site, index);
    for (const pattern of site.hosts) table.set(normalizeHostName(pattern), value);
  });
  // The map itself, without a wrapper on the request path; frozen, and typed without set().
  return Object.freeze(table);
}
