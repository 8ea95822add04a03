// A recording origin for proxy tests: a real node:http server on any loopback address that
// counts requests and open connections, and answers with a handler the test chooses
// (by default a JSON echo of what it received).

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Seen = { method: string; url: string; headers: IncomingMessage['headers']; rawHeaders: string[]; remote: string };

export type Origin = {
  host: string;
  port: number;
  server: Server;
  /** Every request that reached the origin, in order. */
  seen: Seen[];
  /** Connections open right now. */
  readonly open: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections that closed after a request of theirs had started but not finished. */
  readonly cutMidRequest: number;
  /** Requests whose body arrived complete (the handler must read it, as `echo` does). */
  readonly completed: number;
  close(): Promise<void>;
};

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export const echo: Handler = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, bodyLength: Buffer.concat(chunks).length });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
};

export async function startOrigin(options: { host?: string; port?: number; handler?: Handler } = {}): Promise<Origin> {
  const host = options.host ?? '127.0.0.1';
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;
  let cutMidRequest = 0;
  let completed = 0;
  const handler = options.handler ?? echo;
  const server = createServer({ keepAliveTimeout: 10_000 }, (req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, remote: req.socket.remoteAddress! });
    req.once('end', () => completed++);
    res.on('close', () => {
      if (!res.writableFinished) cutMidRequest++;
    });
    handler(req, res);
  });
  server.on('connection', (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host,
    port,
    server,
    seen,
    get open() {
      return sockets.size;
    },
    get accepted() {
      return accepted;
    },
    get cutMidRequest() {
      return cutMidRequest;
    },
    get completed() {
      return completed;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
