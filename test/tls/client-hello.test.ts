import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { INCOMPLETE, readServerName } from '../../src/tls/client-hello.ts';

/** The first flight of a real node:tls client, captured by a plain TCP server. */
async function captureHello(servername: string | undefined): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const captured = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      let data = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        // Record header + declared length: the whole first record has arrived.
        if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
          socket.destroy();
          resolve(data);
        }
      });
    });
  });
  const client = connect({ port, host: '127.0.0.1', ...(servername === undefined ? {} : { servername }) });
  client.on('error', () => {});
  const hello = await captured;
  client.destroy();
  server.close();
  return hello;
}

/** Re-frames one record's handshake bytes into two records, split at `at`. */
function splitRecord(record: Buffer, at: number): Buffer {
  const body = record.subarray(5);
  const frame = (part: Buffer) => Buffer.concat([Buffer.from([22, record[1]!, record[2]!, part.length >> 8, part.length & 0xff]), part]);
  return Buffer.concat([frame(body.subarray(0, at)), frame(body.subarray(at))]);
}

test('the server name of a real ClientHello, lower-cased and without the trailing dot', async () => {
  const hello = await captureHello('Opam.OCaml.org.');
  assert.equal(readServerName(hello), 'opam.ocaml.org');
});

test('a ClientHello without SNI has no name; an IP address is never sent as one', async () => {
  assert.equal(readServerName(await captureHello(undefined)), null);
});

test('every prefix of a ClientHello is INCOMPLETE, the whole of it is not', async () => {
  const hello = await captureHello('a.example.org');
  for (let n = 0; n < hello.length; n += 7) assert.equal(readServerName(hello.subarray(0, n)), INCOMPLETE, `prefix ${n}`);
  assert.equal(readServerName(hello), 'a.example.org');
});

test('a ClientHello split over two TLS records is reassembled', async () => {
  const hello = await captureHello('split.example.org');
  for (const at of [2, 40, 100, hello.length - 10]) {
    const twoRecords = splitRecord(hello, at);
    assert.equal(readServerName(twoRecords), 'split.example.org', `split at ${at}`);
    assert.equal(readServerName(twoRecords.subarray(0, twoRecords.length - 1)), INCOMPLETE);
  }
});

test('bytes that are not a ClientHello give no name and never throw', () => {
  assert.equal(readServerName(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), null);
  assert.equal(readServerName(Buffer.from([22, 3, 1, 0, 0])), null, 'empty record');
  assert.equal(readServerName(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])), null, 'a ServerHello');
  // Declared lengths past the data, at every level.
  const lying = Buffer.from([22, 3, 1, 0, 9, 1, 0, 0, 5, 3, 3, 0xff, 0xff, 0xff]);
  assert.doesNotThrow(() => readServerName(lying));
  for (let i = 0; i < 2000; i++) {
    const junk = randomBytes(1 + (i % 300));
    if (i % 2 === 0) junk[0] = 22;
    assert.doesNotThrow(() => readServerName(junk));
  }
});

test('a name with bytes no host name has is no name', async () => {
  const hello = Buffer.from(await captureHello('abc.example.org'));
  const at = hello.indexOf('abc.example.org');
  hello[at] = 0x2f; // "/"
  assert.equal(readServerName(hello), null);
});
