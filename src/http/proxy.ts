// One request to the upstream and its response back to the client, on undici's raw
// dispatch(opts, handler): no intermediate stream objects, the handler writes each body chunk
// straight to the client response.
//
// The walk through one request:
//  1. The gateway has checked, routed and picked a pool (an address of the upstream).
//  2. dispatch() sends the head; the request body, if any, is the client request itself
//     (a Readable: undici pauses it when the upstream socket is full) or, when a body limit
//     applies to a body of unknown length, an async generator that counts and stops at the
//     limit. Either way nothing is buffered beyond the streams' high-water marks.
//  3. onResponseStart: hop-by-hop headers removed, HSTS set, head written to the client.
//  4. onResponseData: res.write(chunk); when it returns false the client is slower than
//     the upstream, so the upstream read is paused until 'drain' (backpressure both ways).
//  5. onResponseEnd: res.end(); the upstream connection goes back to the pool.
//  6. onResponseError: before the head was written, a 502/504 (or 413) answer with the
//     request id; after, the client connection is cut (HTTP/1.1: the socket is destroyed;
//     h2: the stream is reset), because a truncated body must not look complete.
//  7. The client going away (res 'close' before the end) aborts the upstream request, which
//     closes that upstream connection: nothing keeps streaming into a dead socket.

import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { constants as h2constants } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { EdgeError, upstreamFailure } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { Picked } from '../upstream/pools.ts';
import { filterResponseHeaders, responseHeaderList } from './forward-headers.ts';
import type { ResponseHeaders } from './forward-headers.ts';
import { sendError } from './error-response.ts';
import type { H2Request, H2Response } from './h2-exchange.ts';

export type AnyRequest = IncomingMessage | H2Request;
export type AnyResponse = ServerResponse | H2Response;

export type ProxyOutcome = {
  status: number;
  bytesSent: number;
  /** Set when the upstream failed, the body was too large, or the client went away. */
  error: ErrorCode | null;
  cause: unknown;
};

export type ProxyRequest = {
  req: AnyRequest;
  res: AnyResponse;
  picked: Picked;
  method: string;
  /** Origin-form path and query. */
  path: string;
  /** The flat header list from forwardRequestHeaders(). */
  headers: string[];
  h2: boolean;
  /** limits.max_body_size for a body whose length is not announced; null = no limit. */
  streamingBodyLimit: number | null;
  hsts: string | null;
  requestId: string;
  /** Called exactly once, when the exchange is over (complete, failed or abandoned). */
  done: (outcome: ProxyOutcome) => void;
};

const CLIENT_CLOSED = new EdgeError('CLIENT_CLOSED');

export function proxy(p: ProxyRequest): void {
  const handler = new ProxyHandler(p);
  const body = requestBody(p);
  p.picked.pool.dispatch(
    {
      path: p.path,
      method: p.method as Dispatcher.HttpMethod,
      headers: p.headers,
      // undici takes async iterables at run time; its types list only Readable.
      body: body as IncomingMessage | null,
      // Never pipelined; an upgrade never comes this way (see tunnel.ts).
      upgrade: null,
    },
    handler,
  );
}

/** null when the request has no body. The body is the request (HTTP/1.1) or the h2 stream. */
function requestBody(p: ProxyRequest): Readable | AsyncIterable<Buffer> | null {
  const req = p.req;
  let body: Readable | AsyncIterable<Buffer>;
  if (p.h2) {
    const stream = (req as H2Request).stream;
    if (stream.endAfterHeaders) return null;
    // undici destroys a stream body once it is sent, and the h2 stream also carries the
    // answer back: undici gets an iterator of it that leaves the stream open.
    body = stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
  } else {
    const headers = req.headers;
    const length = headers['content-length'];
    if (headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return null;
    body = req as IncomingMessage;
  }
  if (p.streamingBodyLimit !== null && req.headers['content-length'] === undefined) {
    return limitedBody(body, p.streamingBodyLimit);
  }
  return body;
}

/** Counts a body of unknown length as it streams; past `limit`, the request fails with 413. */
async function* limitedBody(body: Readable | AsyncIterable<Buffer>, limit: number): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > limit) throw new EdgeError('BODY_TOO_LARGE', `more than ${limit} bytes`);
    yield chunk;
  }
}

class ProxyHandler implements Dispatcher.DispatchHandler {
  readonly #p: ProxyRequest;
  #controller: Dispatcher.DispatchController | null = null;
  #status = 0;
  #bytes = 0;
  #headStarted = false;
  #over = false;
  #clientGone = false;
  #waitingForDrain = false;

  constructor(p: ProxyRequest) {
    this.#p = p;
    p.res.once('close', this.#onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(CLIENT_CLOSED);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    const { res, hsts } = this.#p;
    if (this.#clientGone) return controller.abort(CLIENT_CLOSED);
    // Throws on a header Node will not send (an invalid value): undici turns that into
    // onResponseError, answered 502 since nothing was written yet.
    if (this.#p.h2) {
      const out = filterResponseHeaders(headers as ResponseHeaders);
      if (hsts !== null) out['strict-transport-security'] = hsts;
      (res as H2Response).writeHead(statusCode, out as OutgoingHttpHeaders);
    } else {
      (res as ServerResponse).writeHead(statusCode, statusMessage || undefined, responseHeaderList(headers as ResponseHeaders, hsts) as unknown as OutgoingHttpHeaders);
    }
    this.#status = statusCode;
    this.#headStarted = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (!(this.#p.res as ServerResponse).write(chunk) && !this.#waitingForDrain) {
      // The client reads slower than the upstream sends: stop reading the upstream.
      this.#waitingForDrain = true;
      controller.pause();
      this.#p.res.once('drain', this.#onDrain);
    }
  }

  onResponseEnd(): void {
    this.#finish(null, null);
    this.#p.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#over) return;
    if (err === CLIENT_CLOSED || this.#clientGone) {
      this.#finish('CLIENT_CLOSED', null);
      return;
    }
    const code = upstreamFailure(err);
    const { res, req } = this.#p;
    if (!this.#headStarted && !res.headersSent) {
      // 413 leaves the rest of the body unread: the connection cannot be reused.
      const answer = sendError(res, code, this.#p.requestId, {
        head: this.#p.method === 'HEAD',
        hsts: this.#p.hsts,
        close: code === 'BODY_TOO_LARGE' || !(req as IncomingMessage).complete,
      });
      this.#status = answer.status;
      this.#bytes = answer.bytes;
      this.#finish(code, err);
      return;
    }
    // The head (and maybe part of the body) is out: the client must see a cut, not an end.
    this.#finish(code, err);
    cutClient(this.#p);
  }

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    this.#controller?.resume();
  };

  readonly #onClientClose = (): void => {
    if (this.#over) return;
    this.#clientGone = true;
    // Before onRequestStart the abort happens there; after, it ends in onResponseError.
    this.#controller?.abort(CLIENT_CLOSED);
  };

  #finish(error: ErrorCode | null, cause: unknown): void {
    if (this.#over) return;
    this.#over = true;
    this.#p.res.off('close', this.#onClientClose);
    if (this.#waitingForDrain) this.#p.res.off('drain', this.#onDrain);
    this.#p.done({ status: error === 'CLIENT_CLOSED' ? 499 : this.#status, bytesSent: this.#bytes, error, cause });
  }
}

/** HTTP/1.1: destroy the socket (no final chunk, so the client sees an incomplete body). h2: RST_STREAM. */
export function cutClient(p: { res: AnyResponse; h2: boolean }): void {
  if (p.h2) {
    const stream = (p.res as H2Response).stream;
    if (!stream.destroyed) stream.close(h2constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    p.res.destroy();
  }
}
