// Writes hostile bytes on a fresh connection (TCP, or TLS when asked) and reports what the
// server did within a short wait: answered (with the first status), closed, or still
// waiting (then the client leaves). Never throws: the server's side is what is judged.

import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';

export type Poke = { outcome: 'answered' | 'tls-alert' | 'closed' | 'waiting' | 'handshake-failed'; status: number | null; bytes: number };

export function poke(port: number, data: Buffer, options: { tls?: boolean; servername?: string; waitMs?: number } = {}): Promise<Poke> {
  return new Promise((resolve) => {
    const socket: Socket = options.tls
      ? tlsConnect({ host: '127.0.0.1', port, servername: options.servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let connected = false;
    let done = false;
    const finish = (outcome: Poke['outcome']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1', 0, 16);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const got = chunks.reduce((n, c) => n + c.length, 0);
      // A TLS alert record (content type 21) is the handshake's way of saying no.
      const answer = !options.tls && chunks[0]?.[0] === 0x15 ? 'tls-alert' : 'answered';
      resolve({ outcome: got > 0 && outcome !== 'handshake-failed' ? answer : outcome, status: m ? Number(m[1]) : null, bytes: got });
    };
    const timer = setTimeout(() => finish('waiting'), options.waitMs ?? 400);
    socket.once(options.tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      socket.write(data);
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => finish(connected || !options.tls ? 'closed' : 'handshake-failed'));
    socket.on('close', () => finish(connected || !options.tls ? 'closed' : 'handshake-failed'));
  });
}

/** The ClientHello record a node:tls client sends for `servername` with these ALPN protocols. */
export function captureClientHello(servername: string | undefined, alpn: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    import('node:net').then(({ createServer }) => {
      const server = createServer((socket) => {
        let buf = Buffer.alloc(0);
        socket.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
            socket.destroy();
            server.close();
            resolve(buf.subarray(0, 5 + buf.readUInt16BE(3)));
          }
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        const client = tlsConnect({ host: '127.0.0.1', port, servername, ALPNProtocols: alpn, rejectUnauthorized: false });
        client.on('error', () => {});
      });
      server.on('error', reject);
    }, reject);
  });
}
