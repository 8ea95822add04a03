// A bare TLS server whose contexts come from a CertStore, picked per ClientHello as the https
// listeners do (tls/handshake.ts); it answers every connection with a fixed HTTP 200 "ok".

import type { TestContext } from 'node:test';
import { createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { CertStore } from '../../src/tls/cert-store.ts';
import { routeHandshakes } from '../../src/tls/handshake.ts';

export async function serveStore(t: TestContext, store: CertStore): Promise<number> {
  const server = createServer({ ...store.contextOptions }, (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  routeHandshakes(server, { select: (name) => store.select(name), timeoutMs: () => 5000 });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}
