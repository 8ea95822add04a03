// Binding one server on one address (dual-stack "[::]", SO_REUSEPORT for workers) and
// letting go of it again.

import { Server as NetServerClass } from 'node:net';
import type { Server as NetServer } from 'node:net';
import type { ListenAddress } from '../units.ts';
import type { EventLog } from '../log.ts';
import { EdgeError } from '../errors.ts';

export type BoundListener = {
  readonly address: ListenAddress;
  readonly server: NetServer;
  /** "host:port" as bound, with the kernel's port when 0 was asked for. */
  readonly bound: string;
  readonly port: number;
};

export type ListenOptions = {
  /**
   * SO_REUSEPORT: every process binds its own socket on the address and the kernel spreads
   * connections between them (cluster workers). Port 0 keeps the shared socket, or each
   * worker would get a port of its own.
   */
  reusePort: boolean;
};

/** Binds one server on one address. "[::]" is dual-stack; where IPv6 is off, falls back to IPv4. */
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
