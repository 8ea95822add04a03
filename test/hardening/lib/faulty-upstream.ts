// An upstream that misbehaves on purpose, chosen by the request path, over raw TCP so the
// bytes are exactly what the test wants:
//   /hang        reads the request, never answers
//   /reset       a 200 head announcing 1 MiB, 128 KiB of it, then a TCP reset
//   /malformed   a response head with a field line that has no colon
//   anything     200 "ok", keep-alive
// It records every connection with the paths it carried and whether it has closed, so a
// test can tell that a connection was discarded rather than reused.

import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

export type Conn = { id: number; paths: string[]; closed: boolean };

export type FaultyUpstream = { port: number; conns: Conn[]; close(): Promise<void> };

export async function startFaultyUpstream(host = '127.0.0.1'): Promise<FaultyUpstream> {
  const conns: Conn[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    const conn: Conn = { id: conns.length, paths: [], closed: false };
    conns.push(conn);
    sockets.add(socket);
    socket.on('close', () => {
      conn.closed = true;
      sockets.delete(socket);
    });
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const path = head.split(' ')[1] ?? '/';
        conn.paths.push(path);
        if (path === '/hang') return;
        if (path === '/reset') {
          socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n');
          socket.write(Buffer.alloc(128 * 1024, 0x62), () => setTimeout(() => socket.resetAndDestroy(), 50));
          return;
        }
        if (path === '/malformed') {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nthis line has no colon\r\n\r\nhello');
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    conns,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
