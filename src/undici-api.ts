// An undici Agent made on the first request. The ACME transport and the challenge peer
// forwarder send through one each, so a worker (which never talks ACME) and a node that
// forwards no challenge open no connection pool for them.

import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';

/** An undici Agent with these options, made on the first request. */
export class LazyAgent {
  readonly #options: Agent.Options;
  #agent: Agent | null = null;

  constructor(options: Agent.Options) {
    this.#options = options;
  }

  async request(url: string, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'dispatcher'> & { method?: Dispatcher.HttpMethod }): Promise<Dispatcher.ResponseData> {
    return request(url, { ...options, dispatcher: (this.#agent ??= new Agent(this.#options)) });
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}
