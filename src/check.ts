// `opam-edge check`, and the checks start-up and reload run on a config that passed the
// schema: files (check-files.ts), the ACME section, and (with `resolve`) the look-ups that
// depend on the network this runs from. A problem refuses the config; a warning is listed
// and lets it pass: an upstream name that resolves only inside the swarm network, a
// directory certbot creates later, a certificate close to its end.

import { loadConfigFile } from './config.ts';
import type { Config } from './config.ts';
import { Findings, formatProblem } from './problem.ts';
import type { CheckResult, Problem } from './problem.ts';
import { checkFiles } from './check-files.ts';
import { checkUpstreamNames } from './upstream/resolver.ts';
import { AcmeTransport } from './acme/transport.ts';
import { readCaBundle } from './acme/preflight.ts';

export type { Problem } from './problem.ts';

const DIRECTORY_TIMEOUT_MS = 10_000;

/**
 * Everything start-up would refuse (problems) and what an operator should know (warnings),
 * each with its key path and line. `resolve: true` (the `check` command) also looks up the
 * upstream names and, with acme.profile set, asks the ACME directory; start-up and reload
 * pass false: they must not wait on the network, and a name that does not resolve yet only
 * answers 503 until it does.
 */
export async function checkConfig(config: Config, options: { resolve: boolean }): Promise<CheckResult> {
  const found = new Findings(config);
  await checkFiles(config, found);
  await checkAcme(config, found, options);
  if (options.resolve) {
    // From the operator's host or CI, swarm service names do not resolve: a warning.
    // One warning per name, at the first site that uses it.
    const bySite = new Map<string, number[]>();
    for (const { site, message } of await checkUpstreamNames(config.sites, config.resolver.servers)) {
      bySite.set(message, [...(bySite.get(message) ?? []), site]);
    }
    for (const [message, [first, ...others]] of bySite) {
      const also = others.length > 0 ? ` (also the upstream of ${others.map((i) => `sites[${i}]`).join(', ')})` : '';
      found.warning(['sites', first!, 'upstream'], `${message}${also}`);
    }
  }
  if (config.listen.https.length > 0 && config.tls.certificates.length === 0 && config.tls.certbot === null && config.acme === null) {
    found.warning(['listen', 'https'], 'no tls.certificates, tls.certbot or acme: every TLS handshake will fail');
  }
  return { problems: byLine(found.problems), warnings: byLine(found.warnings) };
}

/** In file order; what has no line (defaults) last. */
function byLine(list: Problem[]): Problem[] {
  return list.map((p, i) => ({ p, i })).sort((a, b) => (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || a.i - b.i).map(({ p }) => p);
}

/**
 * acme.ca_bundle must be readable PEM. With acme.profile set and `resolve`, the directory
 * must list that profile (a CA ignores or refuses a profile it does not offer); a directory
 * that cannot be reached from here is a warning.
 */
async function checkAcme(config: Config, found: Findings, options: { resolve: boolean }): Promise<void> {
  const acme = config.acme;
  if (!acme) return;
  const bundle = await readCaBundle(acme);
  if ('message' in bundle) found.problem(['acme', 'ca_bundle'], bundle.message);
  const caBundle = 'caBundle' in bundle ? bundle.caBundle : null;
  if (acme.profile === null || !options.resolve) return;
  const transport = new AcmeTransport({ caBundle, requestTimeoutMs: DIRECTORY_TIMEOUT_MS });
  try {
    const res = await transport.getJson(acme.directory, AbortSignal.timeout(DIRECTORY_TIMEOUT_MS));
    const profiles = (res.data as { meta?: { profiles?: unknown } } | null)?.meta?.profiles;
    if (res.status !== 200 || typeof res.data !== 'object' || res.data === null) {
      found.problem(['acme', 'directory'], `${acme.directory} answered HTTP ${res.status}, not an ACME directory`);
    } else if (typeof profiles !== 'object' || profiles === null || !(acme.profile in profiles)) {
      const offered = typeof profiles === 'object' && profiles !== null ? Object.keys(profiles) : [];
      found.problem(['acme', 'profile'], `"${acme.profile}" is not offered by ${acme.directory} (offered: ${offered.length > 0 ? offered.join(', ') : 'none'})`);
    }
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no answer in ${DIRECTORY_TIMEOUT_MS / 1000} s` : (err as Error).message;
    found.warning(['acme', 'directory'], `cannot fetch ${acme.directory} from here to check acme.profile (${reason})`);
  } finally {
    await transport.close();
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * The `check` command: one "path (line N): message" line per problem, then per warning
 * (marked "warning:"), then a summary line. Exit 0 ("ok" or "ok, N warnings"), 1 with
 * problems (with --strict, warnings count as problems), 2 without a config file.
 */
export async function check(configPath: string | null, options: { strict: boolean } = { strict: false }): Promise<number> {
  if (configPath === null) {
    process.stderr.write('opam-edge check: no config file (--config FILE, $OPAM_EDGE_CONFIG or ./opam-edge.yaml)\n');
    return 2;
  }
  const loaded = await loadConfigFile(configPath);
  // Schema and YAML errors come formatted from the parser, with their lines.
  let lines = loaded.ok ? [] : loaded.errors;
  let warnings: string[] = [];
  let strictly = '';
  if (loaded.ok) {
    const result = await checkConfig(loaded.config, { resolve: true });
    lines = result.problems.map((p) => formatProblem(p));
    warnings = result.warnings.map((w) => formatProblem(w, 'warning: '));
    if (options.strict && warnings.length > 0) {
      lines = [...lines, ...result.warnings.map((w) => formatProblem(w))];
      warnings = [];
      strictly = ' (--strict: warnings are problems)';
    }
  }
  const summary =
    lines.length > 0
      ? `${configPath}: ${plural(lines.length, 'problem')}${warnings.length > 0 ? `, ${plural(warnings.length, 'warning')}` : ''}${strictly}`
      : `ok${warnings.length > 0 ? `, ${plural(warnings.length, 'warning')}` : ''}`;
  process.stdout.write([...lines, ...warnings, summary].map((l) => `${l}\n`).join(''));
  return lines.length > 0 ? 1 : 0;
}
