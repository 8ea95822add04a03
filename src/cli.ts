// argv -> run | check | status | --version | --help. Exit codes: 0 ok, 1 bad config or
// start-up failure, 2 usage. Each command imports its modules when it runs, so `status`
// (admin/status-command.ts) does not load the whole edge.

import { VERSION } from './version.ts';

const USAGE = `Usage:
  opam-edge [--config FILE]          run (FILE: $OPAM_EDGE_CONFIG, else ./opam-edge.yaml,
                                     else the built-in local demo)
  opam-edge check [--strict] [--config FILE]
                                     validate the config, its files and upstream names; exit 0
                                     "ok" (warnings listed, e.g. a name that does not resolve
                                     from here), or 1 with every problem listed as
                                     "path (line N): message"; --strict: warnings are problems
  opam-edge status [--config FILE]   the running node's health, certificates (days left, next
                                     renewal), upstream addresses and workers, from its admin
                                     listener; exit 0 ok/degraded, 1 failing or no answer
  opam-edge --version | --help
`;

export type Command =
  | { kind: 'run'; config: string | null }
  | { kind: 'check'; config: string | null; strict: boolean }
  | { kind: 'status'; argv: string[] }
  | { kind: 'version' }
  | { kind: 'help' }
  | { kind: 'usage'; error: string };

export function parseArgs(argv: readonly string[]): Command {
  let kind: 'run' | 'check' = 'run';
  let config: string | null = null;
  let strict = false;
  const args = [...argv];
  // status-command.ts reads its own arguments.
  if (args[0] === 'status') return { kind: 'status', argv: args.slice(1) };
  if (args[0] === 'check') {
    kind = 'check';
    args.shift();
  } else if (args[0] === 'run') {
    args.shift();
  }
  while (args.length > 0) {
    const arg = args.shift()!;
    if (arg === '--version' || arg === '-v') return { kind: 'version' };
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--strict' && kind === 'check') {
      strict = true;
      continue;
    }
    if (arg === '--config' || arg === '-c') {
      const value = args.shift();
      if (value === undefined || value === '') return { kind: 'usage', error: `${arg} needs a file` };
      config = value;
    } else if (arg.startsWith('--config=')) {
      config = arg.slice('--config='.length);
      if (config === '') return { kind: 'usage', error: '--config needs a file' };
    } else {
      return { kind: 'usage', error: `unknown argument "${arg}"` };
    }
  }
  return kind === 'check' ? { kind, config, strict } : { kind, config };
}

export function version(): string {
  return VERSION;
}

export async function main(): Promise<number> {
  const command = parseArgs(process.argv.slice(2));
  switch (command.kind) {
    case 'version':
      process.stdout.write(`opam-edge ${version()}\n`);
      return 0;
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'usage':
      process.stderr.write(`opam-edge: ${command.error}\n${USAGE}`);
      return 2;
    case 'status':
      return (await import('./admin/status-command.ts')).statusCommand(command.argv);
    case 'check': {
      const { check } = await import('./check.ts');
      const { defaultConfigPath } = await import('./main.ts');
      return check(command.config ?? defaultConfigPath(), { strict: command.strict });
    }
    case 'run': {
      // A cluster worker gets its config, parsed, from the primary: it never loads main.ts
      // (and with it the YAML parser and the config schema).
      const { isWorker, runWorker } = await import('./cluster.ts');
      if (isWorker) process.exit(await runWorker());
      const { run, defaultConfigPath } = await import('./main.ts');
      const code = await run(command.config ?? defaultConfigPath());
      // Stopped: whatever keep-alive handle is left must not hold the process open.
      process.exit(code);
    }
  }
}

/** Runs the command line and sets the exit code (the entry point of bin/ and `npm start`). */
export function cli(): void {
  main().then(
    (code) => {
      // run() resolves only once the process should end; check/version end here.
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`opam-edge: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

if (import.meta.main) cli();
