// What the admin listener says about the node: GET /healthz (a verdict with its reasons, health.ts) and
// GET /status (one JSON document, also rendered as HTML by admin-page.ts). The edge gathers
// the facts from its own parts; with workers, the cluster primary amends them with what
// only it knows (the workers, their listeners, their challenge peers). Both answers are
// pure functions of those facts.

import type { Site } from '../config.ts';
import type { ListenAddress } from '../units.ts';
import type { CertInfo } from '../tls/certificate.ts';
import type { PeerState } from '../acme/peers.ts';
import type { RenewalStatus } from '../acme/renewer.ts';
import type { MetricJson } from './metrics.ts';
import { nodeHealth } from './health.ts';
import type { HealthReason, HealthState } from './health.ts';
import { VERSION } from '../version.ts';

export type ListenerFacts = {
  role: 'http' | 'https' | 'admin';
  /** The addresses as configured ("[::]:443"). */
  configured: string[];
  /** As bound, with the kernel's port where 0 was asked for. */
  bound: string[];
  /** Configured addresses not bound now. */
  missing: string[];
};

type WorkerFacts = { id: number; pid: number | null; ready: boolean; started_at: string };

type SiteFacts = {
  name: string;
  hosts: string[];
  upstream: string;
  addresses: string[];
  /** The last successful resolution (ms); null before the first one, or for an IP literal. */
  resolvedAt: number | null;
  resolveError: string | null;
};

export type NodeFacts = {
  now: number;
  stopping: boolean;
  /** null: one process serves (workers: 1). */
  workers: { configured: number; list: WorkerFacts[] } | null;
  listeners: ListenerFacts[];
  sites: SiteFacts[];
  certificates: readonly CertInfo[];
  /** null when ACME is off. */
  acme: RenewalStatus[] | null;
  peers: PeerState[];
  /** Until when a node without any certificate is degraded, not failing (ACME's start grace); null without ACME. */
  startGraceUntil: number | null;
};

/** What a cluster primary adds to its own edge's facts and metrics. */
export type NodeExtension = {
  /** The workers, and the http/https listeners they bind (the primary binds none). */
  amend(facts: NodeFacts): NodeFacts;
  /** Every worker's view of the challenge peers (the workers forward, not the primary). */
  peers(): Promise<PeerState[][]>;
  /** The whole node's metrics, given the primary's own. */
  metrics(own: MetricJson[]): Promise<string>;
};

const STARTED_AT = Date.now() - process.uptime() * 1000;
const DAY_MS = 86_400_000;

/** One role's listeners: what the config asks for against what is bound. */
export function listenerFacts(role: ListenerFacts['role'], wanted: readonly ListenAddress[], bound: readonly { address: ListenAddress; bound: string }[]): ListenerFacts {
  const texts = new Set(bound.map((l) => l.address.text));
  return {
    role,
    configured: wanted.map((a) => a.text),
    bound: bound.map((l) => l.bound),
    missing: wanted.filter((a) => !texts.has(a.text)).map((a) => a.text),
  };
}

/** Each site with its upstream's current state (Upstreams.status(), by upstream text). */
export function siteFacts(
  sites: readonly Site[],
  upstreams: readonly { upstream: string; addresses: readonly string[]; lastFailure: string | null; resolvedAt: number | null }[],
): SiteFacts[] {
  const byText = new Map(upstreams.map((u) => [u.upstream, u]));
  return sites.map((site) => {
    const u = byText.get(site.upstream.text);
    return {
      name: site.hosts[0]!,
      hosts: [...site.hosts],
      upstream: site.upstream.text,
      addresses: [...(u?.addresses ?? [])],
      resolvedAt: u?.resolvedAt ?? null,
      resolveError: u?.lastFailure ?? null,
    };
  });
}

type CertificateStatus = {
  names: string[];
  issuer: string;
  serial: string;
  key_type: 'ecdsa' | 'rsa';
  source: CertInfo['source'];
  origin: string;
  not_before: string;
  not_after: string;
  days_left: number;
  /** When built-in ACME next orders one of its names; null when ACME does not manage them. */
  next_renewal: string | null;
  last_error: string | null;
};

export type StatusDocument = {
  version: string;
  pid: number;
  started_at: string;
  uptime_s: number;
  now: string;
  /** ok, degraded (serving, a person is needed) or failing (cannot serve): health.ts. */
  health: HealthState;
  reasons: HealthReason[];
  names_without_certificate: string[];
  workers: { configured: number; ready: number; list: WorkerFacts[] };
  listeners: ListenerFacts[];
  sites: { name: string; hosts: string[]; upstream: string; addresses: string[]; resolved_at: string | null; resolve_error: string | null }[];
  certificates: CertificateStatus[];
  acme: { name: string; next_attempt: string; reason: string; failures: number; last_error: string | null; serial: string | null }[] | null;
  peers: { peer: string; last_attempt_at: string | null; reached: boolean | null; last_error: string | null }[];
};

export function statusDocument(facts: NodeFacts): StatusDocument {
  const health = nodeHealth(facts);
  const acmeByName = new Map((facts.acme ?? []).map((a) => [a.name, a]));
  const certificates = [...facts.certificates]
    .sort((a, b) => a.names[0]!.localeCompare(b.names[0]!) || a.notAfter.getTime() - b.notAfter.getTime())
    .map((c): CertificateStatus => {
      const managed = c.names.map((n) => acmeByName.get(n)).filter((a): a is RenewalStatus => a !== undefined);
      const next = managed.map((a) => a.at).sort()[0] ?? null;
      return {
        names: [...c.names],
        issuer: c.issuer,
        serial: c.serial,
        key_type: c.keyType,
        source: c.source,
        origin: c.origin,
        not_before: c.notBefore.toISOString(),
        not_after: c.notAfter.toISOString(),
        days_left: Math.round(((c.notAfter.getTime() - facts.now) / DAY_MS) * 10) / 10,
        next_renewal: next,
        last_error: managed.find((a) => a.last_error !== null)?.last_error ?? null,
      };
    });
  const workers = facts.workers;
  return {
    version: VERSION,
    pid: process.pid,
    started_at: new Date(STARTED_AT).toISOString(),
    uptime_s: Math.round((facts.now - STARTED_AT) / 100) / 10,
    now: new Date(facts.now).toISOString(),
    health: health.state,
    reasons: health.reasons,
    names_without_certificate: health.namesWithoutCertificate,
    workers: workers ? { configured: workers.configured, ready: workers.list.filter((w) => w.ready).length, list: workers.list } : { configured: 1, ready: 1, list: [] },
    listeners: facts.listeners,
    sites: facts.sites.map((s) => ({
      name: s.name,
      hosts: s.hosts,
      upstream: s.upstream,
      addresses: s.addresses,
      resolved_at: s.resolvedAt === null ? null : new Date(s.resolvedAt).toISOString(),
      resolve_error: s.resolveError,
    })),
    certificates,
    acme: facts.acme?.map((a) => ({ name: a.name, next_attempt: a.at, reason: a.reason, failures: a.failures, last_error: a.last_error, serial: a.serial })) ?? null,
    peers: facts.peers.map((p) => ({
      peer: p.peer,
      last_attempt_at: p.lastAttemptAt === null ? null : new Date(p.lastAttemptAt).toISOString(),
      reached: p.lastOk,
      last_error: p.lastError,
    })),
  };
}

/** Several processes' views of the same peers: for each peer, the latest attempt wins. */
export function mergePeers(views: readonly (readonly PeerState[])[]): PeerState[] {
  const byPeer = new Map<string, PeerState>();
  for (const view of views) {
    for (const p of view) {
      const seen = byPeer.get(p.peer);
      if (!seen || (p.lastAttemptAt ?? -1) > (seen.lastAttemptAt ?? -1)) byPeer.set(p.peer, p);
    }
  }
  // The order of the first view (the config's).
  return [...byPeer.values()];
}
