// The answers opam-edge writes itself on the https side (421, 413, 502, 503, 504...): a short
// plain-text body with the status, the catalogue message and the request id, which is also
// in the access log and the event, so an operator can match a user's report to a log line.

import type { ServerResponse } from 'node:http';
import type { H2Response } from './h2-exchange.ts';
import { ERRORS } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';

export type AnyResponse = ServerResponse | H2Response;

export type ErrorAnswer = { status: number; bytes: number };

/**
 * Writes the error answer for `code`. `close` ends an HTTP/1.1 connection after it (framing
 * errors, an unread body). Returns what was sent, for the access log; nothing is written
 * when the response has already started or the client is gone.
 */
export function sendError(
  res: AnyResponse,
  code: ErrorCode,
  requestId: string,
  options: { head: boolean; hsts: string | null; close: boolean },
): ErrorAnswer {
  const { status, message } = ERRORS[code];
  if (res.headersSent || res.destroyed) return { status, bytes: 0 };
  const body = `${status} ${message}\nrequest id: ${requestId}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
    'x-request-id': requestId,
  };
  if (options.hsts !== null) headers['strict-transport-security'] = options.hsts;
  if (options.close && 'shouldKeepAlive' in res) res.shouldKeepAlive = false;
  // Same signatures at run time for HTTP/1.1 and H2Response.
  const out = res as ServerResponse;
  out.writeHead(status, headers);
  if (options.head) out.end();
  else out.end(body);
  return { status, bytes: options.head ? 0 : body.length };
}
