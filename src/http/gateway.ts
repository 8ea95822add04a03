// The https request path, as named steps shared by HTTP/1.1, HTTP/2 and Upgrade:
//   admit   framing, Host, absolute-form (request-checks.ts)     -> 400/501/505
//   route   Host -> site                                         -> 421
//           (HTTP only: the announced body against max_body_size -> 413)
//   pick    an upstream address                                  -> 503
//   forward the proxy (HTTP) or the tunnel (Upgrade)             -> 502/504/499...
//   finish  one access log line, one metrics count, an event on failure
// A step that refuses writes the answer (error-response.ts) and finishes the exchange; every
// path ends in finish exactly once, a handler that throws (500) included. It reads one
// immutable state per request (routes, limits, HSTS, access log), swapped whole on reload.
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
import type { Target } from './request-checks.ts';
import { clientAddress, requestId as nextRequestId } from './headers.ts';
import { forwardRequestHeaders } from './forward-headers.ts';
import { buildRoutes } from './route.ts';
import type { Routes } from './route.ts';
import { sendError, sendSocketError } from './error-response.ts';
import type { ErrorAnswer } from './error-response.ts';
import { cutClient, proxy } from './proxy.ts';
import type { AnyRequest, AnyResponse, ProxyOutcome } from './proxy.ts';
import { openTunnel } from './tunnel.ts';
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
  /** The catalogue code of a refusal or failure (413, 499, 500, 502...), null when all went well. */
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

/** Per-request facts the steps, the log line and metrics need. */
type Exchange = {
  readonly req: AnyRequest;
  /** Where an error answer goes: the response, or on the Upgrade path the raw socket. */
  readonly res: AnyResponse | null;
  readonly socket: Duplex | null;
  readonly startedAt: number;
  readonly requestId: string;
  readonly clientIp: string;
  readonly h2: boolean;
  readonly state: GatewayState;
  /** An HTTP/1.1 body that an early answer leaves unread: the connection must close. */
  readonly unreadBody: boolean;
  host: string;
  route: SiteRoute | null;
  picked: Picked | null;
  finished: boolean;
};

export function createGateway(deps: GatewayDeps): Gateway {
  const { log, onRequest } = deps;
  const bodies = new BodyDeadlines(log);

  function begin(req: AnyRequest, res: AnyResponse | null, socket: Duplex | null): Exchange {
    const h2 = req.httpVersionMajor === 2;
    const headers = req.headers;
    return {
      req,
      res,
      socket,
      startedAt: Date.now(),
      requestId: nextRequestId(),
      clientIp: clientAddress(req.socket?.remoteAddress),
      h2,
      state: deps.state(),
      unreadBody: !h2 && (headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0'),
      host: '',
      route: null,
      picked: null,
      finished: false,
    };
  }

  /** Framing, Host and target form; null: refused (answered and finished). */
  function admit(x: Exchange): Target | null {
    const target = checkRequest(x.req);
    if ('error' in target) {
      refuse(x, target.error, true);
      return null;
    }
    x.host = target.host;
    return target;
  }

  /** Host -> site; null: no site for this host (421). */
  function route(x: Exchange): SiteRoute | null {
    const site = x.state.routes.lookup(x.host);
    if (site === null) refuse(x, 'UNKNOWN_HOST', x.unreadBody);
    else x.route = site;
    return site;
  }

  /** An address of the site's upstream; null: none resolved yet (503). */
  function pick(x: Exchange, site: SiteRoute): Picked | null {
    const picked = site.upstream.pick();
    if (picked === null) refuse(x, 'UPSTREAM_NO_ADDRESS', x.unreadBody);
    else x.picked = picked;
    return picked;
  }

  /** Writes the catalogue answer for `code` where this exchange answers, then finishes it. */
  function refuse(x: Exchange, code: ErrorCode, close: boolean): void {
    const sent: ErrorAnswer =
      x.socket !== null
        ? sendSocketError(x.socket, code, x.requestId, x.state.hsts)
        : sendError(x.res!, code, x.requestId, { head: x.req.method === 'HEAD', hsts: x.state.hsts, close });
    finish(x, sent.status, sent.bytes, code, null);
  }

  /** The end of every exchange: the access log line, the metrics count, an event on failure. */
  function finish(x: Exchange, status: number, bytesSent: number, error: ErrorCode | null, cause: unknown): void {
    if (x.finished) return;
    x.finished = true;
    if (error !== null) failureEvent(x, error, cause);
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

  /**
   * Refusals of the request itself (400, 421, an announced 413) are the client's doing and
   * leave no event; a failure on the way to or from the upstream does (warn), a client gone
   * early too (debug), and a handler that threw (error, with the stack).
   */
  function failureEvent(x: Exchange, code: ErrorCode, cause: unknown): void {
    const req = x.req;
    if (code === 'INTERNAL') return requestFailed(x.requestId, req, cause);
    if (code !== 'CLIENT_CLOSED' && code !== 'UPSTREAM_NO_ADDRESS' && x.picked === null) return;
    const fields = {
      code,
      request_id: x.requestId,
      upstream: x.route?.upstream.label ?? null,
      address: x.picked?.address ?? null,
      host: x.host,
      method: req.method,
      path: req.url,
      reason: (cause as { code?: string } | null)?.code ?? (cause instanceof Error ? cause.message : null),
    };
    if (code === 'CLIENT_CLOSED') log.debug('client_closed', fields);
    else log.warn('upstream_error', fields);
  }

  /** HTTP/1.1 and h2: admit -> route -> (body limit) -> pick -> forward (proxy). */
  function exchange(x: Exchange, res: AnyResponse, expectsContinue: boolean): void {
    const { req, state } = x;
    if (state.stopping && !x.h2) (res as ServerResponse).shouldKeepAlive = false;
    const target = admit(x);
    if (target === null) return;
    const site = route(x);
    if (site === null) return;
    const limit = state.limits.max_body_size;
    if (limit !== null) {
      const length = req.headers['content-length'];
      if (length !== undefined && Number(length) > limit) return refuse(x, 'BODY_TOO_LARGE', true);
    }
    const picked = pick(x, site);
    if (picked === null) return;
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
      done: (outcome: ProxyOutcome) => finish(x, outcome.status, outcome.bytesSent, outcome.error, outcome.cause),
    });
  }

  /** HTTP/1.1 Upgrade: admit -> route -> pick -> forward (tunnel); refusals go on the raw socket. */
  function tunnel(x: Exchange, socket: Duplex, head: Buffer): void {
    const target = admit(x);
    if (target === null) return;
    const site = route(x);
    if (site === null) return;
    const picked = pick(x, site);
    if (picked === null) return;
    const req = x.req as IncomingMessage;
    openTunnel({
      client: socket,
      head,
      host: picked.ip,
      port: picked.port,
      method: req.method!,
      path: target.path,
      headers: forwardRequestHeaders(req.rawHeaders, { hostHeader: target.hostHeader, clientIp: x.clientIp, h2: false, upgrade: true }),
      connectTimeoutMs: x.state.limits.upstream_connect_timeout,
      idleTimeoutMs: x.state.limits.idle_timeout,
      requestId: x.requestId,
      hsts: x.state.hsts,
      // The upstream's own status line went through untouched; 101 is what a tunnel means.
      done: (error, cause, bytes) => finish(x, error === null ? 101 : ERRORS[error].status, bytes, error, cause),
    });
  }

  /**
   * The process never goes down for one request: answer 500 (or cut what has started) and
   * finish the exchange. `x` is null when not even the state could be read: no access log.
   */
  function failed(x: Exchange | null, req: AnyRequest, res: AnyResponse | null, socket: Duplex | null, err: unknown): void {
    // Thrown after the exchange was answered and counted: the event alone.
    if (x?.finished) return requestFailed(x.requestId, req, err);
    const requestId = x?.requestId ?? nextRequestId();
    const hsts = x?.state.hsts ?? null;
    let bytes = 0;
    try {
      if (socket !== null) bytes = sendSocketError(socket, 'INTERNAL', requestId, hsts).bytes;
      else if (!res!.headersSent) bytes = sendError(res!, 'INTERNAL', requestId, { head: req.method === 'HEAD', hsts, close: true }).bytes;
      else cutClient({ res: res!, h2: req.httpVersionMajor === 2 });
    } catch {
      (socket ?? res!).destroy();
    }
    if (x !== null) return finish(x, 500, bytes, 'INTERNAL', err);
    requestFailed(requestId, req, err);
    onRequest?.({ site: null, status: 500, proto: req.httpVersionMajor === 2 ? 'h2' : 'http/1.1', durationMs: 0, error: 'INTERNAL' });
  }

  function requestFailed(requestId: string, req: AnyRequest, err: unknown): void {
    log.error('request_failed', { code: 'REQUEST_FAILED', request_id: requestId, method: req.method, path: req.url, error: (err as Error)?.stack ?? String(err) });
  }

  function serve(req: AnyRequest, res: AnyResponse, expectsContinue: boolean): void {
    // node:http accepts an HTTP/0.9 request line ("GET /"); such a client would not
    // understand a status line, so the connection is closed (docs/behaviour.md, "Limits and bad input").
    if (req.httpVersionMajor === 0) {
      (req as IncomingMessage).socket.destroy();
      return;
    }
    let x: Exchange | null = null;
    try {
      x = begin(req, res, null);
      exchange(x, res, expectsContinue);
    } catch (err) {
      failed(x, req, res, null, err);
    }
  }

  return {
    request(req, res) {
      serve(req, res, false);
    },
    checkContinue(req, res) {
      serve(req, res, true);
    },
    upgrade(req, socket, head) {
      let x: Exchange | null = null;
      try {
        x = begin(req, null, socket);
        tunnel(x, socket, head);
      } catch (err) {
        failed(x, req, null, socket, err);
      }
    },
  };
}
