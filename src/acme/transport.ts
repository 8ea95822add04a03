// HTTP to the ACME server, through undici. acme-client 5.4 speaks the protocol (JWS,
// nonces, orders) but sends through a process-wide axios instance that retries 5xx/429
// for as long as any Retry-After says (hours, inside one call), loses the cause of
// network errors, and takes its trust settings process-wide. The issuer replaces that
// client's `http.request` with `send` below: every request is bounded by timeouts and the
// order's AbortSignal, never retried here, and a Retry-After comes back to the caller so
// the renewal loop can schedule it instead of sleeping.

import { rootCertificates } from 'node:tls';
import type { Client } from 'acme-client';
import { parseRetryAfter } from './schedule.ts';
import { LazyAgent } from '../undici-api.ts';

export const ACME_REQUEST_TIMEOUT_MS = 30_000;
/** Directories, orders and chains are a few kB; anything far larger is not ACME. */
const MAX_BODY_BYTES = 1024 * 1024;

export type AcmeResponse = {
  status: number;
  /** Lower-case names; repeated headers joined by ", " (acme-client reads them as strings). */
  headers: Record<string, string>;
  /** Parsed JSON for JSON types, else the text (PEM chains). */
  data: unknown;
};

export type TransportOptions = {
  /** PEM of extra CAs trusted for the ACME server, on top of the system's roots. */
  caBundle: string | null;
  requestTimeoutMs?: number;
  userAgent?: string;
};

/** A network failure on the way to the ACME server (refused, reset, timed out). */
export class AcmeTransportError extends Error {
  readonly code: string;
  constructor(method: string, url: string, cause: unknown) {
    const code = (cause as { code?: string } | null)?.code ?? (cause as Error | null)?.name ?? 'ERROR';
    super(`${method} ${url}: ${code}`, { cause });
    this.name = 'AcmeTransportError';
    this.code = code;
  }
}

export class AcmeTransport {
  readonly #agent: LazyAgent;
  readonly #timeoutMs: number;
  readonly #userAgent: string;

  constructor(options: TransportOptions) {
    this.#timeoutMs = options.requestTimeoutMs ?? ACME_REQUEST_TIMEOUT_MS;
    this.#userAgent = options.userAgent ?? 'opam-edge';
    this.#agent = new LazyAgent({
      connect: {
        // Like NODE_EXTRA_CA_CERTS: the bundle is added to the system roots, not instead.
        ca: options.caBundle ? [...rootCertificates, options.caBundle] : undefined,
        timeout: this.#timeoutMs,
      },
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
      keepAliveTimeout: 10_000,
      connections: 4,
    });
  }

  async send(url: string, method: string, body: unknown, signal?: AbortSignal): Promise<AcmeResponse> {
    const verb = method.toUpperCase();
    signal?.throwIfAborted();
    let res;
    try {
      res = await this.#agent.request(url, {
        method: verb as 'GET',
        signal,
        headers: {
          'user-agent': this.#userAgent,
          accept: 'application/json, application/pem-certificate-chain;q=0.9, */*;q=0.5',
          ...(body === undefined || body === null ? {} : { 'content-type': 'application/jose+json' }),
        },
        body: body === undefined || body === null ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw new AcmeTransportError(verb, url, err);
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(res.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    let text = '';
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) throw new Error(`response larger than ${MAX_BODY_BYTES} bytes`);
        chunks.push(chunk);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      res.body.destroy();
      if (signal?.aborted) throw signal.reason;
      throw new AcmeTransportError(verb, url, err);
    }
    let data: unknown = text;
    if (/json/i.test(headers['content-type'] ?? '') && text !== '') {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    return { status: res.statusCode, headers, data };
  }

  /** GET of a JSON document (directory, renewalInfo), with its Retry-After in ms. */
  async getJson(url: string, signal?: AbortSignal): Promise<{ status: number; data: unknown; retryAfterMs: number | null }> {
    const res = await this.send(url, 'GET', undefined, signal);
    return { status: res.status, data: res.data, retryAfterMs: parseRetryAfter(res.headers['retry-after'], Date.now()) };
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

type AcmeClientHttp = {
  request: (url: string, method: string, opts?: { data?: unknown }) => Promise<AcmeResponse>;
  maxBadNonceRetries: number;
};

/**
 * Routes one acme-client Client's requests through `send`. `http` is the client's
 * documented-in-source HttpClient (acme-client 5.4 src/http.js); it is not in the typings.
 */
export function attachTransport(client: Client, send: (url: string, method: string, body: unknown) => Promise<AcmeResponse>): void {
  const http = (client as unknown as { http: AcmeClientHttp }).http;
  http.request = (url, method, opts) => send(url, method, opts?.data);
  // A badNonce is answered with a fresh nonce and costs no wait; with a CA that rejects
  // many nonces (Pebble's PEBBLE_WFE_NONCEREJECT) five tries are not always enough.
  http.maxBadNonceRetries = 20;
}
