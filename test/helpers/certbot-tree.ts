// A certbot directory as certbot lays it out: archive/<name>/{cert,chain,fullchain,privkey}N.pem
// and live/<name>/*.pem symlinks pointing at the current N (relative, "../../archive/...").
// A renewal writes N+1 and flips the links one by one, in certbot's order.

import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestCert } from './certs.ts';

const KINDS = ['cert', 'privkey', 'chain', 'fullchain'] as const;

export function certbotTree(root: string) {
  mkdirSync(join(root, 'live'), { recursive: true });
  mkdirSync(join(root, 'archive'), { recursive: true });
  writeFileSync(join(root, 'live', 'README'), 'This directory contains your keys and certificates.\n');
  const versions = new Map<string, number>();
  return {
    root,
    /** Writes version N+1 of a lineage into archive/ and points live/ at it. */
    issue(name: string, cert: TestCert, pem: { cert?: string; key?: string } = {}): number {
      const n = (versions.get(name) ?? 0) + 1;
      versions.set(name, n);
      const archive = join(root, 'archive', name);
      const live = join(root, 'live', name);
      mkdirSync(archive, { recursive: true });
      mkdirSync(live, { recursive: true });
      const chain = pem.cert ?? cert.cert;
      const leafEnd = chain.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----\n'.length;
      writeFileSync(join(archive, `cert${n}.pem`), chain.slice(0, leafEnd));
      writeFileSync(join(archive, `chain${n}.pem`), chain.slice(leafEnd));
      writeFileSync(join(archive, `fullchain${n}.pem`), chain);
      writeFileSync(join(archive, `privkey${n}.pem`), pem.key ?? cert.key, { mode: 0o600 });
      for (const kind of KINDS) {
        const link = join(live, `${kind}.pem`);
        const tmp = `${link}.new`;
        symlinkSync(join('..', '..', 'archive', name, `${kind}${n}.pem`), tmp);
        renameSync(tmp, link);
      }
      return n;
    },
  };
}
