// node:http keeps the response in flight on its socket as `socket._httpMessage`; the
// listeners read it to answer a bad request without corrupting a response under way, and
// to tell idle keep-alive connections from busy ones (src/http/connection-tracker.ts, src/http/client-errors.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { request } from 'undici';

const RELIES = 'src/http/connection-tracker.ts and src/http/client-errors.ts rely on it';

test('node:http internal `socket._httpMessage` is the response in flight, null once it is done', async (t) => {
  let during: unknown;
  let socket: (Socket & { _httpMessage?: ServerResponse | null }) | undefined;
  const server = createServer((req, res) => {
    socket = req.socket;
    during = socket._httpMessage;
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const res = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  await res.body.text();
  assert.ok(socket && '_httpMessage' in socket, `Node internal \`socket._httpMessage\` is gone (Node ${process.version}): ${RELIES}`);
  assert.equal(typeof (during as ServerResponse | undefined)?.writeHead, 'function', `Node internal \`socket._httpMessage\` no longer holds the response in flight: ${RELIES}`);
  assert.equal(socket._httpMessage, null, `Node internal \`socket._httpMessage\` is not cleared after the response: ${RELIES}`);
  server.closeAllConnections();
});
