// The recording origin: a raw TCP server that keeps every byte a proxy sends it and reads
// them with a small, strict HTTP/1.1 parser of its own (CRLF only, no folding, token field
// names, one Content-Length of digits or exactly "chunked", never both). Each request it
// reads is answered with a fixed 200; anything it cannot read is recorded as an error and
// the connection is closed. It cannot be fooled the way a lenient server can, so what it
// counts is what the proxy really sent.

import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { OriginRequest, OriginSeen } from './expectations.ts';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
// Field value: anything but NUL, CR and LF (RFC 9110 5.5 lets recipients keep other controls).
const FIELD_VALUE = /^[^\x00\r\n]*$/;
const CHUNK_LINE = /^([0-9A-Fa-f]{1,16})(;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(=([!#$%&'*+\-.^_`|~0-9A-Za-z]+|"[^"\\\r\n]*"))?)*$/;
const MAX_HEAD = 64 * 1024;
export const ORIGIN_MARK = 'x-recording-origin';

class StrictParseError extends Error {}

type Conn = { socket: Socket; buf: Buffer; inRequest: boolean };

/** Reads field lines "name: value" strictly; returns [lower-case name, value][]. */
function parseFields(lines: string[]): [string, string][] {
  const fields: [string, string][] = [];
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) throw new StrictParseError(`folded line ${JSON.stringify(line)}`);
    const colon = line.indexOf(':');
    if (colon <= 0) throw new StrictParseError(`field line without a name and colon ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new StrictParseError(`bad field name ${JSON.stringify(name)}`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new StrictParseError(`bad field value ${JSON.stringify(value)}`);
    fields.push([name.toLowerCase(), value]);
  }
  return fields;
}

/** A head (request line + fields) without its final CRLFCRLF; bare CR or LF inside is an error. */
function parseHead(head: string) {
  const lines = head.split('\r\n');
  for (const line of lines) if (line.includes('\r') || line.includes('\n')) throw new StrictParseError(`bare CR or LF in ${JSON.stringify(line)}`);
  const m = REQUEST_LINE.exec(lines[0]!);
  if (!m) throw new StrictParseError(`bad request line ${JSON.stringify(lines[0])}`);
  const fields = parseFields(lines.slice(1));
  const all = (name: string) => fields.filter(([n]) => n === name).map(([, v]) => v);
  const cl = all('content-length');
  const te = all('transfer-encoding');
  const host = all('host');
  if (host.length > 1) throw new StrictParseError('more than one Host');
  if (cl.length && te.length) throw new StrictParseError('both Content-Length and Transfer-Encoding');
  if (cl.length > 1) throw new StrictParseError('more than one Content-Length');
  if (te.length > 1 || (te.length === 1 && te[0] !== 'chunked')) throw new StrictParseError(`Transfer-Encoding ${JSON.stringify(te.join(', '))} is not exactly "chunked"`);
  if (cl.length === 1 && !/^\d{1,15}$/.test(cl[0]!)) throw new StrictParseError(`bad Content-Length ${JSON.stringify(cl[0])}`);
  const connection = all('connection').join(',').toLowerCase();
  const keepAlive = m[3] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
  return {
    method: m[1]!,
    target: m[2]!,
    host: host[0],
    chunked: te.length === 1,
    length: cl.length === 1 ? Number(cl[0]) : 0,
    keepAlive,
  };
}

/**
 * How many bytes of `buf` (from `from`) a complete chunked body takes, with its decoded
 * length; null if more bytes are needed. Throws on anything malformed.
 */
function chunkedBody(buf: Buffer, from: number): { used: number; length: number } | null {
  let at = from;
  let length = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) {
      if (buf.length - at > 4096) throw new StrictParseError('chunk-size line too long');
      return null;
    }
    const line = buf.toString('latin1', at, eol);
    const m = CHUNK_LINE.exec(line);
    if (!m) throw new StrictParseError(`bad chunk-size line ${JSON.stringify(line.slice(0, 80))}`);
    const size = parseInt(m[1]!, 16);
    at = eol + 2;
    if (size === 0) {
      const end = buf.indexOf('\r\n\r\n', at - 2, 'latin1');
      if (end < 0) return null;
      const trailer = buf.toString('latin1', at, end);
      if (trailer.length > 0) {
        for (const l of trailer.split('\r\n')) if (l.includes('\r') || l.includes('\n')) throw new StrictParseError('bare CR or LF in trailer');
        parseFields(trailer.split('\r\n'));
      }
      return { used: end + 4 - from, length };
    }
    if (at + size + 2 > buf.length) return null;
    if (buf.toString('latin1', at + size, at + size + 2) !== '\r\n') throw new StrictParseError('chunk data not followed by CRLF');
    length += size;
    at += size + 2;
  }
}

export class RecordingOrigin {
  readonly #server: Server;
  readonly #conns = new Set<Conn>();
  #seen: OriginSeen = { started: 0, complete: 0, errors: [], requests: [] };
  #bytes = 0;

  constructor() {
    this.#server = createServer((socket) => this.#accept(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as AddressInfo).port;
  }

  /** What arrived since the last call; then every connection is dropped so the next case starts clean. */
  take(): OriginSeen & { bytes: number } {
    for (const conn of this.#conns) {
      // A request cut off in the middle is started, not complete: count it once here.
      conn.socket.destroy();
    }
    this.#conns.clear();
    const seen = { ...this.#seen, bytes: this.#bytes };
    this.#seen = { started: 0, complete: 0, errors: [], requests: [] };
    this.#bytes = 0;
    return seen;
  }

  async close(): Promise<void> {
    for (const conn of this.#conns) conn.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    const conn: Conn = { socket, buf: Buffer.alloc(0), inRequest: false };
    this.#conns.add(conn);
    socket.on('data', (data: Buffer) => {
      this.#bytes += data.length;
      conn.buf = Buffer.concat([conn.buf, data]);
      this.#consume(conn);
    });
    socket.on('error', () => {});
    socket.on('close', () => this.#conns.delete(conn));
  }

  #consume(conn: Conn): void {
    try {
      while (conn.buf.length > 0 && !conn.socket.destroyed) {
        const end = conn.buf.indexOf('\r\n\r\n', 0, 'latin1');
        if (end < 0) {
          if (conn.buf.length > MAX_HEAD) throw new StrictParseError('header section over 64 KiB');
          return;
        }
        const head = parseHead(conn.buf.toString('latin1', 0, end));
        if (!conn.inRequest) {
          conn.inRequest = true;
          this.#seen.started++;
        }
        let used: number;
        let bodyLength: number;
        if (head.chunked) {
          const body = chunkedBody(conn.buf, end + 4);
          if (!body) return;
          used = end + 4 + body.used;
          bodyLength = body.length;
        } else {
          if (conn.buf.length < end + 4 + head.length) return;
          used = end + 4 + head.length;
          bodyLength = head.length;
        }
        const request: OriginRequest = {
          method: head.method,
          target: head.target,
          host: head.host,
          bodyLength,
          head: conn.buf.toString('latin1', 0, end),
        };
        conn.buf = conn.buf.subarray(used);
        conn.inRequest = false;
        this.#seen.complete++;
        this.#seen.requests.push(request);
        const body = 'ok\n';
        conn.socket.write(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${ORIGIN_MARK}: ${this.#seen.complete}\r\n` +
            `${head.keepAlive ? '' : 'Connection: close\r\n'}\r\n${body}`,
        );
        if (!head.keepAlive) {
          conn.socket.end();
          return;
        }
      }
    } catch (err) {
      if (!(err instanceof StrictParseError)) throw err;
      this.#seen.errors.push(err.message);
      conn.socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      conn.socket.destroySoon();
      conn.buf = Buffer.alloc(0);
    }
  }
}
