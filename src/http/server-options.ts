// node:http's limits (docs/behaviour.md, "Limits and bad input") for the http, https and
// admin servers: as options at creation, and as properties that a reload can change for the
// next connections.

import type { Server as HttpServer, ServerOptions } from 'node:http';
import type { Limits } from '../config.ts';

/** node:http options carrying the limits (docs/behaviour.md). Shared by the http and https servers. */
export function serverOptions(limits: Limits): ServerOptions {
  return {
    maxHeaderSize: limits.max_header_size,
    headersTimeout: limits.header_timeout,
    // The whole-request timer would cut long uploads; the idle timer below covers stalls.
    requestTimeout: 0,
    keepAliveTimeout: limits.idle_timeout,
    // Node looks at header timeouts only this often (30 s by default): a slowloris would
    // get up to 30 s past the limit.
    connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(limits.header_timeout / 10))),
    requireHostHeader: false,
    joinDuplicateHeaders: false,
    noDelay: true,
    // The seed set net.ipv4.tcp_keepalive_time=60 for this; per-socket here.
    keepAlive: true,
    keepAliveInitialDelay: 60_000,
  };
}

/** Applies limits that node:http takes as properties rather than options (also on reload). */
export function applyLimits(server: HttpServer, limits: Limits): void {
  // Read by node:http for each new connection, so a reload applies to the next ones.
  (server as HttpServer & { maxHeaderSize: number }).maxHeaderSize = limits.max_header_size;
  server.headersTimeout = limits.header_timeout;
  server.keepAliveTimeout = limits.idle_timeout;
  server.maxHeadersCount = 200;
  // Socket inactivity: idle keep-alive connections and clients that stop reading.
  server.timeout = limits.idle_timeout;
}
