// acme-client's Client keeps its HttpClient in the undocumented field `http`; the ACME
// transport replaces its request() and raises maxBadNonceRetries (src/acme/transport.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import acme from 'acme-client';
import { attachTransport } from '../../src/acme/transport.ts';
import { assertPinned } from './pinned.ts';

const RELIES = 'src/acme/transport.ts relies on it';

test('acme-client is pinned exactly (its internal `client.http` is used)', () => {
  assertPinned('acme-client', `the internal client.http: ${RELIES}`);
});

test('acme-client internal `client.http` (request, maxBadNonceRetries) still routes every request', async () => {
  const accountKey = await acme.crypto.createPrivateEcdsaKey();
  const client = new acme.Client({ directoryUrl: 'https://acme.invalid/directory', accountKey });
  const http = (client as unknown as { http?: Record<string, unknown> }).http;
  assert.ok(http && typeof http === 'object', `acme-client internal \`client.http\` is gone: ${RELIES}`);
  assert.equal(typeof http.request, 'function', `acme-client internal \`client.http.request\` is gone: ${RELIES}`);
  assert.equal(typeof http.maxBadNonceRetries, 'number', `acme-client internal \`client.http.maxBadNonceRetries\` is gone: ${RELIES}`);

  const sent: string[] = [];
  attachTransport(client, async (url, method) => {
    sent.push(`${method.toUpperCase()} ${url}`);
    return { status: 200, headers: { 'content-type': 'application/json' }, data: { newNonce: 'https://acme.invalid/nonce', meta: { termsOfService: 'https://acme.invalid/tos' } } };
  });
  assert.equal(await client.getTermsOfServiceUrl(), 'https://acme.invalid/tos');
  assert.deepEqual(sent, ['GET https://acme.invalid/directory'], `acme-client no longer sends through \`client.http.request\`: ${RELIES}`);
  assert.equal(http.maxBadNonceRetries, 20);
});
