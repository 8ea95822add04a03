// The servers of one role ("http", "https", "admin") on their configured addresses.

import type { Server as NetServer } from 'node:net';
import type { ListenAddress } from '../units.ts';
import type { EventLog } from '../log.ts';
import { bind, stopAccepting } from './bind.ts';
import type { BoundListener, ListenOptions } from './bind.ts';

/** A listener group moved to new addresses, pending the rest of a reload. */
export type PreparedListeners = {
  problems: string[];
  firstError: Error | null;
  commit(): Promise<void>;
  rollback(): Promise<void>;
};

/**
 * The servers of one role ("http", "https") on their configured addresses. `sync` moves
 * them to a new address list (start and reload): addresses that stay keep their socket.
 */
export class ListenerGroup<S extends NetServer> {
  readonly #role: string;
  readonly #log: EventLog;
  readonly #make: () => S;
  readonly #options: ListenOptions;
  readonly #keyOf: (index: number) => string;
  readonly #bound = new Map<string, BoundListener & { server: S }>();

  /** `keyOf` names the config key of the i-th address in a problem (`listen.http[0]` by default). */
  constructor(role: string, log: EventLog, options: ListenOptions, make: () => S, keyOf = (index: number) => `listen.${role}[${index}]`) {
    this.#role = role;
    this.#log = log;
    this.#options = options;
    this.#make = make;
    this.#keyOf = keyOf;
  }

  get role(): string {
    return this.#role;
  }

  get listeners(): (BoundListener & { server: S })[] {
    return [...this.#bound.values()];
  }

  /**
   * Binds the addresses not bound yet, trying each even after one fails, and changes
   * nothing else. `problems` names each address that could not be bound ("listen.https[1]:
   * ..."); `commit` closes the addresses no longer listed, `rollback` unbinds what this
   * call bound. Exactly one of them is called.
   */
  async prepare(addresses: readonly ListenAddress[]): Promise<PreparedListeners> {
    const wanted = new Set(addresses.map((a) => a.text));
    const added: string[] = [];
    const problems: string[] = [];
    let firstError: Error | null = null;
    for (const [i, address] of addresses.entries()) {
      if (this.#bound.has(address.text) || added.includes(address.text)) continue;
      const server = this.#make();
      try {
        const listener = await bind(server, address, this.#log, this.#role, this.#options);
        this.#bound.set(address.text, { ...listener, server });
        added.push(address.text);
      } catch (err) {
        firstError ??= err as Error;
        problems.push(`${this.#keyOf(i)}: ${(err as Error).message}`);
      }
    }
    return {
      problems,
      firstError,
      commit: async () => {
        for (const [text, listener] of this.#bound) {
          if (wanted.has(text)) continue;
          this.#bound.delete(text);
          await stopAccepting(listener.server);
          this.#log.info('listener_closed', { role: this.#role, address: text });
        }
      },
      rollback: async () => {
        for (const text of added) {
          await stopAccepting(this.#bound.get(text)!.server);
          this.#bound.delete(text);
          this.#log.info('listener_closed', { role: this.#role, address: text, reason: 'reload refused' });
        }
      },
    };
  }

  /** prepare(), throwing the first bind error (after unbinding what it bound); start-up. */
  async sync(addresses: readonly ListenAddress[]): Promise<() => Promise<void>> {
    const prepared = await this.prepare(addresses);
    if (prepared.firstError === null) return prepared.commit;
    await prepared.rollback();
    throw prepared.firstError;
  }

  async stopAccepting(): Promise<void> {
    await Promise.all(this.listeners.map((l) => stopAccepting(l.server)));
  }
}
