// New connection per request: N loops, each opens a connection (TLS: a full handshake, no
// session reuse), sends one GET with "Connection: close", reads the whole response, closes,
// and starts again. Measures what a proxy pays per new client: accept + handshake + request.

import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { serveOneRun } from './protocol.ts';
import type { LoadResult, LoadSpec } from './protocol.ts';

const TIMEOUT_MS = 10_000;
/**
 * Every target gets the same key exchange, so CPU per handshake compares like with like
 * (left to each server, nginx, Caddy and Node can pick different groups for the same
 * client): X25519 offered first. P-256 stays on the list only because TLS 1.2 (the origin's
 * nginx 1.22 stops there) checks the ECDSA P-256 certificate's curve against this list; the
 * group each target negotiated is in the results.
 */
const GROUP = 'X25519:P-256';

/** The key exchange group and cipher of the first handshake, for the results. */
let negotiated: string | undefined;

type Outcome = { ok: boolean; status: number; bytes: number };

/**
 * One connection, one request. The response is complete at Content-Length (or, without one,
 * when the server closes): the client does not depend on how fast the server closes.
 */
function oneRequest(spec: LoadSpec, request: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    let bytes = 0;
    let head = Buffer.alloc(0);
    let status = 0;
    let bodyStart = -1;
    let length = -1;
    let settled = false;
    const socket: Socket = spec.tls
      ? tlsConnect({ host: '127.0.0.1', port: spec.port, servername: spec.host, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ecdhCurve: GROUP })
      : netConnect({ host: '127.0.0.1', port: spec.port });
    // Without it, Nagle holds the request behind the handshake's last segment until the
    // server's delayed ACK (40 ms): the run would measure timers, not the proxy.
    socket.setNoDelay(true);
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ ok: ok && status > 0, status, bytes });
    };
    socket.setTimeout(TIMEOUT_MS, () => done(false));
    socket.once(spec.tls ? 'secureConnect' : 'connect', () => {
      if (spec.tls && negotiated === undefined && 'getCipher' in socket) {
        const tls = socket as TLSSocket;
        const key = tls.getEphemeralKeyInfo() as { name?: string } | null;
        negotiated = `${key?.name ?? 'unknown group'}, ${tls.getCipher()?.standardName ?? 'unknown cipher'}, ${tls.getProtocol() ?? ''}`;
      }
      socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bodyStart < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.toString('latin1', 0, end).toLowerCase();
        status = Number(text.slice(9, 12)) || 0;
        const match = /\r\ncontent-length:\s*(\d+)/.exec(text);
        length = match ? Number(match[1]) : -1;
        bodyStart = bytes - head.length + end + 4;
      }
      if (length >= 0 && bytes - bodyStart >= length) done(true);
    });
    socket.once('end', () => done(bodyStart >= 0 && length < 0));
    socket.once('error', () => done(false));
  });
}

async function load(spec: LoadSpec, durationS: number, latencies: number[] | null): Promise<LoadResult> {
  const request = Buffer.from(`GET ${spec.path} HTTP/1.1\r\nHost: ${spec.host}\r\nConnection: close\r\n\r\n`, 'latin1');
  const started = performance.now();
  const stopAt = started + durationS * 1000;
  let requests = 0;
  let errors = 0;
  let non2xx = 0;
  let bytes = 0;
  const loop = async () => {
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      const outcome = await oneRequest(spec, request);
      if (!outcome.ok) {
        errors++;
        continue;
      }
      requests++;
      bytes += outcome.bytes;
      if (outcome.status < 200 || outcome.status > 299) non2xx++;
      latencies?.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, loop));
  const elapsed = (performance.now() - started) / 1000;
  const sorted = (latencies ?? []).sort((a, b) => a - b);
  const pick = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0);
  return { requests, durationS: elapsed, rps: requests / elapsed, p50: pick(0.5), p99: pick(0.99), bytesPerS: bytes / elapsed, errors, non2xx, ...(negotiated ? { tls: negotiated } : {}) };
}

serveOneRun(
  (spec) => load(spec, spec.durationS, []),
  async (spec) => {
    if (spec.warmupS > 0) await load(spec, spec.warmupS, null);
  },
);
