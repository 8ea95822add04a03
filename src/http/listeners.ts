// Binding servers to the configured addresses and letting them go again: dual-stack
// sockets, nginx-like limits on every connection, a clear answer to unparseable input,
// and a drain that stops accepting, lets in-flight requests finish, then closes the rest.

import { Server as NetServerClass } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage, Server as HttpServer, ServerOptions, ServerResponse } from 'node:http';
import type { ListenAddress } from '../units.ts';
import type { Limits } from '../config.ts';
import type { EventLog } from '../log.ts';
import { EdgeError, ERRORS } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';

/**
 * node:http options carrying the limits (docs/behaviour.md, "Limits and bad input"). Shared
 * by the http and https servers.
 */
export function serverOptions(limits: Limits): ServerOptions {
  return {
    maxHeaderSize: limits.max_header_size,
    headersTimeout: limits.header_timeout,
    // The whole-request timer would cut long uploads; the idle timer below covers stalls.
    requestTimeout: 0,
    keepAliveTimeout: limits.idle_timeout,
    // Node looks at header timeouts only this often (30 s by default): a slowloris would
    // get up to 30 s past the limit.
    connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(limits.header_timeout / 10))),
    requireHostHeader: false,
    joinDuplicateHeaders: false,
    noDelay: true,
    // The seed set net.ipv4.tcp_keepalive_time=60 for this; per-socket here.
    keepAlive: true,
    keepAliveInitialDelay: 60_000,
  };
}

/** Applies limits that node:http takes as properties rather than options (also on reload). */
export function applyLimits(server: HttpServer, limits: Limits): void {
  // Read by node:http for each new connection, so a reload applies to the next ones.
  (server as HttpServer & { maxHeaderSize: number }).maxHeaderSize = limits.max_header_size;
  server.headersTimeout = limits.header_timeout;
  server.keepAliveTimeout = limits.idle_timeout;
  server.maxHeadersCount = 200;
  // Socket inactivity: idle keep-alive connections and clients that stop reading.
  server.timeout = limits.idle_timeout;
}

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
  const { status, message } = ERRORS.BAD_FRAMING;
  const body = `${status} ${message}\n`;
  res.shouldKeepAlive = false;
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
}

/** CONNECT is for forward proxies; opam-edge is not one (nginx answers 405 too). */
export function onConnectRequest(_req: IncomingMessage, socket: Socket): void {
  answerAndClose(socket, 'METHOD_NOT_ALLOWED');
}

/** Writes a short error response on a raw socket and closes it once sent. */
export function answerAndClose(socket: Socket, code: ErrorCode): void {
  const { status, message } = ERRORS[code];
  const body = `${status} ${message}\n`;
  const reason = message.split(':')[0];
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  socket.destroySoon();
}

export type BoundListener = {
  readonly address: ListenAddress;
  readonly server: NetServer;
  /** "host:port" as bound, with the kernel's port when 0 was asked for. */
  readonly bound: string;
  readonly port: number;
};

/** Binds one server on one address. "[::]" is dual-stack; where IPv6 is off, falls back to IPv4. */
export type ListenOptions = {
  /**
   * SO_REUSEPORT: every process binds its own socket on the address and the kernel spreads
   * connections between them (cluster workers). Port 0 keeps the shared socket, or each
   * worker would get a port of its own.
   */
  reusePort: boolean;
};

export async function bind(server: NetServer, address: ListenAddress, log: EventLog, role: string, options: ListenOptions = { reusePort: false }): Promise<BoundListener> {
  const reuse = options.reusePort && address.port !== 0 ? { reusePort: true, exclusive: true } : {};
  const listen = (host: string) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ host, port: address.port, ipv6Only: false, backlog: 511, ...reuse }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  try {
    await listen(address.host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (address.host === '::' && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
      log.warn('listen_ipv4_only', { address: address.text, reason: code });
      await listen('0.0.0.0');
    } else {
      throw new EdgeError('LISTEN_FAILED', `${role} ${address.text}: ${code ?? (err as Error).message}`, { cause: err });
    }
  }
  const info = server.address();
  const port = typeof info === 'object' && info ? info.port : address.port;
  const host = typeof info === 'object' && info ? info.address : address.host;
  const bound = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  log.info('listening', { role, address: address.text, bound });
  return { address, server, bound, port };
}

/**
 * Tracks open connections of a server so a stop can close the idle ones at once, let busy
 * ones finish their response, and destroy whatever is left when the grace period ends.
 */
export class ConnectionTracker {
  readonly #sockets = new Set<Socket>();

  track(server: NetServer, event: 'connection' | 'secureConnection' = 'connection'): void {
    server.on(event, (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('request', markOnFinish);
    // Only where the server already handles 'checkContinue': a listener of its own would
    // take those requests away from node's automatic 100 Continue and the 'request' event.
    if (server.listenerCount('checkContinue') > 0) server.on('checkContinue', markOnFinish);
  }

  get size(): number {
    return this.#sockets.size;
  }

  destroyAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  /**
   * Ends the HTTP/1.1 connections that carry no request or response (idle keep-alive):
   * FIN after whatever is still queued, so a slow reader still gets the end of its last
   * response. node:http's closeIdleConnections() destroys them instead, and to it a
   * connection whose last response is written out but not yet read is idle: the kernel
   * then drops (or resets) what the client has not read yet. Idle means: no response in
   * flight and not one byte read since the last response finished (a half-sent request
   * is not idle; it is cut when the grace period ends). h2 sessions are left to their GOAWAY.
   */
  closeIdle(): void {
    for (const socket of this.#sockets) {
      if ((socket as TLSSocket).alpnProtocol === 'h2' || socket.writableEnded) continue;
      const s = socket as TrackedSocket;
      if (s._httpMessage) continue;
      if (socket.bytesRead === (s[READ_AT_LAST_RESPONSE] ?? 0)) socket.end();
    }
  }

  /** Resolves when every tracked connection has closed. */
  async idle(deadline: number): Promise<boolean> {
    while (this.#sockets.size > 0) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }
}

const READ_AT_LAST_RESPONSE = Symbol('readAtLastResponse');
type TrackedSocket = ServerSocket & { [READ_AT_LAST_RESPONSE]?: number };

/** Per HTTP/1 request: remember how much the connection had read when its response finished. */
function markOnFinish(req: IncomingMessage, res: ServerResponse): void {
  if (req.httpVersionMajor !== 2) res.on('finish', onResponseFinish);
}

function onResponseFinish(this: ServerResponse): void {
  // The request may have let go of its socket already (the connection closed).
  const socket = this.req?.socket as TrackedSocket | null | undefined;
  if (socket) socket[READ_AT_LAST_RESPONSE] = socket.bytesRead;
}

/**
 * Stops accepting on a server: closes its listening socket, nothing else. http.Server's
 * close() would also run closeIdleConnections() (see ConnectionTracker.closeIdle for what
 * that cuts) and Http2SecureServer's would close every h2 session, which can drop the last
 * flow-controlled bytes of a stream; the edge's drain deals with connections itself.
 */
export function stopAccepting(server: NetServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    NetServerClass.prototype.close.call(server);
    // The callback of close() waits for every connection; only the listening socket matters.
    setImmediate(resolve);
  });
}

/**
 * The servers of one role ("http", "https") on their configured addresses. `sync` moves
 * them to a new address list (start and reload): addresses that stay keep their socket.
 */
export class ListenerGroup<S extends NetServer> {
  readonly #role: string;
  readonly #log: EventLog;
  readonly #make: () => S;
  readonly #options: ListenOptions;
  readonly #bound = new Map<string, BoundListener & { server: S }>();

  constructor(role: string, log: EventLog, options: ListenOptions, make: () => S) {
    this.#role = role;
    this.#log = log;
    this.#options = options;
    this.#make = make;
  }

  get role(): string {
    return this.#role;
  }

  get listeners(): (BoundListener & { server: S })[] {
    return [...this.#bound.values()];
  }

  /**
   * Binds the addresses not bound yet; if one fails, unbinds what this call bound and
   * throws, leaving the group as it was. Returns a commit function that closes the
   * addresses no longer listed (call it once the rest of a reload has succeeded).
   */
  async sync(addresses: readonly ListenAddress[]): Promise<() => Promise<void>> {
    const wanted = new Set(addresses.map((a) => a.text));
    const added: string[] = [];
    try {
      for (const address of addresses) {
        if (this.#bound.has(address.text)) continue;
        const server = this.#make();
        const listener = await bind(server, address, this.#log, this.#role, this.#options);
        this.#bound.set(address.text, { ...listener, server });
        added.push(address.text);
      }
    } catch (err) {
      for (const text of added) {
        await stopAccepting(this.#bound.get(text)!.server);
        this.#bound.delete(text);
      }
      throw err;
    }
    return async () => {
      for (const [text, listener] of this.#bound) {
        if (wanted.has(text)) continue;
        this.#bound.delete(text);
        await stopAccepting(listener.server);
        this.#log.info('listener_closed', { role: this.#role, address: text });
      }
    };
  }

  async stopAccepting(): Promise<void> {
    await Promise.all(this.listeners.map((l) => stopAccepting(l.server)));
  }
}
