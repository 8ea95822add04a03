// undici's package entry loads all of undici: fetch, WebSocket, EventSource, caches, mocks
// (88 CommonJS modules, about 3 MiB of RSS in a running edge), for code the proxy never
// runs: the hot path needs only Pool, which upstream/pools.ts takes from its own module. The
// ACME transport and the challenge peer forwarder send through a LazyAgent, which loads the
// full API on their first request, so a worker (which never talks ACME) and a node that
// forwards no challenge never pay for it.

import type { Agent, Dispatcher } from 'undici';

type UndiciApi = typeof import('undici');

let undici: Promise<UndiciApi> | null = null;

function loadUndiciApi(): Promise<UndiciApi> {
  return (undici ??= import('undici'));
}

/** An undici Agent with these options, made (and undici loaded) on the first request. */
export class LazyAgent {
  readonly #options: Agent.Options;
  #agent: Agent | null = null;

  constructor(options: Agent.Options) {
    this.#options = options;
  }

  async request(url: string, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'dispatcher'> & { method?: Dispatcher.HttpMethod }): Promise<Dispatcher.ResponseData> {
    const api = await loadUndiciApi();
    return api.request(url, { ...options, dispatcher: (this.#agent ??= new api.Agent(this.#options)) });
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}
