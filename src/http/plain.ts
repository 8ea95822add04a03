// The http listeners (port 80): ACME HTTP-01 challenges, then a 301 to https for
// everything else. The seed's nginx did this with three locations:
//   location = /.well-known/acme-challenge/  { return 404; }
//   location ^~ /.well-known/acme-challenge/ { root /var/www/html; try_files $uri @proxy; }
//   location /                               { return 301 https://$host$request_uri; }
// Here the lookup order is: this node's own tokens, the webroot, then each peer.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERRORS } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { ChallengeStore } from '../acme/challenges.ts';
import { isValidToken } from '../acme/challenges.ts';
import { PEER_HOP_HEADER } from '../acme/peers.ts';
import { readWebrootToken } from '../acme/webroot.ts';
import type { PeerForwarder } from '../acme/peers.ts';
import type { AccessLog } from '../log.ts';
import { checkRequest } from './request-checks.ts';
import { clientAddress, requestId as nextRequestId } from './headers.ts';
import { sendError as writeError } from './error-response.ts';

const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

export type ChallengeSource = 'memory' | 'webroot' | 'peer' | 'miss';

export type PlainDeps = {
  challenges: ChallengeStore;
  peers: PeerForwarder;
  /** Read per request: swapped whole on reload. */
  settings: () => { readonly webroot: string | null; readonly stopping: boolean };
  accessLog: () => AccessLog;
  /** Called once per challenge request with where the answer came from (metrics). */
  onChallenge?: (source: ChallengeSource) => void;
};

export function createPlainHandler(deps: PlainDeps) {
  return function handlePlain(req: IncomingMessage, res: ServerResponse): void {
    const startedAt = Date.now();
    // Port 80 never reads a request body: a request that has one is answered and the
    // connection closed, so that its body is never parsed as the next request.
    if (deps.settings().stopping || req.headers['transfer-encoding'] !== undefined || hasBody(req.headers['content-length'])) {
      res.shouldKeepAlive = false;
    }
    const target = checkRequest(req);
    if ('error' in target) return sendError(req, res, target.error, startedAt, deps);
    const method = req.method;
    if ((method === 'GET' || method === 'HEAD') && target.path.startsWith(CHALLENGE_PREFIX)) {
      const query = target.path.indexOf('?');
      const token = target.path.slice(CHALLENGE_PREFIX.length, query < 0 ? undefined : query);
      // "/.well-known/acme-challenge/" itself, and anything that is not a token: 404 at
      // once, before any disk or peer is touched ("..", "%2e%2e%2f", "a/b", 300 chars).
      if (!isValidToken(token)) return sendError(req, res, 'CHALLENGE_NOT_FOUND', startedAt, deps);
      answerChallenge(req, res, token, target.host, startedAt, deps).catch(() => {
        if (!res.headersSent) sendError(req, res, 'CHALLENGE_NOT_FOUND', startedAt, deps);
      });
      return;
    }
    const location = `https://${target.host}${target.path}`;
    const body = `<html>\r\n<head><title>301 Moved Permanently</title></head>\r\n<body>\r\n<center><h1>301 Moved Permanently</h1></center>\r\n</body>\r\n</html>\r\n`;
    res.writeHead(301, {
      location,
      'content-type': 'text/html',
      'content-length': Buffer.byteLength(body),
    });
    res.end(method === 'HEAD' ? undefined : body);
    log(req, res, 301, method === 'HEAD' ? 0 : body.length, target.host, startedAt, deps);
  };
}

async function answerChallenge(
  req: IncomingMessage,
  res: ServerResponse,
  token: string,
  host: string,
  startedAt: number,
  deps: PlainDeps,
): Promise<void> {
  let source: ChallengeSource = 'memory';
  let answer: string | null = deps.challenges.get(token) ?? null;
  if (answer === null) {
    source = 'webroot';
    const webroot = deps.settings().webroot;
    answer = webroot === null ? null : await readWebrootToken(webroot, token);
  }
  // A request that already came from a peer is answered from this node only: no loops.
  if (answer === null && req.headers[PEER_HOP_HEADER] === undefined) {
    source = 'peer';
    answer = await deps.peers.ask(token, host);
  }
  if (answer === null) source = 'miss';
  deps.onChallenge?.(source);
  if (res.destroyed) return;
  if (answer === null) return sendError(req, res, 'CHALLENGE_NOT_FOUND', startedAt, deps);
  const length = Buffer.byteLength(answer);
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': length });
  res.end(req.method === 'HEAD' ? undefined : answer);
  log(req, res, 200, req.method === 'HEAD' ? 0 : length, host, startedAt, deps);
}

function hasBody(contentLength: string | undefined): boolean {
  return contentLength !== undefined && contentLength !== '0';
}

function sendError(req: IncomingMessage, res: ServerResponse, code: ErrorCode, startedAt: number, deps: PlainDeps): void {
  if (code === 'HTTP_09') {
    log(req, res, ERRORS.HTTP_09.status, 0, '', startedAt, deps);
    res.destroy();
    return;
  }
  const id = nextRequestId();
  // After a framing or Host error the connection's next bytes cannot be trusted.
  const sent = writeError(res, code, id, { head: req.method === 'HEAD', hsts: null, close: code !== 'CHALLENGE_NOT_FOUND' });
  log(req, res, sent.status, sent.bytes, '', startedAt, deps, id);
}

function log(req: IncomingMessage, _res: ServerResponse, status: number, bytes: number, host: string, startedAt: number, deps: PlainDeps, requestId: string | null = null): void {
  const accessLog = deps.accessLog();
  if (!accessLog.enabled) return;
  accessLog.write({
    remoteAddr: clientAddress(req.socket.remoteAddress),
    method: req.method ?? '-',
    url: req.url ?? '-',
    httpVersion: req.httpVersion,
    status,
    bytesSent: bytes,
    referer: req.headers.referer,
    userAgent: req.headers['user-agent'],
    host,
    upstreamAddr: null,
    startedAt,
    requestId,
  });
}
