// The one writer of the answers opam-edge makes itself (400, 404, 421, 413, 502, 503, 504...),
// on both ports: every catalogue code renders the same way, a status line with its reason, a
// short plain-text body with the status, the catalogue message and a request id, the id
// again as X-Request-Id (and in the access log and the event, so an operator can match a
// user's report to a log line), Strict-Transport-Security where the caller says it is due.
//
// Two carriers: a response object (node:http's ServerResponse, or H2Response, which has
// the same shape over an h2 stream), and a raw socket when no response object exists (a
// request node:http's parser refused, an Upgrade refused before its tunnel).

import type { OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERRORS } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';

/** What the writer needs of a response: ServerResponse and H2Response both fit. */
export type ErrorTarget = {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  /** HTTP/1.1 only: false closes the connection after this answer. */
  shouldKeepAlive?: boolean;
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  end(chunk?: string): unknown;
};

export type ErrorAnswer = { status: number; bytes: number };

export type ErrorOptions = {
  /** A HEAD request: the head only. */
  head: boolean;
  hsts: string | null;
  /** End an HTTP/1.1 connection after the answer (framing errors, an unread body). */
  close: boolean;
};

type Rendered = { readonly status: number; readonly reason: string; readonly bodyStart: string };

// Rendered once: per answer only the request id is added.
const RENDERED = Object.fromEntries(
  Object.entries(ERRORS).map(([code, { status, message }]) => [
    code,
    // "Bad Gateway: the upstream refused..." -> reason "Bad Gateway"
    Object.freeze({ status, reason: message.split(':')[0]!, bodyStart: `${status} ${message}\nrequest id: ` }),
  ]),
) as Record<ErrorCode, Rendered>;

/** The status line's reason phrase of a code ("Misdirected Request"). */
export function reasonOf(code: ErrorCode): string {
  return RENDERED[code].reason;
}

/** The body of the answer for `code` (catalogue messages are ASCII: length = bytes). */
function errorBody(code: ErrorCode, requestId: string): string {
  return `${RENDERED[code].bodyStart}${requestId}\n`;
}

/**
 * Writes the answer for `code` on a response. Returns what was sent, for the access log;
 * nothing is written when the response has already started or the client is gone.
 */
export function sendError(res: ErrorTarget, code: ErrorCode, requestId: string, options: ErrorOptions): ErrorAnswer {
  const status = RENDERED[code].status;
  if (res.headersSent || res.destroyed) return { status, bytes: 0 };
  const body = errorBody(code, requestId);
  const headers: OutgoingHttpHeaders = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
    'x-request-id': requestId,
  };
  if (options.hsts !== null) headers['strict-transport-security'] = options.hsts;
  if (options.close && res.shouldKeepAlive !== undefined) res.shouldKeepAlive = false;
  res.writeHead(status, headers);
  if (options.head) res.end();
  else res.end(body);
  return { status, bytes: options.head ? 0 : body.length };
}

/**
 * Writes the answer for `code` as raw HTTP/1.1 on a socket, then closes it once sent: no
 * response object exists, and the bytes after a refused request cannot be trusted.
 */
export function sendSocketError(socket: Duplex, code: ErrorCode, requestId: string, hsts: string | null): ErrorAnswer {
  const { status, reason } = RENDERED[code];
  if (!socket.writable) {
    socket.destroy();
    return { status, bytes: 0 };
  }
  const body = errorBody(code, requestId);
  const sts = hsts === null ? '' : `Strict-Transport-Security: ${hsts}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nCache-Control: no-store\r\nX-Request-Id: ${requestId}\r\n${sts}Connection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
  return { status, bytes: body.length };
}
