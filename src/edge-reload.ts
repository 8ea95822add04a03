// The steps of one Edge's reload (edge.ts; all or nothing, as reload.ts describes): the access
// log, the listeners, the certificate files and the ACME settings prepare without changing
// what serves; the rest of the new config is applied last, once those are committed.

import type { Config } from './config.ts';
import { createAccessLog } from './log.ts';
import { errnoText } from './errors.ts';
import type { AccessLog, EventLog } from './log.ts';
import type { PeerForwarder } from './acme/peers.ts';
import { acmeProblems } from './acme/preflight.ts';
import type { CertStore } from './tls/cert-store.ts';
import { certFileSettings } from './tls/cert-files.ts';
import type { CertificateFiles } from './tls/cert-files.ts';
import type { Upstreams } from './upstream/upstreams.ts';
import { prepareAll, step } from './reload.ts';
import type { PreparedStep } from './reload.ts';
import type { EdgeAcme } from './edge-acme.ts';
import type { EdgeListeners } from './edge-listeners.ts';
import type { EdgeState } from './edge-state.ts';

/** The parts of an Edge a reload prepares or changes. */
export type ReloadParts = {
  log: EventLog;
  listeners: EdgeListeners;
  certFiles: CertificateFiles;
  certificates: CertStore;
  peers: PeerForwarder;
  upstreams: Upstreams;
  acme: EdgeAcme;
  /** No metrics were made at start because admin was off (not because the caller chose none). */
  metricsSkipped: boolean;
};

/**
 * Prepares the move from `previous` to `config`. On commit, `swap` is called with the access
 * log the new state uses, once the upstreams know the config (the new routes read them).
 */
export function prepareEdgeReload(parts: ReloadParts, previous: EdgeState, config: Config, swap: (accessLog: AccessLog) => void): Promise<PreparedStep> {
  const { log, listeners, certFiles, certificates, peers, upstreams, acme } = parts;
  let accessLog = previous.accessLog;
  return prepareAll([
    async () => {
      if (config.access_log === previous.config.access_log && config.access_log_format === previous.config.access_log_format) return step([]);
      const created = openAccessLog(config, log);
      if (typeof created === 'string') return step([created]);
      accessLog = created;
      return { problems: [], commit: async () => {}, rollback: () => created.close() };
    },
    ...listeners.prepare(config),
    () => certFiles.prepare(certFileSettings(config)).then((files) => step(files.problems, files.commit)),
    async () => step(acme.changes(config) ? await acmeProblems(config, log) : []),
    // Applied last, once the listeners and certificates above are committed.
    async () =>
      step([], async () => {
        warnPartial(parts, config, previous.config);
        peers.setPeers(config.challenges.peers);
        const retireUpstreams = await upstreams.reload(config);
        swap(accessLog);
        listeners.applyLimits(config.limits);
        certificates.setUnknownSni(config.tls.unknown_sni);
        await acme.reload(config);
        await retireUpstreams();
        if (accessLog !== previous.accessLog) await previous.accessLog.close();
        else accessLog.reopen();
        log.info('reloaded', { source: config.source });
      }),
  ]);
}

/** Settings a reload cannot apply to what is already running. */
function warnPartial({ log, listeners, metricsSkipped }: ReloadParts, config: Config, previous: Config): void {
  if (config.admin && metricsSkipped) {
    log.warn('reload_partial', { key: 'admin', message: 'metrics are recorded only when admin is set at start: /metrics answers 503 until a restart' });
  }
  if (config.tls.http2 !== previous.tls.http2 && listeners.https.listeners.length > 0) {
    log.warn('reload_partial', { key: 'tls.http2', message: 'applies to https addresses bound from now on; restart to change the bound ones' });
  }
}

/** The access log a reload switches to, or why it cannot be opened. */
function openAccessLog(config: Config, log: EventLog): AccessLog | string {
  try {
    return createAccessLog(config.access_log, config.access_log_format, log);
  } catch (err) {
    return `access_log: cannot open ${config.access_log}: ${errnoText(err)}`;
  }
}
