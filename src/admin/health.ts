// The node's health verdict, from the facts status.ts gathers. Three states:
//   ok        nothing to do;
//   degraded  serving, but a person is needed: a configured or managed name without a valid
//             certificate, a certificate under 7 days, a failing ACME renewal, an upstream
//             without addresses, some workers not ready, or a first ACME order still running
//             within `acme.start_grace`;
//   failing   cannot serve: a listener not bound, stopping, no worker ready, or no
//             certificate at all (https configured) once the start grace is over.
// /healthz answers 200 unless failing, so an orchestrator restarts only what a restart can
// fix; `?strict`, the status page and the metrics tell degraded apart.

import { isIP } from 'node:net';
import type { NodeFacts } from './status.ts';
import type { CertInfo } from '../tls/certificate.ts';
import { covers } from '../host-name.ts';

export const HEALTH_STATES = ['ok', 'degraded', 'failing'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];
export type HealthReason = { state: Exclude<HealthState, 'ok'>; reason: string };
export type Health = {
  state: HealthState;
  reasons: HealthReason[];
  /** Configured or managed names no valid certificate serves (empty without https listeners). */
  namesWithoutCertificate: string[];
};

/** A certificate with fewer days left than this makes the node degraded. */
export const EXPIRY_WARN_DAYS = 7;
const DAY_MS = 86_400_000;

export function nodeHealth(facts: NodeFacts): Health {
  const reasons: HealthReason[] = [];
  const failing = (reason: string) => reasons.push({ state: 'failing', reason });
  const degraded = (reason: string) => reasons.push({ state: 'degraded', reason });
  const { now } = facts;

  if (facts.stopping) failing('stopping');
  if (facts.workers !== null) {
    const ready = facts.workers.list.filter((w) => w.ready).length;
    const text = `${ready} of ${facts.workers.configured} workers ready`;
    if (ready === 0) failing(text);
    else if (ready < facts.workers.configured) degraded(text);
  }
  for (const l of facts.listeners) if (l.missing.length > 0) failing(`${l.role} listener not bound: ${l.missing.join(', ')}`);

  const https = facts.listeners.find((l) => l.role === 'https');
  const names = https && https.configured.length > 0 ? certificateNames(facts) : [];
  const acme = new Map((facts.acme ?? []).map((a) => [a.name, a]));
  const without: string[] = [];
  for (const name of names) {
    const serving = facts.certificates.filter((c) => certCovers(c, name) && c.notBefore.getTime() <= now && c.notAfter.getTime() > now);
    if (serving.length === 0) {
      without.push(name);
      continue;
    }
    // Per key type: an RSA-only client gets the RSA certificate even when the ECDSA one is fresh.
    for (const keyType of ['ecdsa', 'rsa'] as const) {
      const latest = serving.filter((c) => c.keyType === keyType).reduce<CertInfo | null>((a, c) => (a && a.notAfter >= c.notAfter ? a : c), null);
      const days = latest ? (latest.notAfter.getTime() - now) / DAY_MS : Infinity;
      if (days < EXPIRY_WARN_DAYS) degraded(`certificate for ${name} (${keyType}) expires in ${days.toFixed(1)} days (${latest!.notAfter.toISOString()})`);
    }
  }
  const inGrace = facts.startGraceUntil !== null && now < facts.startGraceUntil;
  if (names.length > 0 && facts.certificates.length === 0) {
    const why = facts.acme ? 'first ACME orders in progress' : 'no tls.certificates, tls.certbot or acme';
    if (facts.acme && inGrace) degraded(`no certificate loaded yet (${why}; failing from ${new Date(facts.startGraceUntil!).toISOString()}, acme.start_grace)`);
    else failing(`no certificate loaded (${why})`);
  } else {
    for (const name of without) {
      const managed = acme.get(name);
      const why = !managed ? 'not managed by ACME' : managed.failures > 0 ? 'its ACME order is failing' : 'ACME order in progress';
      degraded(`no valid certificate for ${name} (${why})`);
    }
  }
  for (const a of facts.acme ?? []) {
    if (a.failures > 0) degraded(`ACME renewal of ${a.name} failing (${a.failures} attempts, next ${a.at}): ${oneLine(a.last_error ?? 'unknown error')}`);
  }
  // One reason per upstream, however many sites share it.
  const empty = new Map<string, { sites: string[]; error: string | null }>();
  for (const s of facts.sites) {
    if (s.addresses.length > 0) continue;
    const seen = empty.get(s.upstream);
    if (seen) seen.sites.push(s.name);
    else empty.set(s.upstream, { sites: [s.name], error: s.resolveError });
  }
  for (const [upstream, { sites, error }] of empty) {
    degraded(`upstream ${upstream} (${sites.join(', ')}) has no address${error ? `: ${oneLine(error)}` : ''}`);
  }

  const state: HealthState = reasons.some((r) => r.state === 'failing') ? 'failing' : reasons.length > 0 ? 'degraded' : 'ok';
  // Failing first: the first reason is the one Docker's one-line health log shows.
  reasons.sort((a, b) => (a.state === b.state ? 0 : a.state === 'failing' ? -1 : 1));
  return { state, reasons, namesWithoutCertificate: without };
}

/** The names a certificate must serve: every site host but IP literals, and every ACME name. */
function certificateNames(facts: NodeFacts): string[] {
  const names = new Set<string>();
  for (const s of facts.sites) for (const h of s.hosts) if (!h.startsWith('[') && isIP(h) === 0) names.add(h);
  for (const a of facts.acme ?? []) names.add(a.name);
  return [...names];
}

/** The TLS store's rule (host-name.ts): the exact name, or a wildcard one label deep. */
function certCovers(cert: CertInfo, name: string): boolean {
  return cert.names.some((pattern) => covers(pattern, name));
}

function oneLine(text: string): string {
  const line = text.split('\n')[0]!;
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

/** GET /healthz's body: the state, then the reasons on the same line (Docker keeps one). */
export function healthLine(health: Health): string {
  return `${health.state}${health.reasons.length > 0 ? `: ${health.reasons.map((r) => r.reason).join('; ')}` : ''}\n`;
}
