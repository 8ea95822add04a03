// TLS client helpers for tests: a handshake that reports what the server presented
// (serial, key type, protocol, ALPN, resumption) or how it failed, and a tiny HTTP/1.1
// exchange over an open TLS socket.

import { connect } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';

export type Handshake = {
  socket: TLSSocket;
  /** '' when the server sent no certificate (a resumed session). */
  serial: string;
  keyType: string;
  subject: string;
  protocol: string | null;
  alpn: string | false | null;
  reused: boolean;
  group: string | null;
  /** The session to resume later: TLS 1.2 has it at once, TLS 1.3 once a ticket came. */
  session: () => Promise<Buffer>;
};

/** Connects and completes a handshake; rejects with the client's error when it fails. */
export function handshake(port: number, options: ConnectionOptions = {}, host = '127.0.0.1'): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = connect({ host, port, rejectUnauthorized: false, ...options });
    socket.on('session', (s) => (session = s));
    socket.once('secureConnect', () => {
      socket.removeListener('error', reject);
      socket.on('error', () => {});
      // A resumed TLS 1.2 session may not carry the certificate again.
      const cert = socket.getPeerX509Certificate();
      const info = socket.getEphemeralKeyInfo() as { name?: string } | null;
      resolve({
        socket,
        serial: cert?.serialNumber.toUpperCase() ?? '',
        keyType: cert?.publicKey.asymmetricKeyType ?? '',
        subject: cert?.subject.trim() ?? '',
        protocol: socket.getProtocol(),
        alpn: socket.alpnProtocol ?? null,
        reused: socket.isSessionReused(),
        group: info?.name ?? null,
        session: () =>
          session
            ? Promise.resolve(session)
            : socket.getProtocol() === 'TLSv1.3'
              ? new Promise<Buffer>((r) => socket.once('session', r))
              : Promise.resolve(socket.getSession()!),
      });
    });
    socket.once('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
  });
}

/** Handshake, read the certificate, close: the serial a new connection gets. */
export async function serialFor(port: number, servername: string | undefined, options: ConnectionOptions = {}): Promise<string> {
  const h = await handshake(port, { ...(servername === undefined ? {} : { servername }), ...options });
  h.socket.destroy();
  return h.serial;
}

/**
 * Sends one HTTP/1.1 request on an open TLS socket and resolves with the status and body
 * (Content-Length responses only, which is what the test servers send).
 */
export function exchange(socket: TLSSocket, path = '/', host = 'localhost'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const onData = (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(data.slice(0, end));
      const want = end + 4 + (length ? Number(length[1]) : 0);
      if (data.length < want) return;
      cleanup();
      resolve({ status: Number(data.slice(9, 12)), body: data.slice(end + 4, want) });
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`connection closed before the response (${JSON.stringify(data.slice(0, 80))})`));
    };
    const cleanup = () => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}
