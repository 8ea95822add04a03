// The headers that cross the proxy, in both directions. Pure functions on the request path:
// one pass over the raw header list, a `switch` on the lower-cased name, no regex, no URL.
//
// Toward the upstream: hop-by-hop headers go (RFC 9110 7.6.1: Connection, every header
// Connection names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Connection),
// so do HTTP/2 pseudo-headers, and so do the client's own X-Forwarded-Proto/-Host and
// X-Real-IP. Only then does opam-edge add its own: a client cannot make the proxy drop the
// X-Forwarded-For it sets by writing `Connection: x-forwarded-for`.

export type ForwardOptions = {
  /** The Host to send: as the client sent it (or :authority, or the absolute-form authority). */
  hostHeader: string;
  /** The client's address, IPv4 already unmapped ("192.0.2.1", not "::ffff:192.0.2.1"). */
  clientIp: string;
  /** HTTP/2 clients may split Cookie into several fields; HTTP/1.1 needs one (RFC 9113 8.2.3). */
  h2: boolean;
  /** Keep `Upgrade` and send `Connection: upgrade` (WebSocket tunnel). */
  upgrade?: boolean;
};

/**
 * The tokens a Connection header lists, lower-cased ("close, X-Foo" -> ["close", "x-foo"]).
 * Appends to `into` so several Connection fields accumulate.
 */
export function connectionTokens(value: string, into: string[]): string[] {
  let start = 0;
  const length = value.length;
  for (let i = 0; i <= length; i++) {
    if (i === length || value.charCodeAt(i) === 0x2c /* , */) {
      let a = start;
      let b = i;
      while (a < b && isSpace(value.charCodeAt(a))) a++;
      while (b > a && isSpace(value.charCodeAt(b - 1))) b--;
      if (b > a) into.push(value.slice(a, b).toLowerCase());
      start = i + 1;
    }
  }
  return into;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * A cheap pre-filter on the name as sent (any case): true when it could be one of the
 * fields forwardRequestHeaders treats specially (hop-by-hop, Host, Expect, Cookie, the
 * forwarded ones, a pseudo-header), by length and first letter, before any lower-casing.
 */
function mayBeSpecial(name: string): boolean {
  const first = name.charCodeAt(0) | 0x20;
  // Pseudo-headers (":method" | 0x20 is still ":").
  if (first === 0x3a) return true;
  switch (name.length) {
    case 2: // te
      return first === 0x74;
    case 4: // host
      return first === 0x68;
    case 6: // expect, cookie
      return first === 0x65 || first === 0x63;
    case 7: // upgrade, trailer
      return first === 0x75 || first === 0x74;
    case 9: // x-real-ip
    case 15: // x-forwarded-for
      return first === 0x78;
    case 10: // connection, keep-alive
      return first === 0x63 || first === 0x6b;
    case 14: // http2-settings
      return first === 0x68;
    case 16: // x-forwarded-host, proxy-connection
      return first === 0x78 || first === 0x70;
    case 17: // x-forwarded-proto, transfer-encoding
      return first === 0x78 || first === 0x74;
    default:
      return false;
  }
}

function isConnectionOption(token: string): boolean {
  return token === 'keep-alive' || token === 'close' || token === 'upgrade' || token === 'te';
}

/** Headers that never cross a hop, whatever Connection says. */
export function isHopByHop(lowerName: string): boolean {
  switch (lowerName) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'te':
    case 'trailer':
    case 'transfer-encoding':
    case 'upgrade':
    // The h2c upgrade's companion, hop-by-hop by definition (RFC 7540 3.2.1).
    case 'http2-settings':
      return true;
    default:
      return false;
  }
}

/**
 * Client request headers (node's flat `rawHeaders`: name, value, name, value...) -> the flat
 * list sent upstream. Host, X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host
 * and X-Real-IP come last, from opam-edge.
 */
export function forwardRequestHeaders(rawHeaders: readonly string[], options: ForwardOptions): string[] {
  // First pass, only when the client sent a Connection header: which names it lists.
  let named: string[] | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') named = connectionTokens(rawHeaders[i + 1]!, named ?? []);
  }
  // "Connection: keep-alive" (or close, upgrade) names nothing that is not dropped anyway:
  // the fast path below stays on for nearly every request.
  if (named !== null && named.every(isConnectionOption)) named = null;
  const out: string[] = [];
  let forwardedFor: string | null = null;
  let cookie: string | null = null;
  let upgrade: string | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    // Most fields (Accept*, Sec-*, If-*...) are none of ours: passed on without lower-casing.
    if (named === null && !mayBeSpecial(name)) {
      out.push(name, value);
      continue;
    }
    // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are not fields.
    if (name.charCodeAt(0) === 0x3a) continue;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
      case 'x-real-ip':
      // undici refuses Expect; 100-continue is answered by opam-edge itself.
      case 'expect':
        continue;
      case 'upgrade':
        if (options.upgrade) upgrade = value;
        continue;
      default:
        if (isHopByHop(lower)) continue;
    }
    if (named !== null && named.includes(lower)) continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === null ? value : `${forwardedFor}, ${value}`;
    } else if (options.h2 && lower === 'cookie') {
      cookie = cookie === null ? value : `${cookie}; ${value}`;
    } else {
      out.push(name, value);
    }
  }
  if (cookie !== null) out.push('cookie', cookie);
  if (upgrade !== null) out.push('connection', 'upgrade', 'upgrade', upgrade);
  out.push(
    'host',
    options.hostHeader,
    'x-forwarded-for',
    forwardedFor === null ? options.clientIp : `${forwardedFor}, ${options.clientIp}`,
    'x-forwarded-proto',
    'https',
    'x-forwarded-host',
    options.hostHeader,
    'x-real-ip',
    options.clientIp,
  );
  return out;
}

export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** The field names a response's Connection header lists beyond its own options; null: none. */
function connectionNamed(connection: string | string[] | undefined): string[] | null {
  if (connection === undefined) return null;
  const named: string[] = [];
  if (typeof connection === 'string') connectionTokens(connection, named);
  else for (const value of connection) connectionTokens(value, named);
  return named.every(isConnectionOption) ? null : named;
}

/**
 * Upstream response headers (undici's parsed object, lower-case names) -> headers without
 * hop-by-hop fields, ready for HTTP/1.1 or HTTP/2 (which forbids exactly those
 * connection-specific fields). Returns `headers` itself when there is nothing to remove,
 * else a copy: copying a handful of keys is cheaper than `delete`, which turns the object
 * into a slow dictionary (measured in bench/micro).
 */
export function filterResponseHeaders(headers: ResponseHeaders): ResponseHeaders {
  const connection = headers.connection;
  if (
    connection === undefined &&
    headers['keep-alive'] === undefined &&
    headers['transfer-encoding'] === undefined &&
    headers['proxy-connection'] === undefined &&
    headers.te === undefined &&
    headers.trailer === undefined &&
    headers.upgrade === undefined &&
    headers['http2-settings'] === undefined
  ) {
    return headers;
  }
  const named = connectionNamed(connection);
  const out: ResponseHeaders = {};
  for (const name in headers) {
    if (isHopByHop(name) || (named !== null && named.includes(name))) continue;
    out[name] = headers[name];
  }
  return out;
}

/**
 * The same filtering as filterResponseHeaders, as the flat [name, value, ...] list that
 * node:http's writeHead takes for HTTP/1.1, with the upstream's Strict-Transport-Security
 * replaced by `hsts` when that is set: one pass and no object copy (callgrind: -1.3 %
 * instructions per 1 KiB HTTPS request). node:http2's respond() takes objects only.
 */
export function responseHeaderList(headers: ResponseHeaders, hsts: string | null): (string | string[])[] {
  const named = connectionNamed(headers.connection);
  const out: (string | string[])[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || isHopByHop(name) || (named !== null && named.includes(name))) continue;
    if (hsts !== null && name === 'strict-transport-security') continue;
    out.push(name, value);
  }
  if (hsts !== null) out.push('strict-transport-security', hsts);
  return out;
}
