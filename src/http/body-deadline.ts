// A request body must keep coming: `limits.min_body_rate` (bytes per second). nginx's
// client_body_timeout only bounds the gap between two reads, so a client sending one byte
// every few seconds holds a connection and an upstream request for as long as it likes.
// opam-edge follows Apache's mod_reqtimeout instead: a body gets `header_timeout` to start
// with, and every `min_body_rate` bytes received buys one more second. A body that falls
// behind is cut (HTTP/1.1: the connection; h2: the stream), as nginx cuts at its timeout;
// the proxy sees its client go and aborts the upstream request.
//
// One coarse timer (1 s) checks every body in transit; bytes are counted where node:http
// and node:http2 hand them to the body's stream (push), without reading the stream.

import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { constants as h2constants } from 'node:http2';
import type { Limits } from '../config.ts';
import type { EventLog } from '../log.ts';
import type { H2Request } from './h2-exchange.ts';

type AnyRequest = IncomingMessage | H2Request;

type Watched = { req: AnyRequest; startedAt: number; received: number; graceMs: number; rate: number };

const TICK_MS = 1000;

export class BodyDeadlines {
  readonly #log: EventLog;
  readonly #watched = new Set<Watched>();
  #timer: NodeJS.Timeout | null = null;

  constructor(log: EventLog) {
    this.#log = log;
  }

  get size(): number {
    return this.#watched.size;
  }

  /** Watches `req`'s body until it ends or the request goes away. No-op when the limit is off. */
  watch(req: AnyRequest, limits: Limits): void {
    const rate = limits.min_body_rate;
    if (rate === null || !hasBody(req)) return;
    const w: Watched = { req, startedAt: Date.now(), received: 0, graceMs: limits.header_timeout, rate };
    // The readable the body arrives on: the request (HTTP/1.1) or the h2 stream itself.
    const body: Readable = (req as H2Request).stream ?? (req as IncomingMessage);
    const push = body.push;
    // An own-property override of push: the stream is not read here, so its flow (and the
    // proxy's backpressure) is untouched.
    body.push = function countingPush(this: Readable, chunk: unknown, encoding?: BufferEncoding): boolean {
      if (chunk !== null && chunk !== undefined) w.received += (chunk as Buffer).length;
      return push.call(this, chunk, encoding);
    };
    const done = () => this.#watched.delete(w);
    body.once('end', done);
    body.once('close', done);
    this.#watched.add(w);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#check(), TICK_MS);
      this.#timer.unref();
    }
  }

  #check(): void {
    const now = Date.now();
    for (const w of this.#watched) {
      const deadline = w.startedAt + w.graceMs + (w.received / w.rate) * 1000;
      if (now <= deadline) continue;
      this.#watched.delete(w);
      this.#log.info('client_body_too_slow', {
        method: w.req.method,
        path: w.req.url,
        received: w.received,
        seconds: Math.round((now - w.startedAt) / 100) / 10,
        min_body_rate: w.rate,
      });
      cut(w.req);
    }
    if (this.#watched.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#watched.clear();
  }
}

function hasBody(req: AnyRequest): boolean {
  const stream = (req as H2Request).stream;
  if (stream !== undefined) return !stream.endAfterHeaders && !stream.readableEnded;
  const headers = req.headers;
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0';
}

function cut(req: AnyRequest): void {
  const stream = (req as H2Request).stream;
  if (stream !== undefined) {
    if (!stream.destroyed) stream.close(h2constants.NGHTTP2_CANCEL);
  } else {
    (req as IncomingMessage).socket.destroy();
  }
}
