// The https listeners (port 443): one server per bound address. With `tls.http2` it is an
// HTTP/2 server that also speaks HTTP/1.x (ALPN picks h2, http/1.1 or http/1.0 on the same
// port, and a client without ALPN gets HTTP/1.1; h2 requests come through h2-exchange.ts);
// without, a plain https server. Each connection's certificate comes from the certificate
// store by the ClientHello's server name (see tls/handshake.ts); the limits are those of the
// http listeners, plus HTTP/2 settings. Requests go to the handlers the caller passes in.

import { createServer as createHttpsServer } from 'node:https';
import { createSecureServer as createH2Server } from 'node:http2';
import type { Http2SecureServer, ServerHttp2Session, Settings } from 'node:http2';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Limits } from '../config.ts';
import type { EventLog } from '../log.ts';
import type { CertStore } from '../tls/cert-store.ts';
import { alpnSelector } from '../tls/options.ts';
import { routeHandshakes } from '../tls/handshake.ts';
import { applyLimits, serverOptions } from './server-options.ts';
import { onClientError, onConnectRequest } from './client-errors.ts';
import { serveStreams } from './h2-exchange.ts';
import type { H2Request, H2Response } from './h2-exchange.ts';
import type { ConnectionTracker } from './connection-tracker.ts';

export type SecureRequest = IncomingMessage | H2Request;
export type SecureResponse = ServerResponse | H2Response;

export type SecureHandlers = {
  /** Every request, HTTP/1.1 (IncomingMessage) or HTTP/2 (H2Request, on the stream API). */
  onRequest: (req: SecureRequest, res: SecureResponse) => void;
  /** HTTP/1.1 `Upgrade` requests (WebSocket): the socket is the caller's from here on. */
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** `Expect: 100-continue` requests: the handler decides whether to send 100 Continue. */
  onCheckContinue?: (req: SecureRequest, res: SecureResponse) => void;
};

export type SecureServerDeps = SecureHandlers & {
  store: CertStore;
  http2: boolean;
  limits: Limits;
  log: EventLog;
  /** Established TLS connections (HTTP/1.1 and HTTP/2 alike), for the drain on stop. */
  connections: ConnectionTracker;
  sessions: Http2Sessions;
  /**
   * A handshake failed (protocol version, no shared cipher, unknown name, reset...), or the
   * connection ended before its ClientHello arrived ("hello_timeout", "hello_closed").
   */
  onTlsClientError?: (code: string) => void;
  /** A handshake completed; `resumed` when the session was resumed (metrics; absent: not listened for). */
  onTlsHandshake?: (resumed: boolean) => void;
};

/** nginx's http2_max_concurrent_streams default. */
const MAX_CONCURRENT_STREAMS = 128;
/** Same as the http/1.1 servers' maxHeadersCount. */
const MAX_HEADER_PAIRS = 200;
/** HPACK counts 32 bytes of overhead per field; allow that for 64 fields over max_header_size. */
const HPACK_FIELD_ALLOWANCE = 64 * 32;

/**
 * node:http2 starts an HTTP/2 session on every connection whose ALPN is not http/1.1 (or
 * absent), http/1.0 included; allowHTTP1 downgrades only those. An http/1.0 connection is
 * labelled http/1.1 before node:http2's own listener sees it, so it takes that documented
 * HTTP/1.x path (the request line still says HTTP/1.0, and node:http answers it as such).
 */
function serveHttp10(server: Http2SecureServer): void {
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'http/1.0') socket.alpnProtocol = 'http/1.1';
  });
}

/** HTTP/2 SETTINGS from the limits (also on reload). */
export function http2Settings(limits: Limits): Settings {
  return {
    maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
    maxHeaderListSize: limits.max_header_size + HPACK_FIELD_ALLOWANCE,
  };
}

export function createSecureListener(deps: SecureServerDeps): TlsServer {
  const { limits, store } = deps;
  const options = {
    ...serverOptions(limits),
    ...store.contextOptions,
    // node:tls's own handshake guard, an idle timer: a backstop only, the deadline from
    // accept (ClientHello + handshake within header_timeout) is tls/handshake.ts's.
    handshakeTimeout: limits.header_timeout,
  };
  let server: TlsServer;
  if (deps.http2) {
    const h2 = createH2Server({
      ...options,
      allowHTTP1: true,
      ALPNCallback: alpnSelector(true),
      settings: http2Settings(limits),
      maxHeaderListPairs: MAX_HEADER_PAIRS,
      maxSessionMemory: 10,
    });
    serveHttp10(h2);
    // HTTP/1.1 on this port (allowHTTP1); h2 streams go to serveStreams() below.
    h2.on('request', deps.onRequest);
    if (deps.onCheckContinue) h2.on('checkContinue', deps.onCheckContinue);
    // node:http2 creates the session inside its own 'secureConnection' listener and emits
    // 'session' from there: a listener put in front of it names the socket of that session.
    let connecting: TLSSocket | null = null;
    h2.prependListener('secureConnection', (socket: TLSSocket) => {
      connecting = socket;
    });
    h2.on('session', (session: ServerHttp2Session) => {
      deps.sessions.add(session, connecting);
      connecting = null;
    });
    h2.on('sessionError', (err: NodeJS.ErrnoException) => deps.log.debug('h2_session_error', { code: err.code ?? 'error' }));
    server = h2;
  } else {
    server = createHttpsServer({ ...options, ALPNCallback: alpnSelector(false) }, deps.onRequest);
    if (deps.onCheckContinue) server.on('checkContinue', deps.onCheckContinue);
  }
  server.on('upgrade', deps.onUpgrade);
  // HTTP/1.1 parse errors (either server kind) get their 400/431/501 answer.
  server.on('clientError', onClientError);
  server.on('connect', onConnectRequest);
  // Both server kinds forward handshake failures to 'clientError', which would write an
  // HTTP answer into a connection that has no TLS session: count and drop them instead.
  server.removeAllListeners('tlsClientError');
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const code = err.code ?? 'error';
    deps.onTlsClientError?.(code);
    deps.log.debug('tls_client_error', { code, remote: socket.remoteAddress ?? null });
    socket.destroy();
  });
  applySecureLimits(server, limits);
  deps.connections.track(server, 'secureConnection');
  // After every 'request' listener (ours, the tracker's): see serveStreams.
  if (deps.http2) {
    serveStreams(server as Http2SecureServer, { onRequest: deps.onRequest, onCheckContinue: deps.onCheckContinue });
  }
  const onHandshake = deps.onTlsHandshake;
  if (onHandshake) server.on('secureConnection', (socket: TLSSocket) => onHandshake(socket.isSessionReused()));
  const http = server as unknown as HttpServer;
  routeHandshakes(server, {
    select: (servername) => store.select(servername),
    timeoutMs: () => http.headersTimeout,
    onAbort: (reason) => {
      deps.onTlsClientError?.(`hello_${reason}`);
      deps.log.debug('tls_client_error', { code: `hello_${reason}` });
    },
  });
  return server;
}

/** The limits that can change on reload without a new server. */
export function applySecureLimits(server: TlsServer, limits: Limits): void {
  // Both server kinds carry node:http's properties for their HTTP/1.1 connections; for
  // HTTP/2, `timeout` is the session idle timeout (the session is closed when it fires).
  applyLimits(server as unknown as HttpServer, limits);
  const h2 = server as TlsServer & { updateSettings?: (s: Settings) => void };
  if (typeof h2.updateSettings === 'function') h2.updateSettings(http2Settings(limits));
}

/**
 * Open HTTP/2 sessions of every https listener, so a stop can send GOAWAY to all of them:
 * no new streams, the open ones finish, then the session closes.
 *
 * It also ends the connections of zombie sessions. node:http2 sometimes destroys a session
 * (idle timeout, a peer gone mid-stream) without ever closing its TLS socket: the native
 * handle's 'done' never comes, so the socket is never ended, the session never emits
 * 'close', and the fd stays open for good (nodejs/node#42710; found by the soak, a few per
 * minute of mixed h2 traffic with aborts). A sweep every SWEEP_MS destroys the socket of a
 * session that has been destroyed for a whole sweep interval.
 */
export class Http2Sessions {
  static readonly SWEEP_MS = 5000;
  readonly #sessions = new Map<ServerHttp2Session, { socket: TLSSocket | null; destroyedSeen: boolean }>();
  readonly #log: EventLog | null;
  #sweep: NodeJS.Timeout | null = null;
  #zombies = 0;

  constructor(log: EventLog | null = null) {
    this.#log = log;
  }

  add(session: ServerHttp2Session, socket: TLSSocket | null = null): void {
    this.#sessions.set(session, { socket, destroyedSeen: false });
    session.once('close', () => this.#sessions.delete(session));
    if (this.#sweep === null) {
      this.#sweep = setInterval(() => this.sweep(), Http2Sessions.SWEEP_MS);
      this.#sweep.unref();
    }
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Zombie sessions whose socket the sweep destroyed, since start. */
  get zombies(): number {
    return this.#zombies;
  }

  /** One pass of the zombie sweep (the timer calls it; tests may too). */
  sweep(): void {
    for (const [session, entry] of this.#sessions) {
      if (!session.destroyed) continue;
      const socket = entry.socket;
      if (socket === null || socket.destroyed) {
        this.#sessions.delete(session);
      } else if (entry.destroyedSeen) {
        this.#sessions.delete(session);
        this.#zombies++;
        this.#log?.debug('h2_zombie_session_closed', { remote: socket.remoteAddress ?? null });
        socket.destroy();
      } else {
        entry.destroyedSeen = true;
      }
    }
  }

  goaway(): void {
    for (const session of this.#sessions.keys()) {
      if (!session.closed && !session.destroyed) session.close();
    }
  }

  destroyAll(): void {
    for (const [session, { socket }] of this.#sessions) {
      session.destroy();
      socket?.destroy();
    }
  }

  /** Stops the sweep (the edge's stop). */
  stop(): void {
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
  }
}
