// The process: load the config, start the edge, and turn signals into reload and stop.
//   SIGHUP           reload config and certificates; an invalid config is refused, logged
//   SIGTERM, SIGINT  graceful stop (stop accepting, finish in flight, up to 30 s), exit 0
//   SIGUSR1          reopen the access log file (after logrotate), as nginx does

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigFile } from './config.ts';
import type { Config } from './config.ts';
import { createEventLog } from './log.ts';
import type { EventLog } from './log.ts';
import { Edge, DEFAULT_GRACE_MS } from './edge.ts';
import type { EdgeDeps } from './edge.ts';
import { startDemo } from './demo.ts';

/** $OPAM_EDGE_CONFIG, else ./opam-edge.yaml when it exists, else null (the local demo). */
export function defaultConfigPath(): string | null {
  if (process.env.OPAM_EDGE_CONFIG) return process.env.OPAM_EDGE_CONFIG;
  const local = resolve('opam-edge.yaml');
  return existsSync(local) ? local : null;
}

/**
 * Runs until SIGTERM/SIGINT. Resolves with the process exit code. `deps` lets a caller
 * supply parts of the edge (the certificate store that ACME fills).
 */
export async function run(configPath: string | null, deps: Pick<EdgeDeps, 'certificates'> = {}): Promise<number> {
  const log = createEventLog();
  let config: Config;
  let stopDemo: (() => Promise<void>) | null = null;
  if (configPath === null) {
    const demo = await startDemo(log);
    config = demo.config;
    stopDemo = demo.stop;
  } else {
    const loaded = await loadConfigFile(configPath);
    if (!loaded.ok) {
      process.stderr.write(`opam-edge: the configuration ${configPath} is invalid:\n${loaded.errors.map((e) => `  ${e}\n`).join('')}`);
      return 1;
    }
    config = loaded.config;
  }

  let edge: Edge;
  try {
    edge = await Edge.start(config, { log, ...deps });
  } catch (err) {
    process.stderr.write(`opam-edge: start-up failed: ${(err as Error).message}\n`);
    await stopDemo?.();
    return 1;
  }
  if (configPath === null) printDemoBanner(edge, log);

  return new Promise<number>((resolveExit) => {
    let reloading: Promise<void> = Promise.resolve();
    const onHup = () => {
      if (configPath === null) {
        log.warn('reload_refused', { reason: 'the demo has no config file to reload' });
        return;
      }
      reloading = reloading.then(() => reload(edge, configPath, log));
    };
    const onUsr1 = () => edge.reopenLogs();
    let stopping = false;
    const onStop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn('stop_immediate', { signal });
        process.exit(0);
      }
      stopping = true;
      log.info('signal', { signal });
      edge
        .stop(DEFAULT_GRACE_MS)
        .then(() => stopDemo?.())
        .then(
          () => resolveExit(0),
          (err) => {
            log.error('stop_failed', { error: String(err) });
            resolveExit(1);
          },
        );
    };
    process.on('SIGHUP', onHup);
    process.on('SIGUSR1', onUsr1);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}

async function reload(edge: Edge, configPath: string, log: EventLog): Promise<void> {
  log.info('reload_requested', { source: configPath });
  const loaded = await loadConfigFile(configPath);
  if (!loaded.ok) {
    log.error('reload_refused', { code: 'CONFIG_INVALID', source: configPath, errors: loaded.errors });
    return;
  }
  try {
    await edge.reload(loaded.config);
  } catch (err) {
    log.error('reload_refused', { source: configPath, error: (err as Error).message });
  }
}

function printDemoBanner(edge: Edge, log: EventLog): void {
  log.info('demo', {
    message: 'opam-edge local demo: no --config, $OPAM_EDGE_CONFIG or ./opam-edge.yaml, so it serves a bundled origin',
    try: ['curl -i http://localhost:8080/'],
    http: edge.addresses.http,
  });
}
