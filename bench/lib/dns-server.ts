// A tiny authoritative DNS server on loopback UDP, for the `resolver` of nginx-as-deployed
// and opam-edge: one name answers A with one address; AAAA (and other types) get an empty
// NOERROR answer, any other name NXDOMAIN. TTL 15 s, like the seed's `valid=15s`. It runs in
// the bench process: the proxies ask it once per 15 s, which costs nothing measurable.

import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';

export type DnsServer = { port: number; queries: number; close(): Promise<void> };

const TYPE_A = 1;
const CLASS_IN = 1;

export async function startDnsServer(name: string, ipv4: string, host = '127.0.0.1'): Promise<DnsServer> {
  const wanted = name.toLowerCase().replace(/\.$/, '');
  const address = Buffer.from(ipv4.split('.').map(Number));
  const socket: Socket = createSocket('udp4');
  const server: DnsServer = {
    port: 0,
    queries: 0,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (query, peer) => {
    const answer = respond(query, wanted, address);
    if (answer) {
      server.queries++;
      socket.send(answer, peer.port, peer.address);
    }
  });
  // One bad datagram must not stop the server.
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  server.port = socket.address().port;
  return server;
}

/** Builds the answer to one query, or null for something that is not a single question. */
function respond(query: Buffer, wanted: string, address: Buffer): Buffer | null {
  if (query.length < 12 || (query[2]! & 0x80) !== 0 || query.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let offset = 12;
  while (offset < query.length) {
    const length = query[offset]!;
    if (length === 0) break;
    if (length > 63 || offset + 1 + length > query.length) return null;
    labels.push(query.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  if (offset + 5 > query.length) return null;
  const questionEnd = offset + 5;
  const type = query.readUInt16BE(offset + 1);
  const klass = query.readUInt16BE(offset + 3);
  const known = labels.join('.').toLowerCase() === wanted;
  const withAnswer = known && type === TYPE_A && klass === CLASS_IN;

  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  // QR, AA, RD copied from the query; RA; rcode 0 or 3 (NXDOMAIN).
  header[2] = 0x84 | (query[2]! & 0x01);
  header[3] = 0x80 | (known ? 0 : 3);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(withAnswer ? 1 : 0, 6);
  const question = query.subarray(12, questionEnd);
  if (!withAnswer) return Buffer.concat([header, question]);
  const record = Buffer.alloc(16);
  record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  record.writeUInt16BE(TYPE_A, 2);
  record.writeUInt16BE(CLASS_IN, 4);
  record.writeUInt32BE(15, 6);
  record.writeUInt16BE(4, 10);
  address.copy(record, 12);
  return Buffer.concat([header, question, record]);
}
