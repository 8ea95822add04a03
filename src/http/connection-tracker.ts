// The drain on stop: every open connection of the listeners is tracked so that a stop can
// close the idle ones at once, let busy ones finish their response, and destroy whatever is
// left when the grace period ends.

import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Tracks the open connections of the servers it is given (see the top of the file). */
export class ConnectionTracker {
  readonly #sockets = new Set<Socket>();

  track(server: NetServer, event: 'connection' | 'secureConnection' = 'connection'): void {
    server.on(event, (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('request', markOnFinish);
    // Only where the server already handles 'checkContinue': a listener of its own would
    // take those requests away from node's automatic 100 Continue and the 'request' event.
    if (server.listenerCount('checkContinue') > 0) server.on('checkContinue', markOnFinish);
  }

  get size(): number {
    return this.#sockets.size;
  }

  destroyAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  /**
   * Ends the HTTP/1.1 connections that carry no request or response (idle keep-alive):
   * FIN after whatever is still queued, so a slow reader still gets the end of its last
   * response. node:http's closeIdleConnections() destroys them instead, and to it a
   * connection whose last response is written out but not yet read is idle: the kernel
   * then drops (or resets) what the client has not read yet. Idle means: no response in
   * flight and not one byte read since the last response finished (a half-sent request
   * is not idle; it is cut when the grace period ends). h2 sessions are left to their GOAWAY.
   */
  closeIdle(): void {
    for (const socket of this.#sockets) {
      if ((socket as TLSSocket).alpnProtocol === 'h2' || socket.writableEnded) continue;
      const s = socket as TrackedSocket;
      if (s._httpMessage) continue;
      if (socket.bytesRead === (s[READ_AT_LAST_RESPONSE] ?? 0)) socket.end();
    }
  }

  /** Resolves when every tracked connection has closed. */
  async idle(deadline: number): Promise<boolean> {
    while (this.#sockets.size > 0) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }
}

const READ_AT_LAST_RESPONSE = Symbol('readAtLastResponse');
/** node:http keeps the response in flight on its socket as `_httpMessage`. */
type TrackedSocket = Socket & { _httpMessage?: ServerResponse | null; [READ_AT_LAST_RESPONSE]?: number };

/** Per HTTP/1 request: remember how much the connection had read when its response finished. */
function markOnFinish(req: IncomingMessage, res: ServerResponse): void {
  if (req.httpVersionMajor !== 2) res.on('finish', onResponseFinish);
}

function onResponseFinish(this: ServerResponse): void {
  // The request may have let go of its socket already (the connection closed).
  const socket = this.req?.socket as TrackedSocket | null | undefined;
  if (socket) socket[READ_AT_LAST_RESPONSE] = socket.bytesRead;
}
