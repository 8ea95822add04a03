// The gateway behind the real https listeners (src/http/secure.ts createSecureListener), as
// the edge runs them: one with tls.http2 off (HTTP/1.1 only) and one with it on (h2 and
// HTTP/1.x by ALPN), both dual-stack on port 0, certificates from a real CertStore. The config
// is a real validated Config; upstreams resolve through the real Upstreams manager. What the
// edge adds around them (admin, ACME, reload of listeners) is left out, so tests can look at
// the gateway's metrics and access records directly.

import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { rmSync } from 'node:fs';
import type { Config } from '../../src/config.ts';
import type { AccessLog, AccessRecord } from '../../src/log.ts';
import { Upstreams } from '../../src/upstream/upstreams.ts';
import { createGateway, siteRoutes } from '../../src/http/gateway.ts';
import type { Gateway, GatewayState, RequestMetrics } from '../../src/http/gateway.ts';
import { applySecureLimits, createSecureListener, Http2Sessions } from '../../src/http/secure.ts';
import { ConnectionTracker } from '../../src/http/connection-tracker.ts';
import { CertStore } from '../../src/tls/cert-store.ts';
import { makeCA, makeCert } from './certs.ts';
import type { TestCert } from './certs.ts';
import { tempDir } from './edge-process.ts';
import { testConfig } from './edge-in-process.ts';
import { memoryLog } from './event-log.ts';
import type { MemoryLog } from './event-log.ts';

export function captureAccessLog(): AccessLog & { records: AccessRecord[] } {
  const records: AccessRecord[] = [];
  return { enabled: true, records, write: (r) => void records.push(r), reopen() {}, flush() {}, async close() {} };
}

export type Front = {
  config: Config;
  /** The https listener with tls.http2 off: HTTP/1.1 over TLS. */
  h1Port: number;
  /** The https listener with tls.http2 on: h2 by ALPN, HTTP/1.x otherwise. */
  h2Port: number;
  ca: TestCert;
  /** The servers' certificate (opam.test, localhost, 127.0.0.1, ::1), signed by `ca`. */
  cert: TestCert;
  gateway: Gateway;
  upstreams: Upstreams;
  log: MemoryLog;
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

/** A config without listeners or access log (the front has its own), plus `raw`. */
export function makeConfig(raw: Record<string, unknown>): Config {
  return testConfig({ listen: { http: [], https: [] }, access_log: 'off', ...raw });
}

/**
 * `metrics: false` leaves the gateway without its metrics hook; `gateway` puts a gateway the
 * test built itself behind the listeners instead of the front's own.
 */
export async function startFront(raw: Record<string, unknown>, options: { metrics?: boolean; gateway?: Gateway } = {}): Promise<Front> {
  const { ca, cert } = await certs();
  const log = memoryLog();
  const access = captureAccessLog();
  const metrics: RequestMetrics[] = [];
  // Clients here connect to 127.0.0.1 too, sending no SNI: the one certificate answers them.
  const withTls = (r: Record<string, unknown>) => ({ ...r, tls: { unknown_sni: 'default', ...(r.tls as object | undefined) } });
  let config = makeConfig(withTls(raw));
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
  const gateway =
    options.gateway ??
    createGateway({
      state: () => state,
      log,
      onRequest: options.metrics === false ? undefined : (m) => void metrics.push(m),
    });
  const store = new CertStore({ unknownSni: config.tls.unknown_sni, log });
  store.setSource('front', 'file', [{ cert: cert.cert, key: cert.key, origin: cert.certPath }]);
  const connections = new ConnectionTracker();
  const sessions = new Http2Sessions(log);
  const listener = (http2: boolean): TlsServer =>
    createSecureListener({
      store,
      http2,
      limits: config.limits,
      log,
      onRequest: gateway.request,
      onCheckContinue: gateway.checkContinue,
      onUpgrade: gateway.upgrade,
      connections,
      sessions,
    });
  const [h1, h2] = [listener(false), listener(true)];
  for (const server of [h1, h2]) {
    await new Promise<void>((resolve) => server.listen({ port: 0, host: '::', ipv6Only: false }, () => resolve()));
  }
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
      const c = makeConfig(withTls(next));
      const commit = await upstreams.reload(c);
      config = c;
      state = stateOf(c);
      for (const server of [h1, h2]) applySecureLimits(server, c.limits);
      await commit();
    },
    async close() {
      sessions.destroyAll();
      sessions.stop();
      connections.destroyAll();
      await Promise.all([h1, h2].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      await upstreams.stop(0);
    },
  };
}
