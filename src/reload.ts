// A reload is all or nothing, as nginx's `-s reload` tests the new config and keeps the old
// one: every step first prepares its part of the new config (reads and checks files, binds
// new listeners) without changing what serves; then either every step commits, in order,
// or every prepared step rolls back, and the running config stays exactly as it was.

/** One part of a reload, prepared. commit() must not fail: everything that can was done in prepare. */
export type PreparedStep = {
  problems: readonly string[];
  commit(): Promise<void>;
  rollback(): Promise<void>;
};

/** Prepares every step (each, even after one found problems: the operator gets them all). */
export async function prepareAll(steps: readonly (() => Promise<PreparedStep>)[]): Promise<PreparedStep> {
  const prepared: PreparedStep[] = [];
  for (const step of steps) prepared.push(await step().catch((err: unknown) => failed(String((err as Error)?.message ?? err))));
  return {
    problems: prepared.flatMap((p) => p.problems),
    async commit() {
      for (const p of prepared) await p.commit();
    },
    async rollback() {
      for (const p of prepared.reverse()) await p.rollback();
    },
  };
}

/** A step with nothing to undo (a check, or a change made only at commit). */
export function step(problems: readonly string[], commit: () => Promise<void> | void = () => {}): PreparedStep {
  return { problems, commit: async () => commit(), rollback: async () => {} };
}

function failed(problem: string): PreparedStep {
  return step([problem]);
}

/** The key path a problem starts with: "tls.certbot (line 3): ..." or "listen.https[1]: ...". */
function keyPath(problem: string): string {
  return /^[^\s:(]+/.exec(problem)?.[0] ?? problem;
}

/**
 * Every problem of a refused reload, once: the config check's (key path and line, as `check`
 * prints them) first, then those the prepared steps found about other keys (a listen address
 * that does not bind, the access log).
 */
export function reloadProblems(checked: readonly string[], prepared: readonly string[]): string[] {
  const seen = new Set(checked.map(keyPath));
  return [...new Set([...checked, ...prepared.filter((p) => !seen.has(keyPath(p)))])];
}
