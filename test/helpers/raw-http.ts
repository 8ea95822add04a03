// Sends bytes exactly as given over a plain TCP (or TLS) connection and collects everything
// the server answers until it closes or goes quiet. For requests no HTTP client would send.

import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';

export type RawResult = {
  /** Everything received, as latin1. */
  text: string;
  /** Status code of the first response, or null when none came. */
  status: number | null;
  /** The server closed the connection (as opposed to the quiet timeout ending the wait). */
  closed: boolean;
  ms: number;
};

export function rawRequest(
  port: number,
  payload: string | Buffer | (string | Buffer)[],
  options: { host?: string; quietMs?: number; tls?: { servername?: string }; gapMs?: number } = {},
): Promise<RawResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const host = options.host ?? '127.0.0.1';
    const socket: Socket = options.tls
      ? tlsConnect({ host, port, servername: options.tls.servername, rejectUnauthorized: false })
      : connect({ host, port });
    const chunks: Buffer[] = [];
    let closed = false;
    let quiet: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(quiet);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : null, closed, ms: Date.now() - started });
    };
    const arm = () => {
      clearTimeout(quiet);
      quiet = setTimeout(finish, options.quietMs ?? 1500);
    };
    socket.on(options.tls ? 'secureConnect' : 'connect', async () => {
      const parts = Array.isArray(payload) ? payload : [payload];
      for (const part of parts) {
        socket.write(part);
        if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
      }
      arm();
    });
    socket.on('data', (d) => {
      chunks.push(d);
      arm();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
        closed = true;
        finish();
      } else if (chunks.length === 0 && !closed) reject(err);
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
  });
}
