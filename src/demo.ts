// The local demo behind `npm start` with no config: a small origin on loopback, and in
// front of it http on :8080 and https on :8443 with the certificates in certs-dev/.

import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { validateConfig } from './config.ts';
import type { Config } from './config.ts';
import type { EventLog } from './log.ts';

const certsDev = fileURLToPath(new URL('../certs-dev/', import.meta.url));

/**
 * The demo needs certs-dev/ beside src/ or dist/: a source checkout has it, the npm package
 * and the image do not (no development keys ship). Without it there is no demo to run.
 */
export function demoAvailable(): boolean {
  return existsSync(`${certsDev}localhost.cert.pem`);
}

/** The demo origin: answers every path with what it saw, like a tiny opam_live. */
export function createDemoOrigin() {
  return createServer((req, res) => {
    const body =
      `Hello from the opam-edge demo origin.\n` +
      `You asked for ${req.method} ${req.url} with Host: ${req.headers.host}\n` +
      `X-Forwarded-For: ${req.headers['x-forwarded-for'] ?? '-'}\n` +
      `X-Forwarded-Proto: ${req.headers['x-forwarded-proto'] ?? '-'}\n`;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}

export async function startDemo(log: EventLog): Promise<{ config: Config; stop: () => Promise<void> }> {
  const origin = createDemoOrigin();
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const port = (origin.address() as AddressInfo).port;
  log.info('demo_origin', { address: `127.0.0.1:${port}` });
  const result = validateConfig(
    {
      listen: { http: ['[::]:8080'], https: ['[::]:8443'] },
      tls: {
        certificates: [{ cert: `${certsDev}localhost.cert.pem`, key: `${certsDev}localhost.key.pem` }],
        unknown_sni: 'default',
      },
      sites: [{ hosts: ['localhost', '127.0.0.1', '[::1]'], upstream: `http://127.0.0.1:${port}` }],
    },
    'demo',
  );
  if (!result.ok) throw new Error(`the built-in demo config is invalid: ${result.errors.join('; ')}`);
  return {
    config: result.config,
    stop: () => new Promise<void>((resolve) => origin.close(() => resolve())),
  };
}
