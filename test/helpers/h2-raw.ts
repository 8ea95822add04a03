// A raw HTTP/2 client for tests: one request whose header fields are encoded by hand (HPACK
// literals without indexing, no Huffman), so that bytes node:http2's own client refuses to
// send (CR, LF, NUL, upper case, raw UTF-8) reach the server exactly as given. It reports
// what came back on the stream: a HEADERS frame (with its :status) or an RST_STREAM.

import { connect } from 'node:tls';

export type RawField = [name: string | Buffer, value: string | Buffer];

export type RawOutcome =
  | { kind: 'headers'; status: number | null }
  | { kind: 'reset'; code: number }
  | { kind: 'goaway'; code: number }
  | { kind: 'closed' };

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME = { HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
/** HPACK static table (RFC 7541 Appendix A): the :status entries. */
const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** RFC 7541 5.1 integer with a 7-bit prefix (the string length, Huffman bit clear). */
function length7(n: number): Buffer {
  if (n < 127) return Buffer.from([n]);
  const out = [127];
  n -= 127;
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** Literal header field without indexing, new name (RFC 7541 6.2.2), raw octets. */
export function hpackLiteral(name: string | Buffer, value: string | Buffer): Buffer {
  const n = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  return Buffer.concat([Buffer.from([0]), length7(n.length), n, length7(v.length), v]);
}

/** The :status of a response header block as nghttp2 writes it: a static index or a literal with indexed name. */
function statusOf(block: Buffer): number | null {
  let p = 0;
  while (p < block.length && (block[p]! & 0xe0) === 0x20) p++; // dynamic table size updates
  const b = block[p];
  if (b === undefined) return null;
  if (b & 0x80) return STATIC_STATUS[b & 0x7f] ?? null;
  const indexedName = (b & 0xc0) === 0x40 ? b & 0x3f : b & 0x0f;
  if (indexedName < 8 || indexedName > 14) return null;
  const len = block[p + 1]!;
  if (len & 0x80) return null; // Huffman: not needed for three digits
  return Number(block.toString('latin1', p + 2, p + 2 + len));
}

/**
 * Sends one request (stream 1, END_STREAM) with `fields` in this order, pseudo-headers
 * included, and resolves with the first answer on that stream.
 */
export function h2RawRequest(port: number, servername: string, fields: RawField[], timeoutMs = 5000): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    let data = Buffer.alloc(0);
    let settled = false;
    const done = (outcome: RawOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      settled = true;
      socket.destroy();
      reject(new Error('no answer on stream 1'));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') return done({ kind: 'closed' });
      const block = Buffer.concat(fields.map(([n, v]) => hpackLiteral(n, v)));
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0)), frame(FRAME.HEADERS, END_STREAM | END_HEADERS, 1, block)]));
    });
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      while (data.length >= 9) {
        const length = data.readUIntBE(0, 3);
        if (data.length < 9 + length) break;
        const [type, flags, stream] = [data[3]!, data[4]!, data.readUInt32BE(5) & 0x7fffffff];
        const payload = data.subarray(9, 9 + length);
        data = data.subarray(9 + length);
        if (type === FRAME.SETTINGS && !(flags & ACK)) socket.write(frame(FRAME.SETTINGS, ACK, 0, Buffer.alloc(0)));
        else if (type === FRAME.HEADERS && stream === 1) done({ kind: 'headers', status: statusOf(payload) });
        else if (type === FRAME.RST_STREAM && stream === 1) done({ kind: 'reset', code: payload.readUInt32BE(0) });
        else if (type === FRAME.GOAWAY) done({ kind: 'goaway', code: payload.readUInt32BE(4) });
      }
    });
    socket.on('error', () => done({ kind: 'closed' }));
    socket.on('close', () => done({ kind: 'closed' }));
  });
}
