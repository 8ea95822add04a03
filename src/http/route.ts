// Host -> site. Built once per config (start, SIGHUP) into two maps and read per request:
// the exact name first, then the wildcard one label deep ("*.example.org" matches
// "a.example.org", not "example.org" nor "a.b.example.org", as in nginx and Caddy).

export type SiteHosts = { readonly hosts: readonly string[] };

export type Routes<T> = {
  /** `host` is lower-case, without port (checkRequest's `host`). null: no site, answer 421. */
  lookup(host: string): T | null;
  readonly size: number;
};

/** `make` turns each site into what the request path needs (the site plus its upstream). */
export function buildRoutes<S extends SiteHosts, T>(sites: readonly S[], make: (site: S, index: number) => T): Routes<T> {
  const exact = new Map<string, T>();
  const wildcard = new Map<string, T>();
  sites.forEach((site, index) => {
    const value = make(site, index);
    for (const pattern of site.hosts) {
      const host = pattern.toLowerCase();
      if (host.startsWith('*.')) wildcard.set(host.slice(2), value);
      else exact.set(host, value);
    }
  });
  const hasWildcards = wildcard.size > 0;
  return Object.freeze({
    size: exact.size + wildcard.size,
    lookup(host: string): T | null {
      const found = exact.get(host);
      if (found !== undefined) return found;
      if (!hasWildcards) return null;
      const dot = host.indexOf('.');
      if (dot <= 0) return null;
      return wildcard.get(host.slice(dot + 1)) ?? null;
    },
  });
}
