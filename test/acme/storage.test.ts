import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AcmeStorage, directorySlug } from '../../src/acme/storage.ts';
import { makeCA, makeCert } from '../helpers/certs.ts';
import type { TestCert } from '../helpers/certs.ts';
import { tempDir } from '../helpers/edge-process.ts';
import { memoryLog } from '../helpers/event-log.ts';

const WRITER = fileURLToPath(new URL('./fixtures/storage-writer.ts', import.meta.url));

async function pairs(dir: string, n: number): Promise<TestCert[]> {
  const ca = await makeCA(dir);
  const out: TestCert[] = [];
  for (let i = 0; i < n; i++) out.push(await makeCert({ names: ['opam.test'], dir, stem: `p${i}`, ca, keyType: i % 2 ? 'rsa' : 'ec' }));
  return out;
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

test('an issuance is stored in its own version directory and `current` points to it', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [a, b] = await pairs(dir, 2);
  const storage = new AcmeStorage(join(dir, 'store'));
  await storage.init();
  assert.equal(await storage.loadCertificate('opam.test'), null);

  const first = await storage.saveCertificate('opam.test', a!.cert, a!.key);
  assert.equal(first.serial, a!.serial);
  const second = await storage.saveCertificate('opam.test', b!.cert, b!.key);
  const nameDir = join(dir, 'store', 'certificates', 'opam.test');
  assert.ok(lstatSync(join(nameDir, 'current')).isSymbolicLink());
  assert.equal(readlinkSync(join(nameDir, 'current')), second.version);
  assert.equal(mode(join(dir, 'store')), 0o700);
  assert.equal(mode(nameDir), 0o700);
  assert.equal(mode(join(nameDir, second.version)), 0o700);
  assert.equal(mode(join(nameDir, second.version, 'privkey.pem')), 0o600);
  assert.equal(mode(join(nameDir, second.version, 'fullchain.pem')), 0o644);

  const loaded = await new AcmeStorage(join(dir, 'store')).loadCertificate('opam.test');
  assert.equal(loaded?.serial, b!.serial);
  assert.equal(loaded?.version, second.version);
  assert.equal(loaded?.notAfter.getTime(), Math.floor(b!.notAfter.getTime() / 1000) * 1000);
});

test('a pair that does not match, or names another host, is refused before anything is written', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [a, b] = await pairs(dir, 2);
  const other = await makeCert({ names: ['other.test'], dir, stem: 'other' });
  const storage = new AcmeStorage(join(dir, 'store'));
  await storage.init();
  await assert.rejects(storage.saveCertificate('opam.test', a!.cert, b!.key), /does not match/);
  await assert.rejects(storage.saveCertificate('opam.test', other.cert, other.key), /does not name opam\.test/);
  await assert.rejects(storage.saveCertificate('../etc', a!.cert, a!.key), /not a storable name/);
  assert.equal(await storage.loadCertificate('opam.test'), null);
});

test('a broken current version is skipped for the newest sound one; leftovers are removed', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [a, b] = await pairs(dir, 2);
  const log = memoryLog();
  const storage = new AcmeStorage(join(dir, 'store'), log);
  await storage.init();
  const good = await storage.saveCertificate('opam.test', a!.cert, a!.key);
  const bad = await storage.saveCertificate('opam.test', b!.cert, b!.key);
  const nameDir = join(dir, 'store', 'certificates', 'opam.test');
  // Something outside opam-edge damaged the current key.
  writeFileSync(join(nameDir, bad.version, 'privkey.pem'), a!.key === b!.key ? '' : readFileSync(a!.keyPath));
  mkdirSync(join(nameDir, '.tmp-deadbeef'));
  writeFileSync(join(nameDir, '.tmp-deadbeef', 'fullchain.pem'), 'partial');

  const loaded = await storage.loadCertificate('opam.test');
  assert.equal(loaded?.version, good.version);
  assert.equal(loaded?.serial, a!.serial);
  assert.equal(log.named('acme_storage_skipped')[0]?.version, bad.version);
  assert.ok(!readdirSync(nameDir).includes('.tmp-deadbeef'));
});

test('only the three newest issuances are kept', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const list = await pairs(dir, 5);
  const storage = new AcmeStorage(join(dir, 'store'));
  await storage.init();
  const saved = [];
  for (const p of list) {
    saved.push(await storage.saveCertificate('opam.test', p.cert, p.key));
    await new Promise((r) => setTimeout(r, 2)); // version names have millisecond resolution
  }
  const nameDir = join(dir, 'store', 'certificates', 'opam.test');
  const versions = readdirSync(nameDir).filter((e) => e !== 'current').sort();
  assert.deepEqual(versions, saved.slice(-3).map((s) => s.version).sort());
  assert.equal(readlinkSync(join(nameDir, 'current')), saved.at(-1)!.version);
});

test('the account key is written once and kept; the renewal state round-trips', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const storage = new AcmeStorage(join(dir, 'store'));
  await storage.init();
  const directory = 'https://127.0.0.1:14000/dir';
  assert.equal(directorySlug(directory), '127.0.0.1_14000-dir');
  assert.equal(directorySlug('https://acme-v02.api.letsencrypt.org/directory'), 'acme-v02.api.letsencrypt.org-directory');
  assert.equal(await storage.loadAccount(directory), null);
  assert.equal(await storage.saveAccountKey(directory, 'KEY-1'), 'KEY-1');
  assert.equal(await storage.saveAccountKey(directory, 'KEY-2'), 'KEY-1');
  await storage.saveAccountUrl(directory, 'https://ca/acct/1', 'ops@example.org');
  assert.deepEqual(await storage.loadAccount(directory), { key: 'KEY-1', url: 'https://ca/acct/1' });
  assert.equal(mode(join(dir, 'store', 'accounts', '127.0.0.1_14000-dir', 'key.pem')), 0o600);
  // Another directory has its own account.
  assert.equal(await storage.loadAccount('https://other.example/dir'), null);

  assert.deepEqual(await storage.loadState(), { version: 1, names: {} });
  const state = { version: 1 as const, names: { 'opam.test': { failures: 2, next_attempt: '2026-01-01T00:00:00.000Z', last_attempt: null, last_success: null, last_error: 'x', ari: null } } };
  await storage.saveState(state);
  assert.deepEqual(await storage.loadState(), state);
  assert.equal(mode(join(dir, 'store', 'state.json')), 0o600);
  writeFileSync(join(dir, 'store', 'state.json'), '{"version":1,"names":');
  assert.deepEqual(await storage.loadState(), { version: 1, names: {} });
});

test('kill -9 at random moments while writing: `current` always holds a matching pair', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const list = await pairs(dir, 4);
  const pairsFile = join(dir, 'pairs.json');
  writeFileSync(pairsFile, JSON.stringify(list.map((p) => ({ cert: p.cert, key: p.key }))));
  const root = join(dir, 'store');
  const seed = new AcmeStorage(root);
  await seed.init();
  await seed.saveCertificate('opam.test', list[0]!.cert, list[0]!.key);
  await seed.saveState({ version: 1, names: {} });
  const serials = new Set(list.map((p) => p.serial));
  const nameDir = join(root, 'certificates', 'opam.test');

  const kills = 30;
  let totalSaves = 0;
  let midWrite = 0;
  for (let round = 0; round < kills; round++) {
    const child = spawn(process.execPath, [WRITER, root, pairsFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const ready = new Promise<void>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) resolve();
      });
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await ready;
    await new Promise((r) => setTimeout(r, 2 + Math.random() * 150));
    child.kill('SIGKILL');
    await exited;
    totalSaves += out.split('\n').filter((l) => l.startsWith('saved')).length;

    // Leftovers of an interrupted write show the kill landed inside one.
    if (readdirSync(nameDir).some((e) => e.startsWith('.')) || readdirSync(root).some((e) => e.endsWith('.tmp'))) midWrite++;
    // What a reader finds by following `current` directly, with no fallback.
    const target = readlinkSync(join(nameDir, 'current'));
    const cert = readFileSync(join(nameDir, target, 'fullchain.pem'), 'utf8');
    const key = readFileSync(join(nameDir, target, 'privkey.pem'), 'utf8');
    const leaf = new X509Certificate(cert);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(key)), `round ${round}: current (${target}) has a mismatched pair`);
    assert.ok(serials.has(leaf.serialNumber.toUpperCase()));
    const loaded = await new AcmeStorage(root).loadCertificate('opam.test');
    assert.equal(loaded?.version, target, `round ${round}: the reader did not take current`);
    // The state file is whole too (old or new), never half-written.
    assert.equal(JSON.parse(readFileSync(join(root, 'state.json'), 'utf8')).version, 1);
  }
  // The writer got through saves, and kills did land in the middle of writing.
  assert.ok(totalSaves > 0 && midWrite > 0, `${totalSaves} saves, ${midWrite} kills inside a write, in ${kills} runs`);
  t.diagnostic(`${totalSaves} saves; ${midWrite} of ${kills} kills landed inside a write`);
});
