// HTTP/2 Rapid Reset (CVE-2023-44487): a client opens a stream and cancels it at once
// (HEADERS + RST_STREAM), over and over. Each costs the server a stream, its header objects
// and their teardown (about 150 us of CPU here, 3x nginx) while the client pays two frames, and
// maxConcurrentStreams never bites because every stream is gone before the next arrives.
//
// What Node already does is not enough: nghttp2's own limit (a token bucket of 1000 incoming
// RST_STREAMs, refilled at 33/s, Node's streamResetBurst/streamResetRate) lets 1000 resets
// through at once and 33 every second after, per connection: an attack spread over 20
// connections at 100 resets/s each never reaches it.
//
// So each session gets a budget of streams that end before their response head was sent
// (the client reset them, or they were refused): RESET_BUDGET at once, refilled over
// RESET_WINDOW_MS. Past it the session gets GOAWAY(ENHANCE_YOUR_CALM) and is destroyed, as
// nginx (since 1.25.3) and the other servers' 2023 fixes do; the attacker then pays a new
// TLS handshake per RESET_BUDGET streams. A browser that cancels a few requests on navigation
// stays far below it. A HEADERS + RST_STREAM pair that arrives in one read never reaches the
// gateway (node:http2 emits 'stream' on the next tick, after the reset destroyed it), so no
// upstream request is made for it; a reset arriving later aborts the upstream request.

import { constants } from 'node:http2';
import type { Http2Session, ServerHttp2Stream } from 'node:http2';

/** Streams a session may see ended before their response, at once (nginx: 2 x concurrent streams per read). */
export const RESET_BUDGET = 100;
/** The time over which a spent budget refills completely: sustained, 10 such streams per second. */
export const RESET_WINDOW_MS = 10_000;

type Bucket = { tokens: number; at: number };

const buckets = new WeakMap<Http2Session, Bucket>();

/**
 * Counts one stream of `session` that ended before its response head; over budget, the
 * session is sent GOAWAY(ENHANCE_YOUR_CALM) and destroyed. True when it was.
 */
export function chargeReset(session: Http2Session | undefined, now = Date.now()): boolean {
  if (session === undefined || session.destroyed) return false;
  let bucket = buckets.get(session);
  if (bucket === undefined) {
    bucket = { tokens: RESET_BUDGET, at: now };
    buckets.set(session, bucket);
  } else {
    bucket.tokens = Math.min(RESET_BUDGET, bucket.tokens + ((now - bucket.at) * RESET_BUDGET) / RESET_WINDOW_MS);
    bucket.at = now;
  }
  bucket.tokens -= 1;
  if (bucket.tokens >= 0) return false;
  // The GOAWAY is queued first: destroy()'s own final GOAWAY says NO_ERROR whatever code it is
  // given. destroy() then flushes it, resets the open streams and closes the socket.
  session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
  session.destroy();
  return true;
}

/**
 * The 'aborted' listener of a server stream (`this` is the stream): node:http2 emits it when
 * the stream closes with its writable side still open, i.e. a reset from the client, or one
 * of ours. Only those before the response head count: a download cancelled midway is fine.
 */
export function onStreamAborted(this: ServerHttp2Stream): void {
  if (!this.headersSent) chargeReset(this.session);
}
