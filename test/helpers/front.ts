// The gateway behind real TLS servers, as the https listeners will run it: one
// https.createServer (HTTP/1.1 only) and one http2.createSecureServer({ allowHTTP1: true })
// (h2 and HTTP/1.1 by ALPN), both dual-stack on port 0, with test certificates. The config
// is a real validated Config; upstreams resolve through the real Upstreams manager.

import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import { connect as h2connect, createSecureServer } from 'node:http2';
import type { Http2SecureServer, ClientHttp2Session, IncomingHttpHeaders as H2Headers } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { validateConfig } from '../../src/config.ts';
import type { Config } from '../../src/config.ts';
import type { AccessLog, AccessRecord, EventLog, Fields } from '../../src/log.ts';
import { Upstreams } from '../../src/upstream/upstreams.ts';
import { createGateway, siteRoutes } from '../../src/http/gateway.ts';
import type { Gateway, GatewayState, RequestMetrics } from '../../src/http/gateway.ts';
import { applyLimits, serverOptions } from '../../src/http/server-options.ts';
import { onClientError } from '../../src/http/client-errors.ts';
import { serveStreams } from '../../src/http/h2-exchange.ts';
import { makeCA, makeCert } from './certs.ts';
import type { TestCert } from './certs.ts';
import { tempDir } from './edge-process.ts';

export type LoggedEvent = { level: string; event: string } & Fields;

export function captureLog(): EventLog & { events: LoggedEvent[] } {
  const events: LoggedEvent[] = [];
  const at = (level: string) => (event: string, fields?: Fields) => void events.push({ level, event, ...fields });
  return { events, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function captureAccessLog(): AccessLog & { records: AccessRecord[] } {
  const records: AccessRecord[] = [];
  return { enabled: true, records, write: (r) => void records.push(r), reopen() {}, flush() {}, async close() {} };
}

export type Front = {
  config: Config;
  /** https.createServer: HTTP/1.1 over TLS. */
  h1Port: number;
  /** http2.createSecureServer({ allowHTTP1: true }): h2 by ALPN, HTTP/1.1 otherwise. */
  h2Port: number;
  ca: TestCert;
  /** The servers' certificate (opam.test, localhost, 127.0.0.1, ::1), signed by `ca`. */
  cert: TestCert;
  gateway: Gateway;
  upstreams: Upstreams;
  log: ReturnType<typeof captureLog>;
  access: ReturnType<typeof captureAccessLog>;
  metrics: RequestMetrics[];
  /** Moves to a new config, as the edge's reload does. */
  reload(raw: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
};

let sharedCerts: Promise<{ ca: TestCert; cert: TestCert; dir: string }> | null = null;

function certs() {
  sharedCerts ??= (async () => {
    const dir = tempDir('opam-edge-front-');
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const ca = await makeCA(dir);
    const cert = await makeCert({ names: ['opam.test', 'localhost', '127.0.0.1', '::1'], dir, ca });
    return { ca, cert, dir };
  })();
  return sharedCerts;
}

export function makeConfig(raw: Record<string, unknown>): Config {
  const result = validateConfig({ listen: { http: [], https: [] }, access_log: 'off', ...raw }, 'test');
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

export async function startFront(raw: Record<string, unknown>, options: { metrics?: boolean } = {}): Promise<Front> {
  const { ca, cert } = await certs();
  const log = captureLog();
  const access = captureAccessLog();
  const metrics: RequestMetrics[] = [];
  let config = makeConfig(raw);
  const upstreams = new Upstreams({ log });
  await upstreams.start(config);
  const stateOf = (c: Config): GatewayState =>
    Object.freeze({
      routes: siteRoutes(c.sites, (site) => upstreams.get(site.upstream)),
      limits: c.limits,
      hsts: c.tls.hsts,
      accessLog: access,
      stopping: false,
    });
  let state = stateOf(config);
  const gateway = createGateway({
    state: () => state,
    log,
    onRequest: options.metrics === false ? undefined : (m) => void metrics.push(m),
  });
  const tlsOptions = { key: cert.key, cert: cert.cert };
  const h1: HttpsServer = createHttpsServer({ ...serverOptions(config.limits), ...tlsOptions }, gateway.request);
  applyLimits(h1, config.limits);
  h1.on('clientError', onClientError);
  const h2: Http2SecureServer = createSecureServer({ ...tlsOptions, allowHTTP1: true });
  h2.on('request', gateway.request);
  const sockets = new Set<Socket>();
  for (const server of [h1, h2]) {
    server.on('checkContinue', gateway.checkContinue);
    server.on('upgrade', gateway.upgrade);
    server.on('secureConnection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen({ port: 0, host: '::', ipv6Only: false }, () => resolve()));
  }
  // As the edge's https listener does (src/http/secure.ts): h2 on the stream API.
  serveStreams(h2, { onRequest: gateway.request, onCheckContinue: gateway.checkContinue });
  return {
    get config() {
      return config;
    },
    h1Port: (h1.address() as AddressInfo).port,
    h2Port: (h2.address() as AddressInfo).port,
    ca,
    cert,
    gateway,
    upstreams,
    log,
    access,
    metrics,
    async reload(next) {
      const c = makeConfig(next);
      const commit = await upstreams.reload(c);
      config = c;
      state = stateOf(c);
      await commit();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([h1, h2].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      await upstreams.stop(0);
    },
  };
}

export type Reply = { status: number; headers: IncomingHttpHeaders | H2Headers; body: Buffer };

/** One HTTP/1.1-over-TLS request; `headers.host` defaults to opam.test. */
export function h1Request(
  port: number,
  ca: TestCert,
  options: { method?: string; path?: string; headers?: Record<string, string | string[]>; body?: Buffer | string; host?: string; agent?: false } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: options.host ?? '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { host: 'opam.test', ...options.headers },
        ca: ca.cert,
        servername: 'opam.test',
        agent: false,
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

export function h2Session(port: number, ca: TestCert, host = '127.0.0.1'): ClientHttp2Session {
  const session = h2connect(`https://${host.includes(':') ? `[${host}]` : host}:${port}`, { ca: ca.cert, servername: 'opam.test' });
  session.on('error', () => {});
  return session;
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
