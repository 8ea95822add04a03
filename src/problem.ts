// One thing wrong with a config, named the way an operator finds it: the key path and the
// line of the file it was written on. `check`, start-up and reload report these and print
// them the same way: "tls.certificates[0].cert (line 7): cannot read /x/y.pem: no such file".

import { configLine, formatPath } from './config.ts';
import type { Config } from './config.ts';

export type Problem = {
  /** "tls.certificates[0].cert", "sites[1].upstream", "(root)". */
  readonly path: string;
  /** 1-based; absent for a default value or a config that did not come from a file. */
  readonly line?: number;
  readonly message: string;
};

/** What a check found: problems refuse the config; warnings are listed and let it pass. */
export type CheckResult = { problems: Problem[]; warnings: Problem[] };

/** "path (line N): message", or "path: message" without a line; `tag` goes before the message ("warning: "). */
export function formatProblem(problem: Problem, tag = ''): string {
  return `${problem.path}${problem.line === undefined ? '' : ` (line ${problem.line})`}: ${tag}${problem.message}`;
}

/** Collects problems and warnings about one config, each located by its key path. */
export class Findings {
  readonly problems: Problem[] = [];
  readonly warnings: Problem[] = [];
  readonly #config: Config;

  constructor(config: Config) {
    this.#config = config;
  }

  problem(path: readonly PropertyKey[], message: string): void {
    this.problems.push(this.#at(path, message));
  }

  warning(path: readonly PropertyKey[], message: string): void {
    this.warnings.push(this.#at(path, message));
  }

  #at(path: readonly PropertyKey[], message: string): Problem {
    const line = configLine(this.#config, path);
    return line === undefined ? { path: formatPath(path), message } : { path: formatPath(path), line, message };
  }
}
