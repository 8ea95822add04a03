// What the parts of one Edge (edge.ts) read: the state in force, one frozen object that start
// and reload build whole and the Edge swaps, and the stores the listeners and reports share.

import type { Config } from './config.ts';
import type { ListenAddress } from './units.ts';
import type { AccessLog } from './log.ts';
import type { ChallengeStore } from './acme/challenges.ts';
import type { PeerForwarder } from './acme/peers.ts';
import type { CertStore } from './tls/cert-store.ts';
import type { Upstreams } from './upstream/upstreams.ts';
import type { EdgeMetrics } from './admin/metrics.ts';
import { siteRoutes } from './http/gateway.ts';
import type { Gateway, GatewayState } from './http/gateway.ts';

/** What request handlers read (the gateway's part included). Replaced whole, never mutated. */
export type EdgeState = GatewayState & {
  readonly config: Config;
};

/** The one view of an Edge its listeners (edge-listeners.ts) and reports (edge-facts.ts) get. */
export type EdgeReads = {
  /** The state in force: read per connection or request, never kept. */
  state(): EdgeState;
  readonly challenges: ChallengeStore;
  readonly peers: PeerForwarder;
  readonly certificates: CertStore;
  readonly upstreams: Upstreams;
  readonly gateway: Gateway;
  /** null when admin was off at start: then no hook records anything. */
  readonly metrics: EdgeMetrics | null;
};

/**
 * Routes read the upstreams' targets: `routed` is false (no routes) until the upstreams know
 * the config.
 */
export function edgeState(config: Config, accessLog: AccessLog, stopping: boolean, upstreams: Upstreams, routed = true): EdgeState {
  return Object.freeze({
    config,
    accessLog,
    stopping,
    routes: siteRoutes(routed ? config.sites : [], (site) => upstreams.get(site.upstream)),
    limits: config.limits,
    hsts: config.tls.hsts,
  });
}

/** The admin listener's addresses: none when admin is off. */
export function adminAddresses(config: Config): readonly ListenAddress[] {
  return config.admin ? [config.admin] : [];
}
