// The checks every request passes on both ports before anything else looks at it: message
// framing that node:http's parser accepts but a gateway must not pass on, and the Host.
// Returns the target in origin-form and the validated host, or the catalogue code to answer.

import type { IncomingMessage } from 'node:http';
import type { H2Request } from './h2-exchange.ts';
import type { ErrorCode } from '../errors.ts';
import { hostFieldCount, hostWithoutPort } from './headers.ts';

export type Target = {
  /** Lower-cased host without port ($host). */
  host: string;
  /** The Host header value to send on (with its port), from the authority for absolute-form. */
  hostHeader: string;
  /** Origin-form path and query: always starts with "/". */
  path: string;
};

export type CheckResult = Target | { error: ErrorCode };

export function checkRequest(req: IncomingMessage | H2Request): CheckResult {
  const headers = req.headers;
  let hostHeader: string | undefined;
  if ((req as H2Request).stream !== undefined) {
    hostHeader = (headers[':authority'] as string | undefined) ?? headers.host;
  } else {
    // llhttp accepts "GET /p" (HTTP/0.9) and "HTTP/2.0" in an HTTP/1 request line.
    if (req.httpVersionMajor !== 1) return { error: req.httpVersionMajor === 0 ? 'HTTP_09' : 'HTTP_VERSION_NOT_SUPPORTED' };
    const te = headers['transfer-encoding'];
    if (te !== undefined) {
      // HTTP/1.0 has no chunked coding: a body framed by it is a smuggling attempt.
      if (req.httpVersionMinor === 0) return { error: 'BAD_FRAMING' };
      if (te.length !== 7 || te.toLowerCase() !== 'chunked') return { error: 'UNSUPPORTED_TRANSFER_ENCODING' };
    }
    if (hostFieldCount(req.rawHeaders) > 1) return { error: 'BAD_HOST' };
    hostHeader = headers.host;
  }
  // Checked for absolute-form targets too (RFC 9112 3.2, as nginx does), although the
  // target's authority then replaces it (3.2.2).
  const host = hostWithoutPort(hostHeader);
  if (host === null) return { error: 'BAD_HOST' };
  const url = req.url ?? '';
  if (url.charCodeAt(0) === 0x2f /* / */) return { host, hostHeader: hostHeader!, path: url };
  return absoluteForm(url);
}

/** "http://Example.org:8080/p?q" -> host "example.org", Host "Example.org:8080", path "/p?q". */
function absoluteForm(url: string): CheckResult {
  const lower = url.slice(0, 8).toLowerCase();
  const start = lower.startsWith('http://') ? 7 : lower.startsWith('https://') ? 8 : -1;
  if (start < 0) return { error: 'BAD_REQUEST' };
  let end = url.length;
  for (let i = start; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x2f || c === 0x3f) {
      end = i;
      break;
    }
  }
  const authority = url.slice(start, end);
  // userinfo in the target is not allowed for http(s) (RFC 9110 4.2.4).
  if (authority.includes('@')) return { error: 'BAD_HOST' };
  const host = hostWithoutPort(authority);
  if (host === null) return { error: 'BAD_HOST' };
  const rest = url.slice(end);
  const path = rest.length === 0 ? '/' : rest.charCodeAt(0) === 0x3f ? `/${rest}` : rest;
  return { host, hostHeader: authority, path };
}
