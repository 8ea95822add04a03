// undici's package entry loads all of undici: fetch, WebSocket, EventSource, caches, mocks.
// That is about 12 MiB of RSS in every process, for code the proxy never runs: the hot path
// needs only Pool, which upstream/pools.ts takes from its own module. The full API (Agent,
// request) serves the ACME transport and the challenge peer forwarder; they load it here,
// on their first request, so a worker (which never talks ACME) and a node that forwards no
// challenge never pay for it.

export type UndiciApi = typeof import('undici');

let undici: Promise<UndiciApi> | null = null;

export function loadUndiciApi(): Promise<UndiciApi> {
  return (undici ??= import('undici'));
}
