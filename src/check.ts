// `opam-edge check`: everything start-up would refuse, reported at once, without binding
// a port. Exit 0 and "ok", or exit 1 and one "path: message" line per problem.

import { readFile } from 'node:fs/promises';
import { loadConfigFile } from './config.ts';
import type { Config } from './config.ts';
import { silentLog } from './log.ts';
import { CertStore } from './tls/cert-store.ts';
import { CertificateFiles, certFileSettings } from './tls/cert-files.ts';
import { checkUpstreamNames } from './upstream/resolver.ts';
import { AcmeTransport } from './acme/transport.ts';

/** A deeper check of a valid config (certificate pairs, upstream names, ACME directory). */
export type ConfigCheck = (config: Config) => Promise<string[]>;

/** Every `tls.certificates` pair loads (parses, key matches, valid now) and `tls.certbot` can be read. */
export const checkCertificates: ConfigCheck = async (config) => {
  const store = new CertStore({ unknownSni: config.tls.unknown_sni });
  return new CertificateFiles({ store, log: silentLog }).load(certFileSettings(config));
};

const DIRECTORY_TIMEOUT_MS = 10_000;

/**
 * acme.ca_bundle must be readable; with acme.profile set, the directory must be reachable
 * and list that profile (a CA ignores or refuses a profile it does not offer).
 */
export const checkAcme: ConfigCheck = async (config) => {
  const acme = config.acme;
  if (!acme) return [];
  const problems: string[] = [];
  let caBundle: string | null = null;
  if (acme.ca_bundle) {
    try {
      caBundle = await readFile(acme.ca_bundle, 'utf8');
      if (!caBundle.includes('-----BEGIN CERTIFICATE-----')) problems.push(`acme.ca_bundle: ${acme.ca_bundle} holds no PEM certificate`);
    } catch (err) {
      problems.push(`acme.ca_bundle: cannot read ${acme.ca_bundle} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  if (acme.profile === null) return problems;
  const transport = new AcmeTransport({ caBundle, requestTimeoutMs: DIRECTORY_TIMEOUT_MS });
  try {
    const res = await transport.getJson(acme.directory, AbortSignal.timeout(DIRECTORY_TIMEOUT_MS));
    const profiles = (res.data as { meta?: { profiles?: unknown } } | null)?.meta?.profiles;
    if (res.status !== 200 || typeof res.data !== 'object' || res.data === null) {
      problems.push(`acme.directory: ${acme.directory} answered HTTP ${res.status}, not an ACME directory`);
    } else if (typeof profiles !== 'object' || profiles === null || !(acme.profile in profiles)) {
      const offered = typeof profiles === 'object' && profiles !== null ? Object.keys(profiles) : [];
      problems.push(`acme.profile: "${acme.profile}" is not offered by ${acme.directory} (offered: ${offered.length > 0 ? offered.join(', ') : 'none'})`);
    }
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no answer in ${DIRECTORY_TIMEOUT_MS / 1000} s` : (err as Error).message;
    problems.push(`acme.directory: cannot fetch ${acme.directory} to check acme.profile (${reason})`);
  } finally {
    await transport.close();
  }
  return problems;
};

const checks: ConfigCheck[] = [
  checkCertificates,
  checkAcme,
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
