// HTTPS and HTTP/2 clients for tests: one request per call over TLS, verified against a test
// CA when one is given (ca: null accepts any certificate, for stores with self-signed ones).

import { connect as h2connect } from 'node:http2';
import type { ClientHttp2Session, IncomingHttpHeaders as H2Headers } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { Agent } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { TestCert } from './certs.ts';

export type Reply = { status: number; headers: IncomingHttpHeaders | H2Headers; body: Buffer };

/** Where to connect: `host` is the address (default 127.0.0.1), `servername` the SNI (default opam.test). */
export type TlsTarget = { host?: string; servername?: string };

function tlsOptions(ca: TestCert | null, target: TlsTarget) {
  return { servername: target.servername ?? 'opam.test', ...(ca ? { ca: ca.cert } : { rejectUnauthorized: false }) };
}

/** A reply with its body as text, for comparing whole answers. */
export function asText(reply: Reply): { status: number; body: string } {
  return { status: reply.status, body: reply.body.toString() };
}

/** One HTTP/1.1-over-TLS request (a new connection unless `agent` is given); `headers.host` defaults to opam.test. */
export function h1Request(
  port: number,
  ca: TestCert | null,
  options: TlsTarget & { method?: string; path?: string; headers?: Record<string, string | string[]>; body?: Buffer | string; agent?: Agent | false } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: options.host ?? '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { host: 'opam.test', ...options.headers },
        ...tlsOptions(ca, options),
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** An HTTP/2 session; its errors surface on the streams (see `connected` to wait for the handshake). */
export function h2Session(port: number, ca: TestCert | null, target: TlsTarget = {}): ClientHttp2Session {
  const host = target.host ?? '127.0.0.1';
  const session = h2connect(`https://${host.includes(':') ? `[${host}]` : host}:${port}`, tlsOptions(ca, target));
  session.on('error', () => {});
  return session;
}

/** The session once its handshake is done; rejects when it fails. */
export function connected(session: ClientHttp2Session): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    if (session.connecting === false && !session.destroyed) return resolve(session);
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

export function h2Request(
  session: ClientHttp2Session,
  options: { method?: string; path?: string; authority?: string; headers?: Record<string, string | string[]>; body?: Buffer | string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': options.method ?? 'GET',
      ':path': options.path ?? '/',
      ':authority': options.authority ?? 'opam.test',
      ...options.headers,
    }, { endStream: options.body === undefined });
    let headers: H2Headers = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (headers = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    if (options.body !== undefined) stream.end(options.body);
  });
}
