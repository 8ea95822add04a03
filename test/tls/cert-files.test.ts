import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertStore } from '../../src/tls/cert-store.ts';
import { CertificateFiles, certFileSettings } from '../../src/tls/cert-files.ts';
import type { CertFileSettings } from '../../src/tls/cert-files.ts';
import { makeCert } from '../helpers/certs.ts';
import type { CertOptions } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { memoryLog } from '../helpers/event-log.ts';
import { certbotTree } from '../helpers/certbot-tree.ts';
import { until } from '../helpers/until.ts';

const DAY = 86_400_000;
const INTERVAL = 60;

function setup(t: TestContext, intervalMs = INTERVAL) {
  const dir = tempDir('opam-edge-files-');
  const log = memoryLog();
  const { events, named } = log;
  const store = new CertStore({ log });
  const files = new CertificateFiles({ store, log, intervalMs });
  t.after(() => {
    files.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  let n = 0;
  const cert = (names: string[], more: Partial<CertOptions> = {}) => makeCert({ names, dir, stem: `c${n++}`, ...more });
  const serials = () => store.certificates().map((c) => c.serial);
  return { dir, store, files, events, named, cert, serials };
}

/** Replaces a file the way `cp new old` does not: a new inode renamed over the old. */
function replaceAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

test('tls.certificates: problems name the key path, good pairs load', async (t) => {
  const { dir, files, cert, serials } = setup(t);
  const good = await cert(['good.test']);
  const other = await cert(['other.test']);
  const expired = await cert(['old.test'], { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) });
  const settings: CertFileSettings = {
    certificates: [
      { cert: good.certPath, key: good.keyPath },
      { cert: other.certPath, key: good.keyPath },
      { cert: expired.certPath, key: join(dir, 'missing.key') },
      { cert: expired.certPath, key: expired.keyPath },
      { cert: join(dir, 'missing.pem'), key: good.keyPath },
      { cert: good.certPath, key: good.keyPath },
    ],
    certbot: null,
  };
  const problems = await files.load(settings);
  assert.deepEqual(serials(), [good.serial]);
  assert.deepEqual(problems, [
    `tls.certificates[2].key: cannot read ${join(dir, 'missing.key')}: no such file`,
    `tls.certificates[3].cert: ${expired.certPath} is also tls.certificates[2].cert`,
    `tls.certificates[4].cert: cannot read ${join(dir, 'missing.pem')}: no such file`,
    `tls.certificates[5].cert: ${good.certPath} is also tls.certificates[0].cert`,
    `tls.certificates[1].key: ${good.keyPath}: does not match tls.certificates[1].cert`,
  ]);
  // The expired pair, listed once, is refused by the store with its reason.
  const alone = await files.load({ certificates: [{ cert: expired.certPath, key: expired.keyPath }], certbot: null });
  assert.equal(alone.length, 1);
  assert.match(alone[0]!, new RegExp(`^tls\\.certificates\\[0\\]\\.cert: ${expired.certPath}: expired on \\S+$`));
});

test('certbot layout: every live/<name> lineage loads through its symlinks into archive/', async (t) => {
  const { dir, files, cert, serials } = setup(t);
  const tree = certbotTree(join(dir, 'letsencrypt'));
  const a = await cert(['opam.ocaml.org', 'opam-4.ocaml.org']);
  const b = await cert(['staging.ocaml.org'], { keyType: 'rsa' });
  tree.issue('opam.ocaml.org', a);
  tree.issue('staging.ocaml.org', b);
  assert.equal(readlinkSync(join(tree.root, 'live', 'opam.ocaml.org', 'fullchain.pem')), '../../archive/opam.ocaml.org/fullchain1.pem');
  const problems = await files.load({ certificates: [], certbot: tree.root });
  assert.deepEqual(problems, []);
  assert.deepEqual(serials(), [a.serial, b.serial]);
  assert.equal(files instanceof CertificateFiles, true);
  const missing = await files.load({ certificates: [], certbot: join(dir, 'nowhere') });
  assert.deepEqual(missing, [
    `tls.certbot: cannot read ${join(dir, 'nowhere', 'live')}: no such file; nothing else provides a certificate (no acme, no tls.certificates)`,
  ]);
});

test('certbot directory missing while acme or tls.certificates can provide: a warning naming the key, picked up when it appears', async (t) => {
  const { dir, files, cert, serials, named } = setup(t);
  const root = join(dir, 'letsencrypt');
  const own = await cert(['own.test']);
  // A fresh host: the volume is not there yet; tls.certificates serves meanwhile.
  const settings = certFileSettings({ tls: { certificates: [{ cert: own.certPath, key: own.keyPath }], certbot: root }, acme: null });
  assert.equal(settings.certbotOptional, true);
  assert.deepEqual(await files.load(settings), []);
  assert.deepEqual(serials(), [own.serial]);
  const warning = named('certificate_dir_missing');
  assert.equal(warning.length, 1);
  assert.equal(warning[0]!.level, 'warn');
  assert.equal(warning[0]!.key, 'tls.certbot');
  assert.deepEqual(named('certificate_dir_unreadable'), []);
  // With acme set (no tls.certificates) it is optional too; with neither it is a problem.
  assert.equal(certFileSettings({ tls: { certificates: [], certbot: root }, acme: {} }).certbotOptional, true);
  assert.equal(certFileSettings({ tls: { certificates: [], certbot: root }, acme: null }).certbotOptional, false);
  // certbot's first run creates the directory: the watcher loads its lineage.
  files.start();
  const issued = await cert(['opam.ocaml.org']);
  certbotTree(root).issue('opam.ocaml.org', issued);
  await until(() => serials().includes(issued.serial), 5000, 'the new certbot lineage to be loaded');
  assert.deepEqual(serials().sort(), [own.serial, issued.serial].sort());
});

test('watcher: a certbot renewal (fullchain2.pem, links flipped) is picked up; new and deleted lineages too', async (t) => {
  const { dir, files, cert, serials, named } = setup(t);
  const tree = certbotTree(join(dir, 'letsencrypt'));
  const v1 = await cert(['opam.ocaml.org']);
  tree.issue('opam.ocaml.org', v1);
  await files.load({ certificates: [], certbot: tree.root });
  files.start();
  const v2 = await cert(['opam.ocaml.org']);
  assert.equal(tree.issue('opam.ocaml.org', v2), 2);
  await until(() => serials()[0] === v2.serial, 5000, 'the renewed certificate');
  assert.equal(named('certificate_loaded').at(-1)!.replaces, v1.serial);
  assert.ok(named('certificate_files_changed').length >= 1);
  const added = await cert(['new.ocaml.org']);
  tree.issue('new.ocaml.org', added);
  await until(() => serials().includes(added.serial), 5000, 'the new lineage');
  rmSync(join(tree.root, 'live', 'new.ocaml.org'), { recursive: true });
  await until(() => !serials().includes(added.serial), 5000, 'the deleted lineage to go');
  assert.deepEqual(named('certificate_removed').map((e) => e.serial), [added.serial]);
  assert.deepEqual(named('certificate_refused'), [], 'links flipped one by one never showed a half-renewed pair');
});

test('watcher: tls.certificates files replaced by rename or rewritten in place are picked up', async (t) => {
  const { files, cert, serials } = setup(t);
  const v1 = await cert(['f.test']);
  await files.load({ certificates: [{ cert: v1.certPath, key: v1.keyPath }], certbot: null });
  files.start();
  const v2 = await cert(['f.test']);
  replaceAtomically(v1.keyPath, v2.key);
  replaceAtomically(v1.certPath, v2.cert);
  await until(() => serials()[0] === v2.serial, 5000, 'the renamed pair');
  const v3 = await cert(['f.test']);
  writeFileSync(v1.keyPath, v3.key);
  writeFileSync(v1.certPath, v3.cert);
  await until(() => serials()[0] === v3.serial, 5000, 'the rewritten pair');
});

test('watcher: a broken replacement is refused and logged, the old certificate keeps serving, the fix is picked up', async (t) => {
  const { files, cert, serials, named } = setup(t);
  const good = await cert(['b.test']);
  const stranger = await cert(['stranger.test']);
  const expired = await cert(['b.test'], { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) });
  await files.load({ certificates: [{ cert: good.certPath, key: good.keyPath }], certbot: null });
  files.start();
  const original = { cert: good.cert, key: good.key };
  const broken: [string, { cert: string; key: string }, RegExp][] = [
    ['wrong key', { cert: good.cert, key: stranger.key }, /does not match/],
    ['truncated PEM', { cert: good.cert.slice(0, 200), key: good.key }, /truncated/],
    ['expired', { cert: expired.cert, key: expired.key }, /expired/],
  ];
  for (const [label, pem, reason] of broken) {
    const before = named('certificate_refused').length;
    replaceAtomically(good.keyPath, pem.key);
    replaceAtomically(good.certPath, pem.cert);
    // The two renames are not one step: a poll between them sees the new key with the old
    // certificate and refuses that pair too ("does not match"), so wait for this case's reason.
    const refusedFor = () => named('certificate_refused').slice(before).some((e) => reason.test(String(e.reason)));
    await until(refusedFor, 5000, `${label} to be refused`);
    assert.deepEqual(serials(), [good.serial], `${label}: the old certificate still serves`);
    // Put the good pair back before the next case.
    const loads = named('certificate_files_changed').length;
    replaceAtomically(good.keyPath, original.key);
    replaceAtomically(good.certPath, original.cert);
    await until(() => named('certificate_files_changed').length > loads, 5000, 'the good pair again');
  }
  const fixed = await cert(['b.test']);
  replaceAtomically(good.keyPath, fixed.key);
  replaceAtomically(good.certPath, fixed.cert);
  await until(() => serials()[0] === fixed.serial, 5000, 'the fixed pair');
});

test('watcher: a missing file or directory keeps what serves and the loop carries on', async (t) => {
  const { dir, files, cert, serials, named } = setup(t);
  const tree = certbotTree(join(dir, 'le'));
  const v1 = await cert(['gone.test']);
  tree.issue('gone.test', v1);
  await files.load({ certificates: [], certbot: tree.root });
  files.start();
  renameSync(join(tree.root, 'live'), join(tree.root, 'live.away'));
  await until(() => named('certificate_dir_unreadable').length > 0, 5000, 'the unreadable directory to be noticed');
  assert.deepEqual(serials(), [v1.serial]);
  renameSync(join(tree.root, 'live.away'), join(tree.root, 'live'));
  const v2 = await cert(['gone.test']);
  tree.issue('gone.test', v2);
  await until(() => serials()[0] === v2.serial, 5000, 'the renewal after the directory came back');
  // A lineage whose privkey.pem vanished keeps its last certificate.
  rmSync(join(tree.root, 'live', 'gone.test', 'privkey.pem'));
  await until(() => named('certificate_refused').some((e) => /cannot read .*privkey\.pem: no such file/.test(String(e.reason))), 5000, 'the missing key to be refused');
  assert.deepEqual(serials(), [v2.serial]);
});

test('reload() re-reads at once (SIGHUP); stop() stops polling', async (t) => {
  const { files, cert, serials } = setup(t, 60_000);
  const v1 = await cert(['h.test']);
  await files.load({ certificates: [{ cert: v1.certPath, key: v1.keyPath }], certbot: null });
  files.start();
  const v2 = await cert(['h.test']);
  writeFileSync(v1.keyPath, v2.key);
  writeFileSync(v1.certPath, v2.cert);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(serials(), [v1.serial], 'the poll is a minute away');
  assert.deepEqual(await files.reload(), []);
  assert.deepEqual(serials(), [v2.serial]);
  files.stop();
  files.stop();
  const v3 = await cert(['h.test']);
  writeFileSync(v1.keyPath, v3.key);
  writeFileSync(v1.certPath, v3.cert);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(serials(), [v2.serial]);
});
