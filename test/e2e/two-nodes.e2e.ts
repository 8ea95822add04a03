// The proof of issue 4: two opam-edge nodes behind round-robin DNS each obtain their own
// certificates from a real ACME CA (Pebble) over HTTP-01, the CA's validation requests
// land on whichever node DNS lists first, and the challenge peer forwarding makes them pass.
//
//   namespace CA: Pebble (httpPort 80) + pebble-challtestsrv as its DNS:
//                 opam.test -> A and B (A and AAAA records; the order is swapped to test both
//                 directions), a.test -> A, b.test -> B
//   namespace A:  opam-edge on [::]:80 / [::]:443, peers ["http://B"], acme names opam.test, a.test
//   namespace B:  the same, mirrored

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { tempDir } from '../helpers/edge-process.ts';
import { requirePebble, startChallTestSrv, startPebble } from '../helpers/pebble.ts';
import { requireTool } from '../helpers/tools.ts';
import type { ChallTestSrv, Pebble } from '../helpers/pebble.ts';
import { createTopology, sweepStale } from './helpers/netns.ts';
import type { Topology } from './helpers/netns.ts';
import { nodeProcess } from './helpers/node-process.ts';
import type { Event, NodeProcess } from './helpers/node-process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = join(ROOT, 'src/cli.ts');
const ADMIN_PORT = 9145;

type World = {
  topo: Topology;
  dir: string;
  dns: ChallTestSrv;
  pebble: Pebble;
  nodes: { a: NodeProcess; b: NodeProcess };
  originPort: number;
};

function canRun(t: TestContext): boolean {
  if (!requireTool(t, 'ip', 'iproute2') || !requirePebble(t)) return false;
  if (process.getuid?.() !== 0) {
    if (process.env.CI) throw new Error('CI is set and the two-node test needs root (ip netns)');
    process.stderr.write('\n*** SKIPPED: the two-node test needs root (ip netns) ***\n');
    t.skip('needs root');
    return false;
  }
  return true;
}

/** Issued events of one node for one name, from event index `from`. */
function issued(node: NodeProcess, name: string, from = 0): Event[] {
  return node.events.slice(from).filter((e) => e.event === 'acme_certificate_issued' && e.name === name);
}

function waitIssued(node: NodeProcess, name: string, from: number, timeoutMs = 60_000): Promise<Event> {
  return node.waitFor((e) => e.event === 'acme_certificate_issued' && e.name === name, timeoutMs, from);
}

/** The token of the HTTP-01 challenge a node passed for `name` (from `from`). */
async function tokenOf(node: NodeProcess, name: string, from: number): Promise<string> {
  const e = await node.waitFor((e) => e.event === 'acme_challenge_validated' && e.identifier === name, 60_000, from);
  return String(e.token);
}

function challengeLines(node: NodeProcess, token: string) {
  return node.access.filter((l) => l.request.startsWith(`GET /.well-known/acme-challenge/${token} `));
}

/** Waits for an access-log line (the log is flushed about once a second). */
async function waitChallengeLine(node: NodeProcess, token: string, match: (l: NodeProcess['access'][number]) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!challengeLines(node, token).some(match)) {
    if (Date.now() > deadline) assert.fail(`${what}; ${node.name}'s lines for the token: ${JSON.stringify(challengeLines(node, token))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The stored pair behind `current`: key matches, chain verifies up to Pebble's root. */
async function assertStored(world: World, node: 'a' | 'b', name: string): Promise<string> {
  const dir = join(world.dir, node, 'storage', 'certificates', name);
  const version = readlinkSync(join(dir, 'current'));
  const cert = readFileSync(join(dir, version, 'fullchain.pem'), 'utf8');
  const key = readFileSync(join(dir, version, 'privkey.pem'), 'utf8');
  const chain = (cert.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
  assert.ok(chain[0]!.checkPrivateKey(createPrivateKey(key)), `${node} ${name}: key matches`);
  assert.match(chain[0]!.subjectAltName ?? '', new RegExp(`DNS:${name.replace(/\./g, '\\.')}(,|$)`));
  // Pebble makes a new root on every start: the chain must end at one of them.
  chain.reduce((child, parent) => {
    assert.ok(child.verify(parent.publicKey), `${node} ${name}: ${child.subject} signed by ${parent.subject}`);
    return parent;
  });
  const roots = world.pebble.roots().map((pem) => new X509Certificate(pem));
  assert.ok(roots.some((root) => chain.at(-1)!.verify(root.publicKey)), `${node} ${name}: chains to a Pebble root`);
  return chain[0]!.serialNumber.toUpperCase();
}

async function renewNow(world: World, node: 'a' | 'b', name: string): Promise<void> {
  const res = await request(`http://${world.topo.v4[node]}:${ADMIN_PORT}/renew/${name}`, { method: 'POST' });
  const body = await res.body.text();
  assert.equal(res.statusCode, 202, body);
}

/**
 * Renews `name` on `node` until an order reaches `stage` (at most three orders); returns that
 * event and where its order's events start. Pebble can hand back a still-valid authorization
 * despite PEBBLE_AUTHZREUSE=0 (seen in CI: an order issued in 55 ms; an order killed after its
 * challenge was answered leaves one behind, validated after the kill), and such an order is
 * issued without a challenge.
 */
async function renewReaching(world: World, node: 'a' | 'b', name: string, stage: (e: Event) => boolean, st: TestContext): Promise<{ from: number; event: Event }> {
  const proc = world.nodes[node];
  for (let attempt = 1; ; attempt++) {
    const from = proc.events.length;
    await renewNow(world, node, name);
    const event = await proc.waitFor((e) => stage(e) || (e.event === 'acme_certificate_issued' && e.name === name), 60_000, from);
    if (stage(event)) return { from, event };
    assert.ok(attempt < 3, `${node}: an order of ${name} that reaches the stage in three attempts`);
    st.diagnostic('the renewal reused a valid authorization (no challenge): renewing again');
  }
}

async function setOpamOrder(world: World, first: 'a' | 'b'): Promise<void> {
  const second = first === 'a' ? 'b' : 'a';
  // challtestsrv appends to a name's records: clear them first.
  await world.dns.clearA('opam.test');
  await world.dns.clearAAAA('opam.test');
  await world.dns.addA('opam.test', [world.topo.v4[first], world.topo.v4[second]]);
  await world.dns.addAAAA('opam.test', [world.topo.v6[first], world.topo.v6[second]]);
}

function nodeConfig(world: Omit<World, 'nodes'>, node: 'a' | 'b') {
  const other = node === 'a' ? 'b' : 'a';
  return {
    listen: { http: ['[::]:80'], https: ['[::]:443'] },
    admin: `${world.topo.v4[node]}:${ADMIN_PORT}`,
    admin_writes: 'open', // POST /renew/NAME without a token (admin/admin-auth.ts)
    access_log: 'stdout',
    access_log_format: 'json',
    challenges: { peers: [`http://${world.topo.v4[other]}`] },
    acme: {
      directory: world.pebble.directory,
      ca_bundle: world.pebble.caBundlePath,
      storage: join(world.dir, node, 'storage'),
      email: 'ops@example.org',
      names: ['opam.test', `${node}.test`],
    },
    sites: [{ hosts: ['opam.test', `${node}.test`], upstream: `http://${world.topo.v4.host}:${world.originPort}` }],
  };
}

/** Every node serves https; the https checks below rely on it. */
function assertServesHttps(node: NodeProcess): void {
  assert.ok(node.events.some((e) => e.event === 'listening' && e.role === 'https'), 'the node logged an https listener');
}

/** HTTPS: the serial a node serves for `name` on a new TLS connection, checked against Pebble's root. */
async function servedSerial(world: World, node: 'a' | 'b', name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: world.topo.v4[node], port: 443, servername: name, ca: world.pebble.roots(), ALPNProtocols: ['http/1.1'] }, () => {
      const serial = socket.getPeerCertificate().serialNumber.toUpperCase();
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
  });
}

test('two nodes behind round-robin DNS obtain, renew and keep their certificates from Pebble', { timeout: 600_000 }, async (t) => {
  if (!canRun(t)) return;
  sweepStale();
  const topo = createTopology();
  const onExit = () => topo.destroy();
  process.once('exit', onExit);
  const dir = tempDir('opam-edge-e2e-');
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true }), () => topo.destroy()];
  t.after(async () => {
    process.off('exit', onExit);
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const dns = await startChallTestSrv({ host: topo.v4.ca, dnsPort: 8053, mgmtPort: 8055, wrap: topo.wrap('ca') });
  cleanups.push(() => dns.stop());
  const pebble = await startPebble({
    dir,
    host: topo.v4.ca,
    port: 14000,
    mgmtPort: 15000,
    httpPort: 80,
    dnsServer: `${topo.v4.ca}:8053`,
    wrap: topo.wrap('ca'),
    // Every order is validated (no reuse of an earlier valid authorization).
    env: { PEBBLE_AUTHZREUSE: '0' },
  });
  cleanups.push(() => pebble.stop());
  const origin = createServer((req, res) => res.end(`origin ${req.headers.host}\n`));
  await new Promise<void>((resolve) => origin.listen(0, topo.v4.host, resolve));
  cleanups.push(() => new Promise<void>((resolve) => origin.close(() => resolve())));
  const base = { topo, dir, dns, pebble, originPort: (origin.address() as AddressInfo).port };

  await setOpamOrder({ ...base, nodes: null as never }, 'a');
  await dns.addA('a.test', [topo.v4.a]);
  await dns.addAAAA('a.test', [topo.v6.a]);
  await dns.addA('b.test', [topo.v4.b]);
  await dns.addAAAA('b.test', [topo.v6.b]);

  const nodes = {
    a: nodeProcess({ name: 'a', dir: join(dir, 'a'), wrap: topo.wrap('a'), entry: ENTRY, config: nodeConfig(base, 'a') }),
    b: nodeProcess({ name: 'b', dir: join(dir, 'b'), wrap: topo.wrap('b'), entry: ENTRY, config: nodeConfig(base, 'b') }),
  };
  cleanups.push(() => nodes.a.stop(), () => nodes.b.stop());
  const world: World = { ...base, nodes };
  // A first: B's first order is validated at A (DNS lists A first), so A must be listening.
  // (Started together, B's first order can fail and be retried a minute later.)
  await nodes.a.start();
  await nodes.b.start();

  await t.test('both nodes obtain opam.test and their own name; B\'s opam.test validation passes through A', async (st) => {
    for (const [node, own] of [[nodes.a, 'a.test'], [nodes.b, 'b.test']] as const) {
      await waitIssued(node, 'opam.test', 0, 120_000);
      await waitIssued(node, own, 0, 120_000);
    }
    for (const e of [...nodes.a.events, ...nodes.b.events].filter((e) => e.event === 'acme_order_failed')) {
      st.diagnostic(`${e.node}: ${e.name} failed first (${e.reason}), retried at ${e.next_attempt}`);
    }
    for (const [node, own] of [['a', 'a.test'], ['b', 'b.test']] as const) {
      await assertStored(world, node, 'opam.test');
      await assertStored(world, node, own);
    }
    // DNS lists A first: Pebble asked A for B's token; A did not hold it and asked B.
    const tokenB = await tokenOf(nodes.b, 'opam.test', 0);
    await waitChallengeLine(nodes.a, tokenB, (l) => l.status === 200, 'A answered B\'s token');
    await waitChallengeLine(nodes.b, tokenB, (l) => l.status === 200 && (l.remote_addr === topo.v4.a || l.remote_addr === topo.v6.a), 'B was asked by A');
    // b.test has only B's addresses: validated at B directly.
    const tokenBOwn = await tokenOf(nodes.b, 'b.test', 0);
    await waitChallengeLine(nodes.b, tokenBOwn, (l) => l.status === 200 && (l.remote_addr === topo.v4.ca || l.remote_addr === topo.v6.ca), 'Pebble asked B directly');
    assert.equal(challengeLines(nodes.a, tokenBOwn).length, 0);
  });

  await t.test('DNS order swapped (B first): A\'s renewal of opam.test passes through B', async (st) => {
    await setOpamOrder(world, 'b');
    // A renewal without a challenge proves nothing about the path: renewReaching renews again.
    const { from, event } = await renewReaching(world, 'a', 'opam.test', (e) => e.event === 'acme_challenge_validated' && e.identifier === 'opam.test', st);
    const tokenA = String(event.token);
    await waitIssued(nodes.a, 'opam.test', from);
    await waitChallengeLine(nodes.b, tokenA, (l) => l.status === 200, 'B answered A\'s token');
    await waitChallengeLine(nodes.a, tokenA, (l) => l.status === 200 && (l.remote_addr === topo.v4.b || l.remote_addr === topo.v6.b), 'A was asked by B');
    await assertStored(world, 'a', 'opam.test');
  });

  await t.test('PEBBLE_WFE_NONCEREJECT=50: still issued on both nodes', async () => {
    await pebble.stop();
    await pebble.start({ PEBBLE_AUTHZREUSE: '0', PEBBLE_WFE_NONCEREJECT: '50' });
    const from = { a: nodes.a.events.length, b: nodes.b.events.length };
    await renewNow(world, 'a', 'opam.test');
    await renewNow(world, 'b', 'opam.test');
    await waitIssued(nodes.a, 'opam.test', from.a);
    await waitIssued(nodes.b, 'opam.test', from.b);
    await assertStored(world, 'a', 'opam.test');
    await assertStored(world, 'b', 'opam.test');
    assert.match(pebble.output(), /reject 50% of good nonces/);
  });

  await t.test('peer down: B\'s order asked of dead A fails, backs off, keeps serving, succeeds once A is back', async (st) => {
    await setOpamOrder(world, 'a');
    const servingBefore = await assertStored(world, 'b', 'opam.test');
    await nodes.a.stop();
    const from = nodes.b.events.length;
    await renewNow(world, 'b', 'opam.test');
    const failed = await nodes.b.waitFor((e) => e.event === 'acme_order_failed' && e.name === 'opam.test', 60_000, from);
    const next = Date.parse(String(failed.next_attempt));
    assert.ok(next > Date.now() + 30_000 && next < Date.now() + 75_000, `backs off about a minute: ${failed.next_attempt}`);
    assert.equal(failed.serving, servingBefore, 'the working certificate is kept');
    assert.equal(await assertStored(world, 'b', 'opam.test'), servingBefore);
    assert.ok(nodes.b.running);
    assert.equal(await servedSerial(world, 'b', 'opam.test'), servingBefore);
    // A comes back (from its storage: nothing to order), and B's next attempt goes through.
    await nodes.a.start();
    await nodes.a.waitFor((e) => e.event === 'acme_started', 10_000, nodes.a.runStart);
    const retried = await waitIssued(nodes.b, 'opam.test', from, 90_000);
    assert.notEqual(retried.serial, servingBefore);
    assert.equal(nodes.a.events.slice(nodes.a.runStart).filter((e) => e.event === 'acme_order_started').length, 0, 'A restarted from storage');
    st.diagnostic(`B retried at ${retried.time} after failing with: ${failed.reason}`);
  });

  await t.test('forced renewal (POST /renew/opam.test) while requests run: new serial, zero failed requests', async (st) => {
    const from = nodes.a.events.length;
    const before = issued(nodes.a, 'opam.test').at(-1)!.serial;
    assertServesHttps(nodes.a);
    const root = await pebble.root();
    const agent = new Agent({ connect: { ca: root, servername: 'opam.test' }, connections: 4 });
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const target = `https://${topo.v4.a}/`;
    const loops = Array.from({ length: 4 }, async () => {
      for (let i = 0; running && i < 2000; i++) {
        try {
          const res = await request(target, { dispatcher: agent, headers: { host: 'opam.test' } });
          await res.body.text();
          if (res.statusCode === 200) ok++;
          else failures.push(`status ${res.statusCode}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    await renewNow(world, 'a', 'opam.test');
    const renewed = await waitIssued(nodes.a, 'opam.test', from);
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await Promise.all(loops);
    await agent.close();
    assert.notEqual(renewed.serial, before);
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
    st.diagnostic(`${ok} requests over https, none failed`);
    // New handshakes get the new certificate at once.
    assert.equal(await servedSerial(world, 'a', 'opam.test'), renewed.serial);
  });

  await t.test('kill -9 during issuance, restart: the stored pair matches and is what the node serves', async (st) => {
    // Kills at each stage of an order: before validation, during finalize/download and the
    // storage write that follow the validation, and just after the issuance.
    const rounds: [string, number][] = [
      ['acme_order_started', 0],
      ['acme_order_started', 30],
      ['acme_challenge_validated', 0],
      ['acme_challenge_validated', 10],
      ['acme_challenge_validated', 25],
      ['acme_challenge_validated', 50],
      ['acme_certificate_issued', 0],
    ];
    for (const [trigger, delay] of rounds) {
      const { from } = await renewReaching(world, 'a', 'opam.test', (e) => e.event === trigger, st);
      await new Promise((r) => setTimeout(r, delay));
      await nodes.a.kill9();
      const reached = nodes.a.events.slice(from).map((e) => e.event).filter((e) => e.startsWith('acme_'));
      st.diagnostic(`killed ${delay} ms after ${trigger}, having logged: ${reached.join(', ')}`);
      const stored = await assertStored(world, 'a', 'opam.test');
      await nodes.a.start();
      // The stored certificate is what the restarted node hands to its certificate store.
      await nodes.a.waitFor((e) => e.event === 'acme_certificate_loaded' && e.name === 'opam.test' && e.serial === stored, 20_000, nodes.a.runStart);
      assert.equal(await servedSerial(world, 'a', 'opam.test'), stored);
    }
  });

  await t.test('both nodes serve their certificates for opam.test and their own name over https, chaining to Pebble\'s root', async () => {
    assertServesHttps(nodes.a);
    assertServesHttps(nodes.b);
    for (const [node, own] of [['a', 'a.test'], ['b', 'b.test']] as const) {
      assert.equal(await servedSerial(world, node, 'opam.test'), await assertStored(world, node, 'opam.test'));
      assert.equal(await servedSerial(world, node, own), await assertStored(world, node, own));
      const agent = new Agent({ connect: { ca: pebble.roots(), servername: 'opam.test' } });
      const res = await request(`https://${topo.v4[node]}/`, { dispatcher: agent, headers: { host: 'opam.test' } });
      assert.equal(await res.body.text(), 'origin opam.test\n');
      await agent.close();
    }
  });
});
