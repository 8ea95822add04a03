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

import type { Server as TlsServer, SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import { INCOMPLETE, readServerName } from './client-hello.ts';

type TlsListener = (this: TlsServer, socket: Socket) => void;
/** The field tls.Server creates every connection's TLSSocket from (its default context). */
type WithSharedCreds = TlsServer & { _sharedCreds: SecureContext };

export type HandshakeRouting = {
  /** Synchronous: the snapshot lookup of the certificate store. */
  select: (servername: string | null) => SecureContext;
  /** Sent nothing usable within this time: closed (ms; the header timeout). */
  timeoutMs: () => number;
  /** Connections closed before the ClientHello was read (scanners, timeouts). */
  onAbort?: (reason: 'timeout' | 'closed' | 'error') => void;
};

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

  server.on('connection', (socket: Socket) => {
    let buffered: Buffer | null = null;
    const cleanup = () => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
      socket.removeListener('timeout', onTimeout);
      socket.setTimeout(0);
    };
    const abort = (reason: 'timeout' | 'closed' | 'error') => {
      cleanup();
      socket.destroy();
      routing.onAbort?.(reason);
    };
    const onError = () => abort('error');
    const onEnd = () => abort('closed');
    const onTimeout = () => abort('timeout');
    const onData = (chunk: Buffer) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
      const name = readServerName(buffered);
      if (name === INCOMPLETE) return;
      cleanup();
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
    socket.setTimeout(routing.timeoutMs(), onTimeout);
  });
}
