// Bytes node:http's parser refused (or headers that did not come in time), and CONNECT: as
// fastify's setup-client-error-handler, pick the status from the parser's code, write the
// answer through the one error writer, close. No request exists yet, so the answer's
// request id is made here.

import type { Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.ts';
import { sendError, sendSocketError } from './error-response.ts';
import { requestId as nextRequestId } from './headers.ts';

/** llhttp's error (and, where one code covers several cases, its reason) -> catalogue code. */
export function clientErrorCode(err: { code?: string; reason?: string }): ErrorCode {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'HEADERS_TOO_LARGE';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'REQUEST_TIMEOUT';
    case 'HPE_INVALID_TRANSFER_ENCODING':
      // llhttp raises this one for Content-Length next to Transfer-Encoding too: that is a
      // framing conflict (400), not an unsupported coding (501).
      return err.reason?.includes('Content-Length') ? 'BAD_FRAMING' : 'UNSUPPORTED_TRANSFER_ENCODING';
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_INVALID_CHUNK_SIZE':
      return 'BAD_FRAMING';
    case 'HPE_INVALID_VERSION':
      // "HTTP/1.2", "HTTP/3.0": a version; "HTTP/1.1 x", a bare LF after it: a bad line.
      return err.reason === 'Invalid HTTP version' ? 'HTTP_VERSION_NOT_SUPPORTED' : 'BAD_REQUEST';
    default:
      return 'BAD_REQUEST';
  }
}

/** node:http keeps the response in flight on its socket as `_httpMessage`. */
type ServerSocket = Socket & { _httpMessage?: ServerResponse | null };

/**
 * node:http's parser refused the bytes (or the headers did not come in time). Answer with
 * a status where one makes sense, then close: after a framing error the rest of the
 * stream cannot be trusted. A response already under way is never corrupted:
 *  - the broken bytes are the in-flight request's own body (a bad chunk): while its answer
 *    has not started, it is answered 400 on its own response (the proxy sees that response
 *    close and aborts the upstream request); once the answer has started, the connection
 *    is cut, since a streamed answer cannot be taken back;
 *  - they belong to a pipelined next request: the answer in flight finishes (with
 *    "Connection: close" when its head is not out yet), then the next request's error
 *    answer follows and the socket ends (unless it was ending after this answer anyway).
 */
export function onClientError(err: Error & { code?: string; reason?: string }, socket: Socket): void {
  const inFlight = (socket as ServerSocket)._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
  } else if (inFlight) {
    if (!inFlight.req.complete) {
      if (inFlight.headersSent) socket.destroy();
      else answerInFlight(inFlight);
      return;
    }
    // Bytes after a request that ends the connection (HTTP/1.0, Connection: close) are
    // no request at all (llhttp: HPE_CLOSED_CONNECTION): nothing to answer.
    if (!inFlight.shouldKeepAlive || err.code === 'HPE_CLOSED_CONNECTION') return;
    if (!inFlight.headersSent) inFlight.shouldKeepAlive = false;
    if (inFlight.writableFinished) answerAndClose(socket, clientErrorCode(err));
    // Before node:http's own 'finish' listener, which hands the socket on or ends it.
    else inFlight.prependOnceListener('finish', () => answerAndClose(socket, clientErrorCode(err)));
  } else {
    answerAndClose(socket, clientErrorCode(err));
  }
}

/** 400 for a request whose body broke before its answer started; the connection then closes. */
function answerInFlight(res: ServerResponse): void {
  sendError(res, 'BAD_FRAMING', nextRequestId(), { head: res.req.method === 'HEAD', hsts: null, close: true });
}

/** CONNECT is for forward proxies; opam-edge is not one (nginx answers 405 too). */
export function onConnectRequest(_req: IncomingMessage, socket: Socket): void {
  answerAndClose(socket, 'METHOD_NOT_ALLOWED');
}

function answerAndClose(socket: Socket, code: ErrorCode): void {
  sendSocketError(socket, code, nextRequestId(), null);
}
