// The scenarios: one body size over one protocol with one load generator. HTTP/1.1 with
// keep-alive (plain and TLS) goes through autocannon; HTTP/2 through h2load (autocannon has
// no h2); "new TLS connection per request" through the bench's own generator (autocannon's
// reconnectRate drops the response it reconnects after, so it would count nothing).

import type { FileName } from '../lib/fixtures.ts';
import type { Protocol } from '../targets/target.ts';

export type Driver = 'autocannon' | 'h2load' | 'newconn';

export type Scenario = {
  id: string;
  title: string;
  protocol: Protocol;
  file: FileName;
  driver: Driver;
  /** Concurrent connections. */
  connections: number;
  /** h2: concurrent streams per connection. */
  streams?: number;
};

export const SCENARIOS: readonly Scenario[] = [
  { id: 'http-1k', title: 'HTTP/1.1 plain, 1 KiB', protocol: 'http', file: '1k', driver: 'autocannon', connections: 50 },
  { id: 'http-100k', title: 'HTTP/1.1 plain, 100 KiB', protocol: 'http', file: '100k', driver: 'autocannon', connections: 50 },
  { id: 'http-10m', title: 'HTTP/1.1 plain, 10 MiB', protocol: 'http', file: '10m', driver: 'autocannon', connections: 8 },
  { id: 'https-1k', title: 'HTTP/1.1 TLS, 1 KiB', protocol: 'https', file: '1k', driver: 'autocannon', connections: 50 },
  { id: 'https-100k', title: 'HTTP/1.1 TLS, 100 KiB', protocol: 'https', file: '100k', driver: 'autocannon', connections: 50 },
  { id: 'https-10m', title: 'HTTP/1.1 TLS, 10 MiB', protocol: 'https', file: '10m', driver: 'autocannon', connections: 8 },
  { id: 'h2-1k', title: 'HTTP/2 TLS, 1 KiB', protocol: 'h2', file: '1k', driver: 'h2load', connections: 10, streams: 10 },
  { id: 'h2-100k', title: 'HTTP/2 TLS, 100 KiB', protocol: 'h2', file: '100k', driver: 'h2load', connections: 10, streams: 10 },
  { id: 'h2-10m', title: 'HTTP/2 TLS, 10 MiB', protocol: 'h2', file: '10m', driver: 'h2load', connections: 4, streams: 2 },
  {
    id: 'tls-new-conn',
    title: 'new TLS connection per request (full handshake + 1 KiB)',
    protocol: 'https',
    file: '1k',
    driver: 'newconn',
    connections: 16,
  },
];

export function scenarioById(id: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.id === id);
}
