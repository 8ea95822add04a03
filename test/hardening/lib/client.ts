// One https request through opam-edge, over HTTP/1.1 or h2, with the outcome kept whole:
// status, body bytes received, or the error that ended it (a cut body is an error, never a
// short success).

import { Agent, request } from 'undici';

export type Got = { status: number | null; bytes: number; error: string | null; ms: number };

export function agent(h2 = false): Agent {
  return new Agent({ connect: { rejectUnauthorized: false }, allowH2: h2, headersTimeout: 30_000, bodyTimeout: 30_000 });
}

export async function get(dispatcher: Agent, port: number, host: string, path: string, options: { method?: 'GET' | 'POST'; body?: Buffer } = {}): Promise<Got> {
  const started = Date.now();
  let status: number | null = null;
  let bytes = 0;
  try {
    const res = await request(`https://127.0.0.1:${port}${path}`, { method: options.method ?? 'GET', headers: { host }, body: options.body, dispatcher });
    status = res.statusCode;
    for await (const chunk of res.body) bytes += (chunk as Buffer).length;
    return { status, bytes, error: null, ms: Date.now() - started };
  } catch (err) {
    return { status, bytes, error: (err as { code?: string }).code ?? (err as Error).message, ms: Date.now() - started };
  }
}
