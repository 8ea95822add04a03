// Picks each connection's SecureContext from its ClientHello, before node:tls sees a byte.
//
// Why not SNICallback: node:tls applies an SNI context by copying only its *current*
// certificate and key into the connection (UseSNIContext), so a context carrying an ECDSA
// and an RSA certificate serves just one of them, and the server's own default certificate
// of the other key type leaks into SNI handshakes (nodejs/node#54235). Creating the
// connection from the chosen context instead keeps every certificate of the context and
// lets OpenSSL choose by the client's signature algorithms; a client without SNI gets the
// fallback context the same way.
//
// How: the tls.Server's own 'connection' listener is taken off; ours reads bytes until the
// ClientHello's server name is known (usually the first read), puts them back with
// unshift(), sets the server's shared context to the chosen one and hands the raw socket
// to node's listener, which creates the TLSSocket synchronously from that context.
//
// The header timeout is a deadline from accept for the ClientHello and the handshake
// together (nginx's client_header_timeout), not an idle timer: a client trickling one byte
// at a time is cut all the same. Past the hand-over the raw socket is destroyed with
// ERR_TLS_HANDSHAKE_TIMEOUT, which node:tls reports as a 'tlsClientError'.

import type { Server as TlsServer, SecureContext, TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { INCOMPLETE, readServerName } from './client-hello.ts';

type TlsListener = (this: TlsServer, socket: Socket) => void;
/** The field tls.Server creates every connection's TLSSocket from (its default context). */
type WithSharedCreds = TlsServer & { _sharedCreds: SecureContext };

export type HandshakeRouting = {
  /** Synchronous: the snapshot lookup of the certificate store. */
  select: (servername: string | null) => SecureContext;
  /** ClientHello and handshake together must be done this long after accept (ms; the header timeout). */
  timeoutMs: () => number;
  /** Connections closed before the ClientHello was read (scanners, timeouts). */
  onAbort?: (reason: 'timeout' | 'closed' | 'error') => void;
};

/**
 * How often pending handshakes are held against their deadline: one coarse timer per
 * server instead of one per connection (undici's fast timers), so a connection is cut
 * between its deadline and one tick later.
 */
const DEADLINE_TICK_MS = 250;

type Pending = { socket: Socket; deadline: number; expire: () => void };

/**
 * Connections whose handshake is not done, by peer address and port (unique among one
 * listener's open connections; the TLSSocket that completes the handshake reports the same
 * pair as the raw socket it wraps). Map order is accept order.
 */
class HandshakeDeadlines {
  readonly #pending = new Map<string, Pending>();
  #timer: NodeJS.Timeout | null = null;

  add(key: string, entry: Pending): void {
    this.#pending.set(key, entry);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#tick(), DEADLINE_TICK_MS);
      this.#timer.unref();
    }
  }

  delete(key: string, socket?: Socket): void {
    const entry = this.#pending.get(key);
    if (entry === undefined || (socket !== undefined && entry.socket !== socket)) return;
    this.#pending.delete(key);
    if (this.#pending.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  #tick(): void {
    const now = Date.now();
    for (const [key, entry] of this.#pending) {
      if (entry.deadline > now) continue;
      this.delete(key);
      entry.expire();
    }
  }
}

function peerKey(socket: Socket): string | null {
  const address = socket.remoteAddress;
  return address === undefined ? null : `${address} ${socket.remotePort}`;
}

/**
 * Ends a connection that node:tls owns by destroying its raw socket with an error, which
 * node:tls reports as a 'tlsClientError' (counted like its own handshake timeouts). The
 * no-op listener keeps the error from ever being an uncaught one.
 */
function expireHandshake(socket: Socket): void {
  socket.on('error', () => {});
  socket.destroy(Object.assign(new Error('TLS handshake not done within header_timeout of accept'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }));
}

export function routeHandshakes(server: TlsServer, routing: HandshakeRouting): void {
  const listeners = server.listeners('connection') as TlsListener[];
  if (listeners.length !== 1 || !('_sharedCreds' in server)) {
    // Fail at start-up, not per handshake, if a future Node changes these internals.
    throw new Error('node:tls internals changed: cannot route handshakes by ClientHello');
  }
  const tlsListener = listeners[0]!;
  server.removeListener('connection', tlsListener);
  const internal = server as WithSharedCreds;
  const serverDefault = internal._sharedCreds;
  const deadlines = new HandshakeDeadlines();
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    const key = peerKey(socket);
    if (key !== null) deadlines.delete(key);
  });

  server.on('connection', (socket: Socket) => {
    const key = peerKey(socket);
    if (key === null) {
      // Gone before it could be looked at (reset right after accept).
      socket.destroy();
      routing.onAbort?.('closed');
      return;
    }
    let buffered: Buffer | null = null;
    let handedOver = false;
    const cleanup = () => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
    };
    const abort = (reason: 'timeout' | 'closed' | 'error') => {
      cleanup();
      deadlines.delete(key, socket);
      socket.destroy();
      routing.onAbort?.(reason);
    };
    const onError = () => abort('error');
    const onEnd = () => abort('closed');
    const onData = (chunk: Buffer) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
      const name = readServerName(buffered);
      if (name === INCOMPLETE) return;
      cleanup();
      handedOver = true;
      socket.pause();
      socket.unshift(buffered);
      internal._sharedCreds = routing.select(name);
      try {
        tlsListener.call(server, socket);
      } finally {
        internal._sharedCreds = serverDefault;
      }
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.once('close', () => deadlines.delete(key, socket));
    // A deadline from accept, not an idle timer: bytes trickled one at a time do not extend it.
    deadlines.add(key, {
      socket,
      deadline: Date.now() + routing.timeoutMs(),
      expire: () => (handedOver ? expireHandshake(socket) : abort('timeout')),
    });
  });
}
