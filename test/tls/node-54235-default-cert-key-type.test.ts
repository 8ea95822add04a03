// nodejs/node#54235: with SNICallback, a default RSA certificate would answer the ECDSA
// clients of an ECDSA-only name. The store's contexts, chosen per ClientHello
// (tls/handshake.ts), do not mix; this pins that.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { CertStore } from '../../src/tls/cert-store.ts';
import { makeCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { serveStore } from '../helpers/store-server.ts';
import { serialFor } from '../helpers/tls-client.ts';

test('nodejs/node#54235: the default certificate does not leak into another name of another key type', async (t) => {
  const dir = tempDir('opam-edge-54235-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fallback = await makeCert({ names: ['default.test'], dir, stem: 'default', keyType: 'rsa' });
  const ecOnly = await makeCert({ names: ['ec.test'], dir, stem: 'ec', keyType: 'ec' });
  const s = new CertStore({ unknownSni: 'default' });
  s.setSource('file', 'file', [fallback, ecOnly].map((c) => ({ cert: c.cert, key: c.key, origin: c.certPath })));
  const port = await serveStore(t, s);
  assert.equal(await serialFor(port, 'ec.test'), ecOnly.serial);
  assert.equal(await serialFor(port, 'ec.test', { sigalgs: 'ECDSA+SHA256:rsa_pss_rsae_sha256' }), ecOnly.serial);
  await assert.rejects(serialFor(port, 'ec.test', { sigalgs: 'rsa_pss_rsae_sha256' }), 'no RSA certificate for ec.test');
});
