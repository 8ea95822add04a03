// Who may write through the admin listener (POST /renew/NAME orders a certificate). Reads
// (GET, HEAD) stay open, as they were. A write needs, in this order:
//   1. no browser cross-site markers, whatever else it carries: a page on any site can make
//      a browser POST to a loopback address, but the browser then sends `Origin` (not ours)
//      or `Sec-Fetch-Site: cross-site | same-site`. 403.
//   2. with `admin_token_file`: `Authorization: Bearer TOKEN`, compared in constant time;
//      401 with `WWW-Authenticate: Bearer` otherwise.
//   3. without it: `admin_writes: open`, else 403 saying how to turn writes on. Open writes
//      also need a Host that is an address or `localhost`: a page that rebinds its own DNS
//      name to 127.0.0.1 sends its own name as Host and as Origin, which 1. cannot tell from
//      ours (with a token it would still lack the token).

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIpLiteral, normalizeHostName } from '../host-name.ts';

export type AdminAccess = {
  /** The bearer token (admin_token_file, trimmed); null when none is configured. */
  token: string | null;
  /** admin_writes: "open" lets writes through without a token. */
  writes: 'open' | null;
};

type Refusal = { status: 401 | 403; error: string; headers: Record<string, string> };

const ENABLE_HINT =
  'admin writes are off: set admin_token_file (a file holding a bearer token) and send "Authorization: Bearer TOKEN", or set admin_writes: open';

/** null when the write may go on; otherwise the answer to send. */
export function refuseWrite(req: IncomingMessage, access: AdminAccess): Refusal | null {
  const crossSite = crossSiteMarker(req);
  if (crossSite) return { status: 403, error: `cross-site request refused (${crossSite})`, headers: {} };
  if (access.token !== null) {
    const given = bearer(req.headers.authorization);
    if (given !== null && sameSecret(given, access.token)) return null;
    const challenge = given === null ? 'Bearer realm="opam-edge admin"' : 'Bearer realm="opam-edge admin", error="invalid_token"';
    return { status: 401, error: given === null ? 'a bearer token is required (Authorization: Bearer TOKEN)' : 'wrong bearer token', headers: { 'www-authenticate': challenge } };
  }
  if (access.writes === 'open') {
    const host = hostOnly(req.headers.host);
    if (host === 'localhost' || isIpLiteral(host)) return null;
    return { status: 403, error: `open admin writes need the admin address as Host (an IP or localhost), not ${host.slice(0, 100) || '(none)'}: a name could be DNS rebinding`, headers: {} };
  }
  return { status: 403, error: ENABLE_HINT, headers: {} };
}

/** The Host header without its port, normalised ("[::1]:9145" -> "[::1]"). */
function hostOnly(header: string | undefined): string {
  if (header === undefined) return '';
  const h = normalizeHostName(header.trim());
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon > 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

/** What gives a browser's cross-site request away; null when nothing does. */
function crossSiteMarker(req: IncomingMessage): string | null {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  if (origin === undefined) return null;
  // Our own origin is the one the request was sent to (the admin listener speaks plain http).
  const host = req.headers.host;
  if (host === undefined || origin.toLowerCase() !== `http://${host.toLowerCase()}`) return `Origin ${origin.slice(0, 100)} is not http://${host ?? '(no Host)'}`;
  return null;
}

function bearer(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match ? match[1]! : null;
}

/** Equal-length digests, so neither the content nor the length of the token leaks by timing. */
function sameSecret(given: string, token: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}
