// Readiness and capability checks: does a port answer GET /1k with 200 over plain HTTP, over
// TLS with HTTP/1.1 (no ALPN, as autocannon connects), and does it offer h2 by ALPN.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { SITE_HOST } from './fixtures.ts';

const TIMEOUT_MS = 2000;

/** Resolves with the status code, or rejects with the reason (refused, timeout...). */
export function getStatus(port: number, tls: boolean, path = '/1k'): Promise<number> {
  return new Promise((resolve, reject) => {
    const options = {
      host: '127.0.0.1',
      port,
      path,
      agent: false,
      headers: { host: SITE_HOST },
      timeout: TIMEOUT_MS,
      servername: SITE_HOST,
      rejectUnauthorized: false,
    } as const;
    const req = (tls ? httpsRequest : httpRequest)(options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The protocol chosen by ALPN when h2 and http/1.1 are offered ('' when none). */
export function alpnOf(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: SITE_HOST,
      ALPNProtocols: ['h2', 'http/1.1'],
      rejectUnauthorized: false,
      timeout: TIMEOUT_MS,
    });
    socket.once('secureConnect', () => {
      const protocol = socket.alpnProtocol;
      socket.destroy();
      resolve(typeof protocol === 'string' ? protocol : '');
    });
    socket.once('timeout', () => socket.destroy(new Error(`no TLS handshake in ${TIMEOUT_MS} ms`)));
    socket.once('error', reject);
  });
}

/**
 * Retries `check` until it returns 200 or the deadline passes, giving up at once when
 * `gone()` says the server has exited. Returns null when ready, else the last reason.
 */
export async function waitFor200(
  check: () => Promise<number>,
  deadline: () => number,
  gone: () => string | null,
): Promise<string | null> {
  let reason = 'no answer';
  while (Date.now() < deadline()) {
    const exited = gone();
    if (exited) return exited;
    try {
      const status = await check();
      if (status === 200) return null;
      reason = `answered ${status} instead of 200`;
    } catch (err) {
      reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return reason;
}
