// The servers of one role ("http", "https", "admin") on their configured addresses.

import type { Server as NetServer } from 'node:net';
import type { ListenAddress } from '../units.ts';
import type { EventLog } from '../log.ts';
import { bind, stopAccepting } from './bind.ts';
import type { BoundListener, ListenOptions } from './bind.ts';

/**
 * The servers of one role ("http", "https") on their configured addresses. `sync` moves
 * them to a new address list (start and reload): addresses that stay keep their socket.
 */
export class ListenerGroup<S extends NetServer> {
  readonly #role: string;
  readonly #log: EventLog;
  readonly #make: () => S;
  readonly #options: ListenOptions;
  readonly #bound = new Map<string, BoundListener & { server: S }>();

  constructor(role: string, log: EventLog, options: ListenOptions, make: () => S) {
    this.#role = role;
    this.#log = log;
    this.#options = options;
    this.#make = make;
  }

  get role(): string {
    return this.#role;
  }

  get listeners(): (BoundListener & { server: S })[] {
    return [...this.#bound.values()];
  }

  /**
   * Binds the addresses not bound yet; if one fails, unbinds what this call bound and
   * throws, leaving the group as it was. Returns a commit function that closes the
   * addresses no longer listed (call it once the rest of a reload has succeeded).
   */
  async sync(addresses: readonly ListenAddress[]): Promise<() => Promise<void>> {
    const wanted = new Set(addresses.map((a) => a.text));
    const added: string[] = [];
    try {
      for (const address of addresses) {
        if (this.#bound.has(address.text)) continue;
        const server = this.#make();
        const listener = await bind(server, address, this.#log, this.#role, this.#options);
        this.#bound.set(address.text, { ...listener, server });
        added.push(address.text);
      }
    } catch (err) {
      for (const text of added) {
        await stopAccepting(this.#bound.get(text)!.server);
        this.#bound.delete(text);
      }
      throw err;
    }
    return async () => {
      for (const [text, listener] of this.#bound) {
        if (wanted.has(text)) continue;
        this.#bound.delete(text);
        await stopAccepting(listener.server);
        this.#log.info('listener_closed', { role: this.#role, address: text });
      }
    };
  }

  async stopAccepting(): Promise<void> {
    await Promise.all(this.listeners.map((l) => stopAccepting(l.server)));
  }
}
