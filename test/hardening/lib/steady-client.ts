// The well-behaved client that runs beside every hostile one: a loop of normal requests
// (https over keep-alive and over new connections, and the port-80 redirect), bounded in
// time, one at a time with a short pause. Every failure is kept with its reason: the
// hardening tests require none.

import { Agent, request } from 'undici';
import { HOST } from './world.ts';

export type SteadyResult = { ok: number; failed: number; errors: string[] };

export type SteadyClient = { stop(): Promise<SteadyResult>; readonly ok: number; readonly failed: number };

export function startSteadyClient(options: {
  httpsPort: number;
  httpPort?: number;
  /** Pause between two requests. */
  pauseMs?: number;
  /** A request slower than this counts as a failure. */
  timeoutMs?: number;
  /** Path for the https requests (default "/"). */
  path?: string;
}): SteadyClient {
  const pause = options.pauseMs ?? 25;
  const timeout = options.timeoutMs ?? 10_000;
  const keepAlive = new Agent({ connect: { rejectUnauthorized: false, servername: HOST }, headersTimeout: timeout, bodyTimeout: timeout });
  let stopping = false;
  let ok = 0;
  let failed = 0;
  const errors: string[] = [];
  const fail = (what: string, err: unknown) => {
    failed++;
    if (errors.length < 20) errors.push(`${what}: ${(err as Error)?.message ?? String(err)}`);
  };
  const once = async (i: number) => {
    const kind = i % 4;
    if (kind === 3 && options.httpPort) {
      const res = await request(`http://127.0.0.1:${options.httpPort}/x?i=${i}`, { headers: { host: HOST }, headersTimeout: timeout, bodyTimeout: timeout });
      await res.body.dump();
      if (res.statusCode !== 301 || res.headers.location !== `https://${HOST}/x?i=${i}`) throw new Error(`port 80 answered ${res.statusCode} ${String(res.headers.location)}`);
      return;
    }
    // kind 2: a new connection each time (a fresh TLS handshake).
    const fresh = kind === 2 ? new Agent({ connect: { rejectUnauthorized: false, servername: HOST }, pipelining: 0 }) : null;
    try {
      const res = await request(`https://127.0.0.1:${options.httpsPort}${options.path ?? '/'}`, {
        headers: { host: HOST },
        dispatcher: fresh ?? keepAlive,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      const body = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`https answered ${res.statusCode}: ${body.slice(0, 120)}`);
    } finally {
      await fresh?.close();
    }
  };
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      try {
        await once(i);
        ok++;
      } catch (err) {
        fail(`request ${i}`, err);
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  })();
  return {
    get ok() {
      return ok;
    },
    get failed() {
      return failed;
    },
    async stop() {
      stopping = true;
      await loop;
      await keepAlive.close();
      return { ok, failed, errors };
    },
  };
}
