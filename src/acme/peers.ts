// Asks the other nodes for HTTP-01 tokens this node does not hold. Behind round-robin DNS
// the CA's validation request can land on either node; the seed's nginx did the same with
// `try_files $uri @proxy`. The forwarded request carries PEER_HOP_HEADER so the peer answers
// from its own tokens and webroot only and never forwards again. nginx passes unknown
// headers on, so the guard holds through an nginx peer too.

import { LazyAgent } from '../undici-api.ts';
import type { EventLog } from '../log.ts';

export const PEER_HOP_HEADER = 'x-opam-edge-peer-hop';
export const PEER_TIMEOUT_MS = 5000;
/** A key authorization is "token.thumbprint": a few hundred bytes at most. */
const MAX_ANSWER_BYTES = 1024;

export type PeerState = {
  readonly peer: string;
  lastAttemptAt: number | null;
  lastOk: boolean | null;
  lastError: string | null;
};

export class PeerForwarder {
  readonly #agent: LazyAgent;
  readonly #log: EventLog;
  readonly #timeoutMs: number;
  #peers: readonly URL[] = [];
  #state = new Map<string, PeerState>();

  constructor(log: EventLog, timeoutMs = PEER_TIMEOUT_MS) {
    this.#log = log;
    this.#timeoutMs = timeoutMs;
    this.#agent = new LazyAgent({
      connectTimeout: timeoutMs,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4000,
      connections: 4,
    });
  }

  /** Replaces the list of peers (start and SIGHUP). */
  setPeers(peers: readonly URL[]): void {
    this.#peers = peers;
    const next = new Map<string, PeerState>();
    for (const peer of peers) {
      next.set(peer.href, this.#state.get(peer.href) ?? { peer: peer.href, lastAttemptAt: null, lastOk: null, lastError: null });
    }
    this.#state = next;
  }

  get peers(): readonly URL[] {
    return this.#peers;
  }

  /** Each peer in order; the first valid answer wins. null when no peer has the token. */
  async ask(token: string, host: string): Promise<string | null> {
    for (const peer of this.#peers) {
      const answer = await this.#askOne(peer, token, host);
      if (answer !== null) return answer;
    }
    return null;
  }

  status(): PeerState[] {
    return [...this.#state.values()].map((s) => ({ ...s }));
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  async #askOne(peer: URL, token: string, host: string): Promise<string | null> {
    const state = this.#state.get(peer.href);
    const base = peer.pathname.endsWith('/') ? peer.pathname.slice(0, -1) : peer.pathname;
    const url = `${peer.origin}${base}/.well-known/acme-challenge/${token}`;
    if (state) state.lastAttemptAt = Date.now();
    try {
      const res = await this.#agent.request(url, {
        method: 'GET',
        headers: { host, [PEER_HOP_HEADER]: '1', 'user-agent': 'opam-edge (challenge peer)' },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          res.body.destroy();
          break;
        }
        chunks.push(chunk);
      }
      if (state) {
        state.lastOk = true;
        state.lastError = null;
      }
      if (res.statusCode !== 200 || size > MAX_ANSWER_BYTES) return null;
      const answer = Buffer.concat(chunks).toString('latin1').trim();
      // A catch-all page answered 200 is not a key authorization: "TOKEN.THUMBPRINT".
      if (!answer.startsWith(`${token}.`) || !/^[A-Za-z0-9_.-]+$/.test(answer)) return null;
      return answer;
    } catch (err) {
      const reason = (err as { code?: string }).code ?? (err as Error).name ?? String(err);
      if (state) {
        state.lastOk = false;
        state.lastError = reason;
      }
      this.#log.warn('peer_forward_failed', { code: 'PEER_FORWARD_FAILED', peer: peer.href, token, reason });
      return null;
    }
  }
}
