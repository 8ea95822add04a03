// An https proxy in front of Pebble that lets a test see and bend the ACME conversation:
// it records each newOrder payload (profile, replaces), adds `renewalInfo` (RFC 9773) and
// `meta.profiles` to the directory, serves renewalInfo windows the test sets, and can
// answer any request with an error (429 + Retry-After, 503) instead of forwarding it.
// The Host header is passed on, so Pebble builds its URLs (and checks each JWS "url")
// against the proxy.

import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { makeCert } from './certs.ts';
import type { TestCert } from './certs.ts';

export type Override = { status: number; headers?: Record<string, string>; body?: unknown };

export type AcmeProxy = {
  directory: string;
  /** Decoded payloads of every newOrder request Pebble accepted (201). */
  orders: Record<string, unknown>[];
  /** certIDs asked of renewalInfo, in order. */
  renewalInfoAsked: string[];
  /** Answer for the next requests whose path contains `fragment` (e.g. "/order-plz"); null to stop. */
  override(fragment: string, answer: Override | null, times?: number): void;
  /** The window served for every certID; null: 404. */
  setWindow(window: { start: Date; end: Date; retryAfterSeconds?: number } | null): void;
  close(): Promise<void>;
};

export async function startAcmeProxy(options: {
  pebbleDirectory: string;
  ca: TestCert;
  dir: string;
  renewalInfo?: boolean;
  profiles?: Record<string, string>;
}): Promise<AcmeProxy> {
  const upstream = new URL(options.pebbleDirectory);
  const tls = await makeCert({ names: ['localhost', '127.0.0.1'], dir: options.dir, stem: 'acme-proxy', ca: options.ca });
  const agent = new Agent({ connect: { ca: options.ca.cert } });
  const overrides = new Map<string, { answer: Override; times: number }>();
  const orders: Record<string, unknown>[] = [];
  const renewalInfoAsked: string[] = [];
  let window: { start: Date; end: Date; retryAfterSeconds?: number } | null = null;
  let origin = '';

  const server: Server = createServer({ cert: tls.cert, key: tls.key }, async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const path = req.url ?? '/';
    try {
      for (const [suffix, o] of overrides) {
        if (!path.includes(suffix)) continue;
        if (--o.times <= 0) overrides.delete(suffix);
        const text = o.answer.body === undefined ? '' : JSON.stringify(o.answer.body);
        res.writeHead(o.answer.status, { 'content-type': 'application/problem+json', ...o.answer.headers });
        res.end(text);
        return;
      }
      if (path.startsWith('/renewal-info/')) {
        renewalInfoAsked.push(path.slice('/renewal-info/'.length));
        if (!window) return void res.writeHead(404).end();
        res.writeHead(200, {
          'content-type': 'application/json',
          ...(window.retryAfterSeconds !== undefined ? { 'retry-after': String(window.retryAfterSeconds) } : {}),
        });
        res.end(JSON.stringify({ suggestedWindow: { start: window.start.toISOString(), end: window.end.toISOString() }, explanationURL: 'https://example.org/why' }));
        return;
      }
      let order: Record<string, unknown> | null = null;
      if (path.endsWith('/order-plz') && body.length > 0) {
        const jws = JSON.parse(body.toString()) as { payload: string };
        order = JSON.parse(Buffer.from(jws.payload, 'base64url').toString()) as Record<string, unknown>;
      }
      const headers = { ...req.headers };
      delete headers['content-length'];
      const up = await request(`${upstream.origin}${path}`, {
        method: req.method as 'GET',
        headers,
        body: body.length > 0 ? body : undefined,
        dispatcher: agent,
      });
      let out: Buffer = Buffer.from(await up.body.arrayBuffer());
      // Only orders Pebble created: a newOrder it refused (a rejected nonce, which the client
      // sends again) is not an order.
      if (order !== null && up.statusCode === 201) orders.push(order);
      const outHeaders: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection' && k !== 'keep-alive') outHeaders[k] = v;
      if (path === upstream.pathname && req.method === 'GET') {
        const directory = JSON.parse(out.toString()) as Record<string, unknown> & { meta?: Record<string, unknown> };
        if (options.renewalInfo) directory.renewalInfo = `${origin}/renewal-info/`;
        if (options.profiles) directory.meta = { ...directory.meta, profiles: options.profiles };
        out = Buffer.from(JSON.stringify(directory));
      }
      res.writeHead(up.statusCode, { ...outHeaders, 'content-length': out.length });
      res.end(out);
    } catch (err) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(err));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  origin = `https://127.0.0.1:${port}`;
  return {
    directory: `${origin}${upstream.pathname}`,
    orders,
    renewalInfoAsked,
    override(suffix, answer, times = Infinity) {
      if (answer === null) overrides.delete(suffix);
      else overrides.set(suffix, { answer, times });
    },
    setWindow(w) {
      window = w;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await agent.close();
    },
  };
}
