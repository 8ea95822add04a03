// HTTP/2 requests on node:http2's core API (the server's 'stream' event) instead of its
// compat layer. The compat layer wraps every stream in an Http2ServerRequest, a second
// Readable that each body chunk is copied through, and an Http2ServerResponse, a Stream with
// a header map; the proxy needs neither. Measured with callgrind on a minimal h2 proxy over
// undici, 1 KiB responses: 449k instructions per request on the compat layer, 359k here.
//
// H2Request and H2Response carry just what the gateway, the proxy and the error answers read
// of node:http's IncomingMessage and ServerResponse, under the same names, so one code path
// serves both protocols. The request body is the stream itself (a Readable: backpressure
// reaches the client's flow-control window directly).
//
// Header fields that RFC 9113 8.2.1 makes malformed (CR, LF or NUL in a value, surrounding
// whitespace, `:` or space in a name) never get here: node:http2 drops them without a word
// and the request arrives without them (its nghttp2 invalid-header callback ignores them;
// no option resets the stream instead, see nodejs/node#56703), so they are never forwarded.
// Upper-case names reset the stream (PROTOCOL_ERROR). Pinned in
// test/http/node-56703-h2-invalid-fields.test.ts.
//
// Streams reset before their response are budgeted per session (h2-reset-budget.ts, Rapid
// Reset), and a request reaches the handlers one event-loop turn after its HEADERS.

import type { Http2SecureServer, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { sendError } from './error-response.ts';
import { requestId } from './headers.ts';
import { onStreamAborted } from './h2-reset-budget.ts';

export class H2Request {
  readonly stream: ServerHttp2Stream;
  /** With the pseudo-headers (':method', ':path', ':authority', ':scheme'), as the compat layer has them. */
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly method: string;
  /** ':path'; absent for CONNECT. */
  readonly url: string | undefined;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]) {
    this.stream = stream;
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    this.method = headers[':method'] as string;
    this.url = headers[':path'] as string | undefined;
  }

  get httpVersion(): string {
    return '2.0';
  }

  get httpVersionMajor(): number {
    return 2;
  }

  get httpVersionMinor(): number {
    return 0;
  }

  /** The session's socket (node:http2 hands out a proxy of the TLS socket). */
  get socket(): Socket | undefined {
    return this.stream.session?.socket as Socket | undefined;
  }
}

export class H2Response {
  readonly stream: ServerHttp2Stream;

  constructor(stream: ServerHttp2Stream) {
    this.stream = stream;
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  /**
   * Sends the head. `headers` becomes the HEADERS frame (':status' is added to it). A HEAD
   * request, 204 and 304 end the stream here (node:http2 does that in respond()).
   */
  writeHead(status: number, headers: OutgoingHttpHeaders): this {
    const stream = this.stream;
    // The client reset the stream before the answer was ready: nothing to send to.
    if (stream.destroyed || stream.closed) return this;
    headers[':status'] = status;
    stream.respond(headers);
    return this;
  }

  /** false: the stream's buffer is full, wait for 'drain'. Chunks after the end are dropped. */
  write(chunk: Buffer): boolean {
    const stream = this.stream;
    if (stream.writableEnded || stream.destroyed) return true;
    return stream.write(chunk);
  }

  end(chunk?: string | Buffer): void {
    const stream = this.stream;
    if (stream.writableEnded || stream.destroyed) return;
    if (chunk === undefined) stream.end();
    else stream.end(chunk);
  }

  writeContinue(): void {
    if (!this.stream.destroyed) this.stream.additionalHeaders({ ':status': 100 });
  }

  destroy(): void {
    this.stream.destroy();
  }

  /** 'close' (the stream is gone, answered or not) and 'drain', from the stream. */
  once(event: 'close' | 'drain', listener: () => void): this {
    this.stream.once(event, listener);
    return this;
  }

  off(event: 'close' | 'drain', listener: () => void): this {
    this.stream.off(event, listener);
    return this;
  }
}

export type H2Handler = (req: H2Request, res: H2Response) => void;

export type H2StreamHandlers = {
  onRequest: H2Handler;
  /** `Expect: 100-continue`: the handler decides whether to send 100 Continue. */
  onCheckContinue?: H2Handler;
};

/**
 * The 'stream' listener: what node:http2's compat layer does in onServerStream (CONNECT,
 * Expect), on H2Request/H2Response, one event-loop turn later (see h2-reset-budget.ts).
 */
function h2StreamListener(handlers: H2StreamHandlers) {
  function exchange(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    // Reset (or the session torn down) during that turn: no request object, no upstream request.
    if (stream.destroyed) return;
    const req = new H2Request(stream, headers, rawHeaders);
    const res = new H2Response(stream);
    if (req.method === 'CONNECT') {
      // No extended CONNECT is offered; a plain CONNECT asks for a tunnel, which is not given.
      sendError(res, 'METHOD_NOT_ALLOWED', requestId(), { head: false, hsts: null, close: false });
      return;
    }
    const expect = headers.expect;
    if (expect !== undefined) {
      if (expect === '100-continue') {
        if (handlers.onCheckContinue) return handlers.onCheckContinue(req, res);
        res.writeContinue();
      } else {
        // As node:http and the compat layer: an expectation we do not know is refused.
        sendError(res, 'EXPECTATION_FAILED', requestId(), { head: req.method === 'HEAD', hsts: null, close: false });
        return;
      }
    }
    handlers.onRequest(req, res);
  }
  return function onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]): void {
    // A stream error (a reset, a session torn down) ends the exchange through 'close'; without
    // a listener it would be an uncaught 'error' event. The compat layer ignores them too.
    stream.on('error', ignore);
    // Every stream that ends before its response head is charged to its session's budget.
    stream.on('aborted', onStreamAborted);
    if (stream.destroyed) return;
    // node:http2 emits 'stream' before it delivers an RST_STREAM that came in the same read
    // (the stream is destroyed by the next turn): waiting that turn keeps a HEADERS +
    // RST_STREAM pair from ever starting an upstream request (Rapid Reset).
    setImmediate(exchange, stream, headers, rawHeaders);
  };
}

function ignore(): void {}

/**
 * Hands the server's h2 streams to `handlers`; HTTP/1.1 requests (allowHTTP1) stay on its
 * 'request' event. node:http2 puts its compat layer on as a 'stream' listener when the first
 * 'request' listener is added, so this is called once those are on, and takes it off. More
 * than one 'stream' listener is a layout this code does not know: it refuses to start rather
 * than answer a stream twice.
 */
export function serveStreams(server: Http2SecureServer, handlers: H2StreamHandlers): void {
  if (server.listenerCount('request') === 0) throw new Error('serveStreams: add the HTTP/1.1 request listener first');
  const existing = server.listeners('stream');
  if (existing.length > 1) throw new Error(`serveStreams: ${existing.length} 'stream' listeners already, expected node:http2's compat layer alone`);
  for (const listener of existing) server.removeListener('stream', listener as (...args: unknown[]) => void);
  server.on('stream', h2StreamListener(handlers));
}
