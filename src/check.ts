// `opam-edge check`: everything start-up would refuse, reported at once, without binding
// a port. Exit 0 and "ok", or exit 1 and one "path: message" line per problem.

import { loadConfigFile } from './config.ts';
import type { Config } from './config.ts';
import { silentLog } from './log.ts';
import { CertStore } from './tls/cert-store.ts';
import { CertificateFiles } from './tls/cert-files.ts';
import { checkUpstreamNames } from './upstream/resolver.ts';

/** A deeper check of a valid config (certificate pairs, upstream names, ACME directory). */
export type ConfigCheck = (config: Config) => Promise<string[]>;

/** Every `tls.certificates` pair loads (parses, key matches, valid now) and `tls.certbot` can be read. */
export const checkCertificates: ConfigCheck = async (config) => {
  const store = new CertStore({ unknownSni: config.tls.unknown_sni });
  return new CertificateFiles({ store, log: silentLog }).load(config.tls);
};

const checks: ConfigCheck[] = [
  checkCertificates,
  // Upstream names resolve through the configured resolver (IP literals are not looked up).
  (config) => checkUpstreamNames(config.sites, config.resolver.servers),
];

export async function check(configPath: string | null): Promise<number> {
  if (configPath === null) {
    process.stderr.write('opam-edge check: no config file (--config FILE, $OPAM_EDGE_CONFIG or ./opam-edge.yaml)\n');
    return 2;
  }
  const loaded = await loadConfigFile(configPath);
  const problems = loaded.ok ? (await Promise.all(checks.map((c) => c(loaded.config)))).flat() : loaded.errors;
  if (problems.length > 0) {
    process.stdout.write(`${configPath}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n`);
    for (const problem of problems) process.stdout.write(`  ${problem}\n`);
    return 1;
  }
  process.stdout.write('ok\n');
  return 0;
}
