// tls.Server creates each connection's TLSSocket from its field `_sharedCreds`, in its one
// 'connection' listener; src/tls/handshake.ts swaps that field around the listener's call
// to serve the context the ClientHello asked for.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSecureContext, createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { routeHandshakes } from '../../src/tls/handshake.ts';
import { makeCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { serialFor } from '../helpers/tls-client.ts';
import { rmSync } from 'node:fs';

const RELIES = 'src/tls/handshake.ts relies on it';

test('node:tls internal `tls.Server._sharedCreds` still decides the certificate a connection gets', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = await makeCert({ dir, names: ['first.test'] });
  const second = await makeCert({ dir, names: ['second.test'] });
  const server = createServer({ cert: first.cert, key: first.key });
  assert.ok('_sharedCreds' in server, `Node internal \`tls.Server._sharedCreds\` is gone (Node ${process.version}): ${RELIES}`);
  assert.equal(server.listeners('connection').length, 1, `Node internal: tls.Server no longer has exactly one 'connection' listener: ${RELIES}`);
  const contexts = { 'second.test': createSecureContext({ cert: second.cert, key: second.key }) };
  routeHandshakes(server, { select: (name) => contexts[name as keyof typeof contexts] ?? createSecureContext({ cert: first.cert, key: first.key }), timeoutMs: () => 5000 });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const options = { rejectUnauthorized: false };
  assert.equal(await serialFor(port, 'second.test', options), second.serial, `Node internal \`tls.Server._sharedCreds\` no longer picks the connection's certificate: ${RELIES}`);
  assert.equal(await serialFor(port, 'first.test', options), first.serial);
});
