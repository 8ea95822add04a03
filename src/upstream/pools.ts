// Keep-alive connection pools to one upstream, one undici Pool per resolved address, and
// round-robin across them. The address set is an immutable snapshot swapped whole when the
// resolver's answer changes: new requests use the new addresses at once, pools of vanished
// addresses are closed gracefully (undici's close() lets in-flight requests finish, then
// closes the sockets), pools of addresses that stay are kept with their connections.

// undici's public export. Its private module (undici/lib/dispatcher/pool.js) spared loading
// the rest of undici (fetch, WebSocket, caches) but tied us to a file layout no semver range
// protects; the whole package costs about 2 MiB of idle RSS in the compiled edge (86 -> 88 MiB).
import { Pool } from 'undici';
import type { EventLog } from '../log.ts';

export type PoolSettings = {
  connectTimeoutMs: number;
  /** Headers and body timeouts: nginx's proxy_read_timeout. */
  readTimeoutMs: number;
};

/**
 * Idle upstream connections are closed after this. Below the keep-alive timeouts upstreams
 * commonly use (Node 5 s, nginx 75 s): the pool closes first, so it rarely sends a request
 * on a connection the upstream is closing at that moment.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 4000;
/** Per address. nginx has no such cap; this bounds sockets if an upstream slows down. */
export const CONNECTIONS_PER_ADDRESS = 128;

export type Picked = {
  readonly pool: Pool;
  /** "127.0.0.2:80", "[::1]:80": for the access log and events. */
  readonly address: string;
  /** The same address in parts (the WebSocket tunnel connects with node:net). */
  readonly ip: string;
  readonly port: number;
};

export function poolSettingsEqual(a: PoolSettings, b: PoolSettings): boolean {
  return a.connectTimeoutMs === b.connectTimeoutMs && a.readTimeoutMs === b.readTimeoutMs;
}

export function createPool(ip: string, port: number, settings: PoolSettings): Picked {
  const host = ip.includes(':') ? `[${ip}]` : ip;
  const pool = new Pool(`http://${host}:${port}`, {
    connections: CONNECTIONS_PER_ADDRESS,
    pipelining: 1,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    keepAliveMaxTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectTimeout: settings.connectTimeoutMs,
    headersTimeout: settings.readTimeoutMs,
    bodyTimeout: settings.readTimeoutMs,
    // Upstream response heads up to 64 KiB (nginx's proxy_buffer_size is smaller still).
    maxHeaderSize: 64 * 1024,
    connect: { timeout: settings.connectTimeoutMs, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 },
  });
  return Object.freeze({ pool, address: `${host}:${port}`, ip, port });
}

export class AddressPools {
  readonly #port: number;
  readonly #label: string;
  readonly #log: EventLog;
  #settings: PoolSettings;
  /** The snapshot the request path reads. Replaced whole, never mutated. */
  #entries: readonly Picked[] = [];
  #byIp = new Map<string, Picked>();
  #next = 0;
  #closed = false;
  readonly #draining = new Set<Promise<void>>();

  constructor(port: number, settings: PoolSettings, log: EventLog, label: string) {
    this.#port = port;
    this.#settings = settings;
    this.#log = log;
    this.#label = label;
  }

  /** Round-robin over the current addresses; null while there is none (answer 503). */
  pick(): Picked | null {
    const entries = this.#entries;
    const n = entries.length;
    if (n === 0) return null;
    if (n === 1) return entries[0]!;
    const i = this.#next++ % n;
    if (this.#next >= 0x3fffffff) this.#next = 0;
    return entries[i]!;
  }

  get addresses(): readonly string[] {
    return this.#entries.map((e) => e.address);
  }

  /** Current pools (tests and /status read their stats). */
  get entries(): readonly Picked[] {
    return this.#entries;
  }

  /** Moves to a new address set (the resolver's answer). */
  setAddresses(ips: readonly string[]): void {
    if (this.#closed) return;
    const next = new Map<string, Picked>();
    for (const ip of ips) next.set(ip, this.#byIp.get(ip) ?? createPool(ip, this.#port, this.#settings));
    const gone = [...this.#byIp].filter(([ip]) => !next.has(ip)).map(([, picked]) => picked);
    this.#byIp = next;
    this.#entries = Object.freeze([...next.values()]);
    for (const picked of gone) this.#drain(picked);
  }

  /** New timeouts (reload): every pool is replaced, the old ones drained. */
  setSettings(settings: PoolSettings): void {
    if (poolSettingsEqual(settings, this.#settings)) return;
    this.#settings = settings;
    const ips = [...this.#byIp.keys()];
    const old = [...this.#byIp.values()];
    this.#byIp = new Map();
    this.setAddresses(ips);
    for (const picked of old) this.#drain(picked);
  }

  /** Closes every pool: in-flight requests finish first (graceful stop). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const picked of this.#byIp.values()) this.#drain(picked);
    this.#byIp = new Map();
    this.#entries = Object.freeze([]);
    await Promise.all([...this.#draining]);
  }

  /** Closes every pool at once, cutting in-flight requests (end of the stop grace period). */
  async destroy(): Promise<void> {
    this.#closed = true;
    const all = [...this.#byIp.values()];
    this.#byIp = new Map();
    this.#entries = Object.freeze([]);
    await Promise.all(all.map((p) => p.pool.destroy().catch(() => {})));
  }

  #drain(picked: Picked): void {
    const done = picked.pool
      .close()
      .then(
        () => this.#log.debug('upstream_pool_closed', { upstream: this.#label, address: picked.address }),
        (err: unknown) => this.#log.warn('upstream_pool_close_failed', { upstream: this.#label, address: picked.address, error: String(err) }),
      )
      .finally(() => this.#draining.delete(done));
    this.#draining.add(done);
  }
}
