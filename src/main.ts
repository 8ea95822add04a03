// The process: load the config, start the edge (or, with `workers` > 1, a cluster primary
// whose workers run the edges), and turn signals into reload and stop.
//   SIGHUP           reload config and certificates, all or nothing (edge.ts, edge-reload.ts, reload.ts)
//   SIGTERM, SIGINT  graceful stop (stop accepting, finish in flight, up to 30 s), exit 0
//   SIGUSR1          reopen the access log file (after logrotate), as nginx does

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigFile } from './config.ts';
import type { Config } from './config.ts';
import { createEventLog } from './log.ts';
import type { EventLog } from './log.ts';
import { Edge, DEFAULT_GRACE_MS } from './edge.ts';
import { demoAvailable, startDemo } from './demo.ts';
import { Cluster } from './cluster.ts';
import { checkConfig } from './check.ts';
import { formatProblem } from './problem.ts';

/** What signals act on: one Edge, or a cluster primary and its workers. */
type Runtime = {
  reload(config: Config, checked: readonly string[]): Promise<void>;
  stop(graceMs: number): Promise<void>;
  reopenLogs(): void;
};

function single(edge: Edge): Runtime {
  return { reload: async (config, checked) => void (await edge.reload(config, checked)), stop: (grace) => edge.stop(grace), reopenLogs: () => edge.reopenLogs() };
}

/** $OPAM_EDGE_CONFIG, else ./opam-edge.yaml when it exists, else null (the local demo). */
export function defaultConfigPath(): string | null {
  if (process.env.OPAM_EDGE_CONFIG) return process.env.OPAM_EDGE_CONFIG;
  const local = resolve('opam-edge.yaml');
  return existsSync(local) ? local : null;
}

/** Runs until SIGTERM/SIGINT. Resolves with the process exit code. */
export async function run(configPath: string | null): Promise<number> {
  const log = createEventLog();
  // Handlers go in first: a signal that arrives while starting must not find the default
  // action (which kills the process). A stop asked for then happens once started.
  let edge: Runtime | null = null;
  let stopDemo: (() => Promise<void>) | null = null;
  let stopRequested = false;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));
  let reloading: Promise<void> = Promise.resolve();
  const stop = (running: Runtime) => {
    running
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
  const onHup = () => {
    if (edge === null || stopRequested) {
      log.warn('reload_refused', { code: 'RELOAD_REFUSED', problems: [edge === null ? 'still starting' : 'stopping'] });
    } else if (configPath === null) {
      log.warn('reload_refused', { code: 'RELOAD_REFUSED', problems: ['the demo has no config file to reload'] });
    } else {
      const running = edge;
      // Prepared steps do not fail on commit; should one all the same, the process carries on.
      reloading = reloading.then(() => reload(running, configPath, log)).catch((err: unknown) => log.error('reload_failed', { error: String(err) }));
    }
  };
  const onUsr1 = () => edge?.reopenLogs();
  const onStop = (signal: NodeJS.Signals) => {
    if (stopRequested) {
      log.warn('stop_immediate', { signal });
      process.exit(0);
    }
    stopRequested = true;
    log.info('signal', { signal });
    if (edge !== null) stop(edge);
  };
  process.on('SIGHUP', onHup);
  process.on('SIGUSR1', onUsr1);
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  const removeHandlers = () => {
    process.off('SIGHUP', onHup);
    process.off('SIGUSR1', onUsr1);
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
  };

  let config: Config;
  if (configPath === null && !demoAvailable()) {
    process.stderr.write('opam-edge: no config: pass --config FILE, set $OPAM_EDGE_CONFIG or create ./opam-edge.yaml (the local demo runs only from a source checkout)\n');
    removeHandlers();
    return 2;
  }
  if (configPath === null) {
    const demo = await startDemo(log);
    config = demo.config;
    stopDemo = demo.stop;
  } else {
    const loaded = await loadConfigFile(configPath);
    if (!loaded.ok) {
      process.stderr.write(`opam-edge: the configuration ${configPath} is invalid:\n${loaded.errors.map((e) => `  ${e}\n`).join('')}`);
      removeHandlers();
      return 1;
    }
    config = loaded.config;
    // The files it names, as `check` reports them (without network look-ups).
    const checked = await checkConfig(config, { resolve: false });
    for (const w of checked.warnings) log.warn('config_warning', { path: w.path, line: w.line, message: w.message });
    if (checked.problems.length > 0) {
      process.stderr.write(`opam-edge: the configuration ${configPath} is invalid:\n${checked.problems.map((p) => `  ${formatProblem(p)}\n`).join('')}`);
      removeHandlers();
      return 1;
    }
  }

  try {
    if (config.workers > 1 && configPath !== null) {
      edge = await Cluster.start(config, log);
    } else {
      const one = await Edge.start(config, { log });
      if (configPath === null) printDemoBanner(one, log);
      edge = single(one);
    }
  } catch (err) {
    process.stderr.write(`opam-edge: start-up failed: ${(err as Error).message}\n`);
    await stopDemo?.();
    removeHandlers();
    return 1;
  }
  if (stopRequested) stop(edge);
  const code = await exited;
  removeHandlers();
  return code;
}

/** Reads the file and hands it over; the runtime logs `reloaded` or `reload_refused` itself. */
async function reload(edge: Runtime, configPath: string, log: EventLog): Promise<void> {
  log.info('reload_requested', { source: configPath });
  const loaded = await loadConfigFile(configPath);
  if (!loaded.ok) {
    log.error('reload_refused', { code: 'CONFIG_INVALID', source: configPath, problems: loaded.errors });
    return;
  }
  // The checks start-up makes, with key paths and lines; the runtime adds what only
  // preparing finds (a listen address that does not bind) and refuses or applies it whole.
  const checked = await checkConfig(loaded.config, { resolve: false });
  for (const w of checked.warnings) log.warn('config_warning', { path: w.path, line: w.line, message: w.message });
  await edge.reload(loaded.config, checked.problems.map((p) => formatProblem(p)));
}

function printDemoBanner(edge: Edge, log: EventLog): void {
  log.info('demo', {
    message: 'opam-edge local demo: no --config, $OPAM_EDGE_CONFIG or ./opam-edge.yaml, so it serves a bundled origin',
    try: ['curl -i http://localhost:8080/', 'curl -ik https://localhost:8443/'],
    http: edge.addresses.http,
    https: edge.addresses.https,
  });
}
