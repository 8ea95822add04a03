// What one Edge (edge.ts) reports about itself: the node facts behind GET /healthz, /status
// and /metrics (admin/status.ts, admin/health.ts, admin/metrics.ts), and the admin routes.

import { healthRoute, metricsRoute, renewRoute, statusRoutes } from './admin/admin.ts';
import type { AdminRoute } from './admin/admin.ts';
import { listenerFacts, mergePeers, siteFacts, statusDocument } from './admin/status.ts';
import type { NodeExtension, NodeFacts, StatusDocument } from './admin/status.ts';
import { nodeHealth } from './admin/health.ts';
import type { Health } from './admin/health.ts';
import type { EdgeAcme } from './edge-acme.ts';
import type { EdgeListeners } from './edge-listeners.ts';
import { adminAddresses } from './edge-state.ts';
import type { EdgeReads } from './edge-state.ts';

export type FactSources = EdgeReads & {
  listeners: EdgeListeners;
  acme: EdgeAcme;
  /** A cluster primary: the workers' part of /healthz, /status and /metrics. */
  node?: NodeExtension;
  /** When the edge started: ACME's start grace counts from here (admin/health.ts). */
  startedAt: number;
};

export class EdgeFacts {
  readonly #sources: FactSources;

  /** Also hands the metrics (when recorded) the gauges they read at scrape time. */
  constructor(sources: FactSources) {
    this.#sources = sources;
    const { metrics, certificates, upstreams, acme } = sources;
    metrics?.observe({
      certificates: () => certificates.certificates(),
      sites: () => siteFacts(sources.state().config.sites, upstreams.status()).map((site) => ({ name: site.name, addresses: site.addresses.length })),
      acmeNames: () => acme.manager?.renewer.status().map((r) => r.name) ?? [],
      health: () => this.health(),
    });
  }

  /** The admin listener's routes; renewal only while ACME runs. */
  routes(): AdminRoute[] {
    const routes: AdminRoute[] = [healthRoute(() => this.health()), metricsRoute(() => this.#metricsText()), ...statusRoutes(() => this.status())];
    const manager = this.#sources.acme.manager;
    if (manager) routes.push(renewRoute((name) => manager.renewer.renewNow(name)));
    return routes;
  }

  /** This edge's (with workers: the node's) health and why (GET /healthz). */
  health(): Health {
    return nodeHealth(this.#facts());
  }

  /** GET /status: the node as one document. */
  async status(): Promise<StatusDocument> {
    const facts = this.#facts();
    const { node } = this.#sources;
    if (node) facts.peers = mergePeers([facts.peers, ...(await node.peers())]);
    return statusDocument(facts);
  }

  async #metricsText(): Promise<string | null> {
    const { metrics, node } = this.#sources;
    if (!metrics) return null;
    return node ? node.metrics(await metrics.json()) : metrics.text();
  }

  #facts(): NodeFacts {
    const { listeners, upstreams, certificates, acme, peers, node, startedAt } = this.#sources;
    const { config, stopping } = this.#sources.state();
    const facts: NodeFacts = {
      now: Date.now(),
      stopping,
      workers: null,
      listeners: [
        listenerFacts('http', config.listen.http, listeners.http.listeners),
        listenerFacts('https', config.listen.https, listeners.https.listeners),
        listenerFacts('admin', adminAddresses(config), listeners.admin.listeners),
      ],
      sites: siteFacts(config.sites, upstreams.status()),
      certificates: certificates.certificates(),
      acme: config.acme ? (acme.manager?.renewer.status() ?? []) : null,
      peers: peers.status(),
      startGraceUntil: config.acme ? startedAt + config.acme.start_grace : null,
    };
    return node ? node.amend(facts) : facts;
  }
}
