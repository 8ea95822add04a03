// The https request path: checks (framing, Host, absolute-form), Host -> site, the body
// size limit, an upstream address, then the proxy or the WebSocket tunnel; one access log
// line per request and an optional metrics callback. It reads one immutable state per
// request (routes, limits, HSTS, access log), swapped whole on reload by the edge.
//
// The https listeners call it for HTTP/1.1 (node:http IncomingMessage/ServerResponse) and
// HTTP/2 (H2Request/H2Response on node:http2's stream API, see h2-exchange.ts) alike:
//   server.on('request', gateway.request)
//   server.on('checkContinue', gateway.checkContinue)   // 100 only once the request passed
//   server.on('upgrade', gateway.upgrade)               // HTTP/1.1 only

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Limits, Site } from '../config.ts';
import { ERRORS } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { AccessLog, EventLog } from '../log.ts';
import type { UpstreamTarget } from '../upstream/upstreams.ts';
import type { Picked } from '../upstream/pools.ts';
import { checkRequest } from './request-checks.ts';
import { clientAddress, requestId as nextRequestId } from './headers.ts';
import { forwardRequestHeaders } from './forward-headers.ts';
import { buildRoutes } from './route.ts';
import type { Routes } from './route.ts';
import { sendError } from './error-response.ts';
import type { AnyResponse } from './error-response.ts';
import { cutClient, proxy } from './proxy.ts';
import type { AnyRequest, ProxyOutcome } from './proxy.ts';
import { answer, openTunnel } from './tunnel.ts';
import { BodyDeadlines } from './body-deadline.ts';

export type SiteRoute = {
  readonly site: Site;
  /** The site's first host: its name in metrics. */
  readonly name: string;
  readonly upstream: UpstreamTarget;
};

/** What the gateway reads per request; replaced whole on reload. */
export type GatewayState = {
  readonly routes: Routes<SiteRoute>;
  readonly limits: Limits;
  readonly hsts: string | null;
  readonly accessLog: AccessLog;
  readonly stopping: boolean;
};

export type RequestMetrics = {
  /** The site's name, or null when the request was refused before routing (400, 421). */
  site: string | null;
  status: number;
  proto: 'http/1.1' | 'h2';
  durationMs: number;
  /** The catalogue code of an upstream failure (or 413/499), null when all went well. */
  error: ErrorCode | null;
};

export type GatewayDeps = {
  state: () => GatewayState;
  log: EventLog;
  /** Metrics hook; when absent, nothing is computed for it. */
  onRequest?: (m: RequestMetrics) => void;
};

export type Gateway = {
  request(req: AnyRequest, res: AnyResponse): void;
  checkContinue(req: AnyRequest, res: AnyResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
};

/** Site routes for a config, each holding its upstream target. */
export function siteRoutes(sites: readonly Site[], upstreamOf: (site: Site) => UpstreamTarget): Routes<SiteRoute> {
  return buildRoutes(sites, (site) => Object.freeze({ site, name: site.hosts[0]!, upstream: upstreamOf(site) }));
}

/** Per-request facts the log line and metrics need. */
type Exchange = {
  readonly req: AnyRequest;
  readonly startedAt: number;
  readonly requestId: string;
  readonly clientIp: string;
  readonly h2: boolean;
  readonly state: GatewayState;
  host: string;
  route: SiteRoute | null;
  picked: Picked | null;
};

export function createGateway(deps: GatewayDeps): Gateway {
  const { log, onRequest } = deps;
  const bodies = new BodyDeadlines(log);

  function begin(req: AnyRequest): Exchange {
    return {
      req,
      startedAt: Date.now(),
      requestId: nextRequestId(),
      clientIp: clientAddress(req.socket?.remoteAddress),
      h2: req.httpVersionMajor === 2,
      state: deps.state(),
      host: '',
      route: null,
      picked: null,
    };
  }

  function finish(x: Exchange, status: number, bytesSent: number, error: ErrorCode | null): void {
    const accessLog = x.state.accessLog;
    if (accessLog.enabled) {
      const req = x.req;
      accessLog.write({
        remoteAddr: x.clientIp,
        method: req.method ?? '-',
        url: req.url ?? '-',
        httpVersion: req.httpVersion,
        status,
        bytesSent,
        referer: req.headers.referer,
        userAgent: req.headers['user-agent'],
        host: x.host,
        upstreamAddr: x.picked?.address ?? null,
        startedAt: x.startedAt,
        requestId: x.requestId,
      });
    }
    if (onRequest !== undefined) {
      onRequest({ site: x.route?.name ?? null, status, proto: x.h2 ? 'h2' : 'http/1.1', durationMs: Date.now() - x.startedAt, error });
    }
  }

  function refuse(x: Exchange, res: AnyResponse, code: ErrorCode, close: boolean): void {
    const answered = sendError(res, code, x.requestId, { head: x.req.method === 'HEAD', hsts: x.state.hsts, close });
    finish(x, answered.status, answered.bytes, code);
  }

  function upstreamEvent(x: Exchange, code: ErrorCode, cause: unknown): void {
    const fields = {
      code,
      request_id: x.requestId,
      upstream: x.route?.upstream.label ?? null,
      address: x.picked?.address ?? null,
      host: x.host,
      method: x.req.method,
      path: x.req.url,
      reason: (cause as { code?: string } | null)?.code ?? (cause instanceof Error ? cause.message : null),
    };
    if (code === 'CLIENT_CLOSED') log.debug('client_closed', fields);
    else log.warn('upstream_error', fields);
  }

  function handle(req: AnyRequest, res: AnyResponse, expectsContinue: boolean): void {
    // node:http accepts an HTTP/0.9 request line ("GET /"); such a client would not
    // understand a status line, so the connection is closed (docs/behaviour.md, "Limits and
    // bad input").
    if (req.httpVersionMajor === 0) {
      (req as IncomingMessage).socket.destroy();
      return;
    }
    const x = begin(req);
    const { state } = x;
    const h1 = !x.h2;
    if (state.stopping && h1) (res as ServerResponse).shouldKeepAlive = false;
    // An HTTP/1.1 body we do not read makes the connection unusable after an early answer.
    const unreadBody = h1 && (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0');

    const target = checkRequest(req);
    if ('error' in target) return refuse(x, res, target.error, true);
    x.host = target.host;
    const route = state.routes.lookup(target.host);
    if (route === null) return refuse(x, res, 'UNKNOWN_HOST', unreadBody);
    x.route = route;
    const limit = state.limits.max_body_size;
    if (limit !== null) {
      const length = req.headers['content-length'];
      if (length !== undefined && Number(length) > limit) return refuse(x, res, 'BODY_TOO_LARGE', true);
    }
    const picked = route.upstream.pick();
    if (picked === null) {
      upstreamEvent(x, 'UPSTREAM_NO_ADDRESS', null);
      return refuse(x, res, 'UPSTREAM_NO_ADDRESS', unreadBody);
    }
    x.picked = picked;
    if (expectsContinue) res.writeContinue();
    bodies.watch(req, state.limits);

    proxy({
      req,
      res,
      picked,
      method: req.method!,
      path: target.path,
      headers: forwardRequestHeaders(req.rawHeaders, { hostHeader: target.hostHeader, clientIp: x.clientIp, h2: x.h2 }),
      h2: x.h2,
      streamingBodyLimit: limit,
      hsts: state.hsts,
      requestId: x.requestId,
      done: (outcome: ProxyOutcome) => {
        if (outcome.error !== null) upstreamEvent(x, outcome.error, outcome.cause);
        finish(x, outcome.status, outcome.bytesSent, outcome.error);
      },
    });
  }

  /** The process never goes down for one request: log it, answer 500 or cut, carry on. */
  function failed(req: AnyRequest, res: AnyResponse, err: unknown): void {
    log.error('request_failed', { code: 'REQUEST_FAILED', method: req.method, path: req.url, error: (err as Error)?.stack ?? String(err) });
    try {
      if (!res.headersSent) sendError(res, 'INTERNAL', '-', { head: req.method === 'HEAD', hsts: null, close: true });
      else cutClient({ res, h2: req.httpVersionMajor === 2 });
    } catch {
      res.destroy();
    }
    onRequest?.({ site: null, status: 500, proto: req.httpVersionMajor === 2 ? 'h2' : 'http/1.1', durationMs: 0, error: 'INTERNAL' });
  }

  function upgradeRequest(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const x = begin(req);
    const { state } = x;
    const refuseRaw = (code: ErrorCode) => {
      answer(socket, code, x.requestId);
      finish(x, statusOf(code), 0, code);
    };
    const target = checkRequest(req);
    if ('error' in target) return refuseRaw(target.error);
    x.host = target.host;
    const route = state.routes.lookup(target.host);
    if (route === null) return refuseRaw('UNKNOWN_HOST');
    x.route = route;
    const picked = route.upstream.pick();
    if (picked === null) return refuseRaw('UPSTREAM_NO_ADDRESS');
    x.picked = picked;
    openTunnel({
      client: socket,
      head,
      host: picked.ip,
      port: picked.port,
      method: req.method!,
      path: target.path,
      headers: forwardRequestHeaders(req.rawHeaders, { hostHeader: target.hostHeader, clientIp: x.clientIp, h2: false, upgrade: true }),
      connectTimeoutMs: state.limits.upstream_connect_timeout,
      idleTimeoutMs: state.limits.idle_timeout,
      requestId: x.requestId,
      done: (error, cause, bytes) => {
        if (error !== null) upstreamEvent(x, error, cause);
        // The upstream's own status line went through untouched; 101 is what a tunnel means.
        finish(x, error === null ? 101 : statusOf(error), bytes, error);
      },
    });
  }

  return {
    request(req, res) {
      try {
        handle(req, res, false);
      } catch (err) {
        failed(req, res, err);
      }
    },
    checkContinue(req, res) {
      try {
        handle(req, res, true);
      } catch (err) {
        failed(req, res, err);
      }
    },
    upgrade(req, socket, head) {
      try {
        upgradeRequest(req, socket, head);
      } catch (err) {
        log.error('request_failed', { code: 'REQUEST_FAILED', method: req.method, path: req.url, error: (err as Error)?.stack ?? String(err) });
        socket.destroy();
      }
    },
  };
}

function statusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}
