// Runs an Edge in the test process (real sockets on port 0) and a small HTTP client for it.
// The access log goes to a file; `accessLines()` stops the edge (which flushes) and reads it.

import type { TestContext } from 'node:test';
import { readFileSync, rmSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { validateConfig } from '../../src/config.ts';
import { Edge } from '../../src/edge.ts';
import type { EdgeDeps } from '../../src/edge.ts';
import type { Config } from '../../src/config.ts';
import { memoryLog } from './event-log.ts';
import type { MemoryEvent } from './event-log.ts';
import { tempDir } from './edge-process.ts';

/** A validated Config from `raw`, or an error naming every problem (test configs are meant to be valid). */
export function testConfig(raw: Record<string, unknown>): Config {
  const result = validateConfig(raw, 'test');
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

export type InProcessEdge = {
  edge: Edge;
  port: number;
  dir: string;
  events: MemoryEvent[];
  /** Stops the edge (flushing the access log) and returns its lines. */
  accessLines(): Promise<string[]>;
};

export async function startEdge(
  t: TestContext,
  config: Record<string, unknown> = {},
  deps: Partial<EdgeDeps> = {},
): Promise<InProcessEdge> {
  const dir = tempDir();
  const accessPath = join(dir, 'access.log');
  const log = memoryLog();
  const edge = await Edge.start(
    testConfig({ listen: { http: ['[::]:0'], https: [] }, access_log: accessPath, sites: [{ hosts: ['opam.test'], upstream: 'http://127.0.0.1:9' }], ...config }),
    { log, ...deps },
  );
  t.after(async () => {
    await edge.stop(1000);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    edge,
    port: edge.ports.http[0]!,
    dir,
    events: log.events,
    async accessLines() {
      await edge.stop(1000);
      return existsSync(accessPath) ? readFileSync(accessPath, 'utf8').split('\n').filter(Boolean) : [];
    },
  };
}

export type Response = { status: number; headers: IncomingHttpHeaders; body: string };

/** One request on a new connection. `host: null` sends no Host header at all. */
export function get(
  port: number,
  path: string,
  options: { host?: string | null; method?: string; headers?: Record<string, string>; address?: string } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    const req = request(
      {
        host: options.address ?? '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        agent: false,
        headers,
        setHost: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    if (options.host !== null) req.setHeader('host', options.host ?? 'opam.test');
    req.on('error', reject);
    req.end();
  });
}
