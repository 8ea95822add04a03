// The admin listener (config `admin: "127.0.0.1:9145"`): a small table of routes, each a
// path (exact, or a prefix whose rest is the route's parameter) and a handler per method.
// Unknown path: 404; known path, other method: 405 with Allow. Reads are open, like nginx's
// stub_status (bind it to loopback or a private address); writes pass admin-auth.ts first.
//   GET /healthz      200 for ok and degraded, 503 for failing, the state and reasons on one
//                     line (the HEALTHCHECK's probe); ?strict: 503 unless ok
//   GET /metrics      Prometheus text format
//   GET /status       the node as one JSON document (status.ts)
//   GET /             the same, as an HTML page for a person (admin-page.ts)
//   POST /renew/NAME  the renewal loop orders NAME now

import type { IncomingMessage, ServerResponse } from 'node:http';
import { isHostName, normalizeHostName } from '../host-name.ts';
import type { EventLog } from '../log.ts';
import { CONTENT_TYPE } from './metrics.ts';
import type { StatusDocument } from './status.ts';
import { renderStatusPage } from './admin-page.ts';
import { refuseWrite } from './admin-auth.ts';
import type { AdminAccess } from './admin-auth.ts';
import { healthLine } from './health.ts';
import type { Health } from './health.ts';

type AdminHandler = (req: IncomingMessage, res: ServerResponse, param: string) => void | Promise<void>;

export type AdminRoute = {
  /** "/healthz" (exact) or "/renew/" with `prefix: true` (the rest is `param`). */
  path: string;
  prefix?: boolean;
  methods: Readonly<Partial<Record<'GET' | 'HEAD' | 'POST', AdminHandler>>>;
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

function sendText(res: ServerResponse, status: number, contentType: string, text: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/**
 * The request handler of the admin servers; `routes` and `access` are read per request
 * (swapped on reload). Without `access` every write is refused.
 */
export function createAdminHandler(routes: () => readonly AdminRoute[], log: EventLog, access: () => AdminAccess = () => ({ token: null, writes: null })) {
  return function handleAdmin(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    let route: AdminRoute | undefined;
    let param = '';
    for (const r of routes()) {
      if (r.prefix ? path.startsWith(r.path) && path.length > r.path.length : path === r.path) {
        route = r;
        param = r.prefix ? path.slice(r.path.length) : '';
        break;
      }
    }
    if (!route) return sendJson(res, 404, { error: 'not found' });
    const handler = route.methods[req.method as keyof AdminRoute['methods']];
    if (!handler) return sendJson(res, 405, { error: 'method not allowed' }, { allow: Object.keys(route.methods).join(', ') });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const refusal = refuseWrite(req, access());
      if (refusal) {
        log.warn('admin_write_refused', { path, status: refusal.status, reason: refusal.error, remote: req.socket.remoteAddress ?? null });
        return sendJson(res, refusal.status, { error: refusal.error }, refusal.headers);
      }
    }
    // Request bodies are not used by any route; reading them lets keep-alive go on.
    req.resume();
    Promise.resolve()
      .then(() => handler(req, res, param))
      .catch((err) => {
        log.error('admin_error', { path, reason: (err as Error)?.message ?? String(err) });
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.destroy();
      });
  };
}

/** POST /renew/NAME: the renewal loop orders NAME now. */
export function renewRoute(renewNow: (name: string) => { name: string; at: string; in_progress: boolean } | null): AdminRoute {
  return {
    path: '/renew/',
    prefix: true,
    methods: {
      POST: (_req, res, param) => {
        const name = normalizeHostName(param);
        const scheduled = isHostName(name) ? renewNow(name) : null;
        if (!scheduled) return sendJson(res, 404, { error: `no certificate is managed for "${param}"` });
        sendJson(res, 202, { accepted: true, ...scheduled });
      },
    },
  };
}

/**
 * GET|HEAD /healthz: 200 unless failing (503), the state and why on one line (Docker keeps
 * the first line); `?strict` (or `strict=1`): 503 unless ok.
 */
export function healthRoute(health: () => Health): AdminRoute {
  const answer: AdminHandler = (req, res) => {
    const found = health();
    const ok = found.state === 'ok' || (found.state === 'degraded' && !strict(req.url ?? ''));
    sendText(res, ok ? 200 : 503, 'text/plain; charset=utf-8', healthLine(found));
  };
  return { path: '/healthz', methods: { GET: answer, HEAD: answer } };
}

/** GET|HEAD /metrics; `text` resolves null when metrics are not recorded (admin was off at start). */
export function metricsRoute(text: () => Promise<string | null>): AdminRoute {
  const answer: AdminHandler = async (_req, res) => {
    const body = await text();
    if (body === null) {
      sendText(res, 503, 'text/plain; charset=utf-8', 'metrics are recorded only when `admin` is set at start: restart opam-edge to record them\n');
    } else {
      sendText(res, 200, CONTENT_TYPE, body);
    }
  };
  return { path: '/metrics', methods: { GET: answer, HEAD: answer } };
}

/** GET|HEAD /status (JSON) and / (the same as an HTML page). */
export function statusRoutes(status: () => Promise<StatusDocument>): AdminRoute[] {
  const json: AdminHandler = async (_req, res) => sendJson(res, 200, await status());
  const page: AdminHandler = async (_req, res) => sendText(res, 200, 'text/html; charset=utf-8', renderStatusPage(await status()));
  return [
    { path: '/status', methods: { GET: json, HEAD: json } },
    { path: '/', methods: { GET: page, HEAD: page } },
  ];
}

function strict(url: string): boolean {
  const query = url.indexOf('?');
  if (query < 0) return false;
  const value = new URLSearchParams(url.slice(query + 1)).get('strict');
  return value !== null && value !== '0' && value !== 'false';
}
