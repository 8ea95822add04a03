// Faults of the certificate side, against a real opam-edge process ordering from Pebble:
//   ACME server down during a renewal   the old certificate serves, acme_order_failed, back-off (~1 min)
//   disk full during a renewal          (a 1 MiB tmpfs filled up) the same, and the renewal passes once space is back
//   read-only storage during a renewal  (the tmpfs remounted ro) the same
//   kill -9 at random points of a renewal, and of a config reload: on restart a valid pair
//   serves, the stored `current` pair is sound, and the config in force is whole.
// The tmpfs needs root: without it the disk parts skip loudly (and fail under CI).
// Reproduce the kill points: OPAM_EDGE_KILL_SEED=<seed printed by the run>.

import { after, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { startEdgeProcess, tempDir } from '../helpers/edge-process.ts';
import type { EdgeProcess } from '../helpers/edge-process.ts';
import { requirePebble, startChallTestSrv, startPebble } from '../helpers/pebble.ts';
import { freePort } from '../helpers/ports.ts';
import type { Pebble } from '../helpers/pebble.ts';
import { serialFor } from '../helpers/tls-client.ts';
import { startOrigin } from '../helpers/origin.ts';
import { inspectPair } from '../../src/acme/storage.ts';
import { agent, get } from './lib/client.ts';
import { rng } from './lib/mutate.ts';
import { recordFigures } from './lib/figures.ts';

const NAME = 'opam.test';
const KILL_SEED = Number(process.env.OPAM_EDGE_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));

type Fault = { name: string; expected: string; got: string; ok: boolean };
const faults: Fault[] = [];
const record = (name: string, expected: string, got: string, ok: boolean) => faults.push({ name, expected, got, ok });

type Acme = {
  dir: string;
  storage: string;
  pebble: Pebble;
  config: Record<string, unknown>;
  edge: EdgeProcess;
  start(): Promise<EdgeProcess>;
  serial(): Promise<string>;
  renew(): Promise<void>;
};

async function acmeEdge(t: TestContext, options: { tmpfs?: boolean } = {}): Promise<Acme | null> {
  if (!requirePebble(t)) return null;
  const dir = tempDir('opam-edge-acme-faults-');
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const storage = join(dir, 'storage');
  mkdirSync(storage);
  if (options.tmpfs) {
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', storage], { encoding: 'utf8' });
    if (mount.status !== 0) throw new Error(`mount tmpfs: ${mount.stderr}`);
    cleanups.push(() => void spawnSync('umount', ['-l', storage]));
  }
  const dns = await startChallTestSrv();
  cleanups.push(() => dns.stop());
  await dns.addA(NAME, ['127.0.0.1']);
  const httpPort = await freePort();
  const pebble = await startPebble({ dir, httpPort, dnsServer: dns.dns });
  cleanups.push(() => pebble.stop());
  const origin = await startOrigin();
  cleanups.push(() => origin.close());
  const config: Record<string, unknown> = {
    listen: { http: [`127.0.0.1:${httpPort}`], https: ['127.0.0.1:0'] },
    admin: '127.0.0.1:0',
    admin_writes: 'open', // POST /renew/NAME without a token (admin/admin-auth.ts)
    access_log: 'off',
    // The reload rounds add host names without certificates of their own.
    tls: { unknown_sni: 'default' },
    acme: { directory: pebble.directory, ca_bundle: pebble.caBundlePath, storage, names: [NAME], email: 'ops@example.org' },
    sites: [{ hosts: [NAME], upstream: `http://127.0.0.1:${origin.port}` }],
  };
  const acme: Acme = {
    dir,
    storage,
    pebble,
    config,
    edge: null as unknown as EdgeProcess,
    async start() {
      const edge = await startEdgeProcess(config, { dir });
      cleanups.push(() => edge.stop());
      acme.edge = edge;
      return edge;
    },
    serial: () => serialFor(acme.edge.ports.https![0]!, NAME),
    async renew() {
      const res = await request(`http://127.0.0.1:${acme.edge.ports.admin![0]}/renew/${NAME}`, { method: 'POST' });
      await res.body.dump();
      assert.equal(res.statusCode, 202);
    },
  };
  const edge = await acme.start();
  await edge.waitForEvent((e) => e.event === 'acme_certificate_issued', 30_000);
  return acme;
}

/** The failure of a forced renewal: the event, the serial still served, the back-off. */
async function failedRenewal(acme: Acme, label: string, reasonPattern: RegExp): Promise<void> {
  const before = await acme.serial();
  const since = acme.edge.events.length;
  await acme.renew();
  const failed = await acme.edge.waitForEvent((e) => e.event === 'acme_order_failed' && acme.edge.events.indexOf(e) >= since, 60_000);
  const serving = await acme.serial();
  const waitMs = Date.parse(String(failed.next_attempt)) - Date.parse(String(failed.time));
  const ok = serving === before && reasonPattern.test(String(failed.reason)) && waitMs >= 50_000 && waitMs <= 70_000;
  record(label, 'old certificate kept, error in events, next attempt in ~1 min', `serial ${serving === before ? 'unchanged' : 'CHANGED'}; acme_order_failed "${String(failed.reason).slice(0, 90)}"; next attempt in ${Math.round(waitMs / 1000)} s`, ok);
  assert.equal(serving, before, 'the working certificate keeps serving');
  assert.match(String(failed.reason), reasonPattern);
  assert.ok(waitMs >= 50_000 && waitMs <= 70_000, `back-off of ${waitMs} ms`);
  assert.equal(failed.failures, 1);
}

async function passingRenewal(acme: Acme): Promise<string> {
  const before = await acme.serial();
  const since = acme.edge.events.length;
  await acme.renew();
  const issued = await acme.edge.waitForEvent((e) => e.event === 'acme_certificate_issued' && acme.edge.events.indexOf(e) >= since, 60_000);
  const serving = await acme.serial();
  assert.equal(serving, String(issued.serial));
  assert.notEqual(serving, before);
  return serving;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function requireRoot(t: TestContext): boolean {
  if (isRoot()) return true;
  const message = 'mounting a tmpfs for the disk-full and read-only cases needs root';
  if (process.env.CI) throw new Error(`${message}: CI runs as root`);
  process.stderr.write(`\n*** SKIPPED: ${t.name}: ${message} ***\n`);
  t.skip(message);
  return false;
}

test('ACME server down during a renewal: the old certificate serves, the error is logged, the schedule backs off', { timeout: 180_000 }, async (t) => {
  const acme = await acmeEdge(t);
  if (!acme) return;
  await acme.pebble.stop();
  await failedRenewal(acme, 'ACME server down during renewal', /ECONNREFUSED|fetch failed|connect/i);
  await acme.pebble.start();
  await passingRenewal(acme);
});

test('disk full, then read-only storage, during a renewal: the old certificate serves, the error is logged, the schedule backs off', { timeout: 180_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const acme = await acmeEdge(t, { tmpfs: true });
  if (!acme) return;
  // Fill the 1 MiB tmpfs.
  spawnSync('dd', ['if=/dev/zero', `of=${join(acme.storage, 'filler')}`, 'bs=4k'], { stdio: 'ignore' });
  await failedRenewal(acme, 'disk full during renewal (1 MiB tmpfs)', /ENOSPC/);
  rmSync(join(acme.storage, 'filler'));
  await passingRenewal(acme);
  await remount(acme.storage, 'ro');
  // The failure count starts over after the success above, so the back-off is the first step again.
  await failedRenewal(acme, 'read-only storage during renewal', /EROFS/);
  await remount(acme.storage, 'rw');
  await passingRenewal(acme);
});

/**
 * Remounts the test's tmpfs. The renewer saves its state just after it logs the issue, and a
 * file open for writing makes a read-only remount fail with "mount point is busy": retry
 * briefly rather than race that write.
 */
async function remount(dir: string, mode: 'ro' | 'rw'): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = spawnSync('mount', ['-o', `remount,${mode}`, dir], { encoding: 'utf8' });
    if (r.status === 0) return;
    if (Date.now() > deadline || !/busy/i.test(r.stderr)) assert.fail(`remount,${mode} ${dir}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** The stored current pair is sound and names NAME. */
function currentPair(storage: string): { serial: string } {
  const dir = join(storage, 'certificates', NAME);
  const version = readlinkSync(join(dir, 'current'));
  const cert = readFileSync(join(dir, version, 'fullchain.pem'), 'utf8');
  const key = readFileSync(join(dir, version, 'privkey.pem'), 'utf8');
  return inspectPair(cert, key, NAME);
}

test('kill -9 at random points of a renewal and of a config reload: on restart a valid pair serves and the config is whole', { timeout: 300_000 }, async (t) => {
  const acme = await acmeEdge(t);
  if (!acme) return;
  process.stderr.write(`\nkill seed: ${KILL_SEED} (OPAM_EDGE_KILL_SEED=${KILL_SEED} replays the kill points)\n`);
  t.diagnostic(`kill seed ${KILL_SEED}`);
  const r = rng(KILL_SEED);
  const serials = new Set([await acme.serial()]);
  const h1 = agent(false);
  t.after(() => h1.close());
  const restart = async () => {
    const edge = await acme.start();
    await edge.waitForEvent((e) => e.event === 'acme_started', 30_000);
    return edge;
  };
  let renewalKills = 0;
  let midOrder = 0;
  let served = 0;
  for (let round = 0; round < 6; round++) {
    const delay = r.int(400);
    const since = acme.edge.events.length;
    await acme.renew();
    await new Promise((res) => setTimeout(res, delay));
    acme.edge.child.kill('SIGKILL');
    if (!acme.edge.events.slice(since).some((e) => e.event === 'acme_certificate_issued')) midOrder++;
    await acme.edge.exited;
    renewalKills++;
    const stored = currentPair(acme.storage);
    await restart();
    // Whatever the kill interrupted, a sound pair serves at once (the stored one, or a new
    // order's if the restart found none valid).
    const serial = await acme.serial();
    serials.add(stored.serial);
    assert.ok(serials.has(serial) || acme.edge.events.some((e) => e.event === 'acme_certificate_issued' && e.serial === serial), `serial ${serial} is neither stored nor newly issued`);
    const got = await get(h1, acme.edge.ports.https![0]!, NAME, '/');
    assert.equal(got.status, 200);
    served++;
  }
  record('kill -9 at random points of a renewal', 'restart: a valid pair serves, the stored pair is sound', `${renewalKills} kills (${midOrder} before the new certificate was stored), ${served} restarts served with a sound pair`, served === renewalKills);

  let reloadKills = 0;
  let whole = 0;
  for (let round = 0; round < 6; round++) {
    const host = `reload-${round}.test`;
    const sites = [...(acme.config.sites as { hosts: string[]; upstream: string }[])];
    sites[0] = { ...sites[0]!, hosts: [NAME, host] };
    acme.config.sites = sites;
    // The operator's side: the new file is written whole (temporary file + rename).
    const tmp = join(acme.dir, 'config.yaml.tmp');
    writeFileSync(tmp, stringify(acme.config));
    renameSync(tmp, join(acme.dir, 'config.yaml'));
    acme.edge.signal('SIGHUP');
    await new Promise((res) => setTimeout(res, r.int(60)));
    acme.edge.child.kill('SIGKILL');
    await acme.edge.exited;
    reloadKills++;
    await restart();
    const got = await get(h1, acme.edge.ports.https![0]!, host, '/');
    const pair = currentPair(acme.storage);
    if (got.status === 200 && pair.serial) whole++;
    assert.equal(got.status, 200, `the restarted edge serves the reloaded config (${host})`);
  }
  record('kill -9 at random points of a config reload', 'restart: the new config in force, a valid pair serves', `${reloadKills} kills, ${whole} restarts with the whole config`, whole === reloadKills);
});

// The run's figures (lib/figures.ts) are written once every test has run: a report, not a test.
after(() => {
  recordFigures('faults-acme', {
    title: 'Faults on the certificate side (Pebble)',
    by: 'npm run test:hardening (faults-acme.hardening.ts)',
    rows: [
      ['faults survived', `${faults.filter((f) => f.ok).length} of ${faults.length}`],
      ['kill seed', KILL_SEED],
      ...faults.map((f) => [`${f.ok ? '✓' : '✗'} ${f.name} (expected: ${f.expected})`, f.got] as [string, string]),
    ],
  });
});
