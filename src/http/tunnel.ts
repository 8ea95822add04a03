// WebSocket and other HTTP/1.1 `Upgrade` requests: a TCP connection to the picked upstream
// address (a fresh one, never from a pool: it will not come back), the request head written
// with hop-by-hop fields removed except `Connection: upgrade` and `Upgrade`, then bytes piped
// both ways. The upstream's answer (101, or a refusal) reaches the client as it is. Either
// side closing, failing or staying silent past idle_timeout ends both.

import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { upstreamFailure } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { sendSocketError } from './error-response.ts';

export type TunnelRequest = {
  client: Duplex;
  /** Bytes the client sent after the head (node's `head` argument). */
  head: Buffer;
  /** The upstream address: an IP without brackets. */
  host: string;
  port: number;
  method: string;
  path: string;
  headers: string[];
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  requestId: string;
  /** tls.hsts, for the error answer before the tunnel is up. */
  hsts: string | null;
  /** Called once: the tunnel failed before it was up (code), or ended (null). */
  done: (error: ErrorCode | null, cause: unknown, bytesToClient: number) => void;
};

export function openTunnel(t: TunnelRequest): void {
  const { client } = t;
  const upstream: Socket = connect({ host: t.host, port: t.port, noDelay: true });
  let connected = false;
  let over = false;
  let bytesToClient = 0;

  const finish = (error: ErrorCode | null, cause: unknown) => {
    if (over) return;
    over = true;
    clearTimeout(connectTimer);
    upstream.destroy();
    // Before the tunnel is up the client gets an answer, closed once written.
    if (error !== null) sendSocketError(client, error, t.requestId, t.hsts);
    else client.destroy();
    t.done(error, cause, bytesToClient);
  };

  const connectTimer = setTimeout(() => finish('UPSTREAM_CONNECT_TIMEOUT', new Error('connect timeout')), t.connectTimeoutMs);
  connectTimer.unref();

  upstream.once('connect', () => {
    connected = true;
    clearTimeout(connectTimer);
    let head = `${t.method} ${t.path} HTTP/1.1\r\n`;
    for (let i = 0; i < t.headers.length; i += 2) head += `${t.headers[i]}: ${t.headers[i + 1]}\r\n`;
    upstream.write(`${head}\r\n`);
    if (t.head.length > 0) upstream.write(t.head);
    upstream.on('data', (chunk: Buffer) => {
      bytesToClient += chunk.length;
    });
    upstream.pipe(client);
    client.pipe(upstream);
    // Any byte either way is activity; only after connecting (before, connectTimer rules).
    upstream.setTimeout(t.idleTimeoutMs, () => finish(null, new Error('idle timeout')));
  });
  upstream.on('error', (err) => {
    finish(connected ? null : upstreamFailure(err), err);
  });
  client.on('error', (err) => finish(null, err));
  // Either side ending ends the tunnel (a WebSocket has its own close handshake inside).
  upstream.once('close', () => finish(connected ? null : 'UPSTREAM_RESET', null));
  client.once('close', () => finish(null, null));
  (client as Socket).setTimeout?.(t.idleTimeoutMs, () => finish(null, new Error('idle timeout')));
}
