// deploy/ and the Dockerfile agree with each other and with the real config schema: the
// example configs validate, the stack mounts what the configs point at, the image runs what
// the stack expects. (deploy/check.sh validates the files against the Compose schema and
// the playbook's syntax with the real tools.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfig } from '../src/check.ts';
import { parse } from 'yaml';
import { parseConfig } from '../src/config.ts';
import type { Config } from '../src/config.ts';
import { parseDuration } from '../src/units.ts';
import { DEFAULT_GRACE_MS } from '../src/edge.ts';

const root = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
// Ansible's !unsafe marks a string that Jinja must not expand: a plain string here.
const unsafe = { tag: '!unsafe', resolve: (value: string) => value };
const yaml = (path: string) => parse(read(path), { customTags: [unsafe] }) as Record<string, any>;

function example(node: 4 | 5): Config {
  const path = `deploy/examples/opam-${node}.yaml`;
  const result = parseConfig(read(path), path);
  assert.ok(result.ok, `${path}:\n${!result.ok ? result.errors.join('\n') : ''}`);
  return result.config;
}

/** ["letsencrypt:/etc/letsencrypt:ro", ...] -> target -> { source, readOnly }. */
function mounts(service: Record<string, any>): Map<string, { source: string; readOnly: boolean }> {
  const out = new Map<string, { source: string; readOnly: boolean }>();
  for (const spec of service.volumes as string[]) {
    // From the right: the source may hold a colon (${VAR:-default}).
    const parts = spec.split(':');
    const mode = parts.at(-1) === 'ro' || parts.at(-1) === 'rw' ? parts.pop() : 'rw';
    const target = parts.pop()!;
    out.set(target, { source: parts.join(':'), readOnly: mode === 'ro' });
  }
  return out;
}

test('the example configs pass the real validation and are the seed two nodes', () => {
  for (const [node, peer] of [[4, 5], [5, 4]] as const) {
    const c = example(node);
    assert.deepEqual(
      c.sites.flatMap((s) => s.hosts).sort(),
      ['opam.ocaml.org', `opam-${node}.ocaml.org`, 'staging.opam.ocaml.org'].sort(),
    );
    for (const site of c.sites) assert.equal(site.upstream.text, 'http://opam_live:80');
    assert.deepEqual(c.challenges.peers.map((u) => u.href), [`http://opam-${peer}.ocaml.org/`]);
    assert.deepEqual(c.resolver.servers, ['127.0.0.11', '[::1]:5353']);
    assert.equal(c.resolver.valid, 15_000);
    assert.equal(c.challenges.webroot, '/var/www/html');
    assert.equal(c.tls.certbot, '/etc/letsencrypt');
    assert.equal(c.acme?.directory, 'https://acme-v02.api.letsencrypt.org/directory');
    assert.equal(c.acme?.email, 'mark@tarides.com');
    assert.equal(c.acme?.storage, '/var/lib/opam-edge');
    // The container's HEALTHCHECK asks the admin listener's /healthz.
    assert.equal(c.admin?.text, '127.0.0.1:9145');
    assert.deepEqual(c.listen.http.map((l) => l.text), ['[::]:80']);
    assert.deepEqual(c.listen.https.map((l) => l.text), ['[::]:443']);
  }
});

test('the example config on a fresh host (an empty letsencrypt volume) passes the certificate check: acme provides meanwhile', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opam-edge-deploy-'));
  try {
    const c = example(4);
    const fresh = { ...c, tls: { ...c.tls, certbot: dir } } as Config;
    assert.deepEqual((await checkConfig(fresh, { resolve: false })).problems, []);
    const [problem] = (await checkConfig({ ...fresh, acme: null } as Config, { resolve: false })).problems;
    assert.equal(problem?.path, 'tls.certbot');
    assert.match(problem?.message ?? '', /\/live does not exist, and neither acme nor tls\.certificates provides a certificate/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('opam-5.yaml is opam-4.yaml with the two nodes swapped', () => {
  const swapped = read('deploy/examples/opam-4.yaml').replace(/opam-([45])/g, (_, n: string) => `opam-${n === '4' ? 5 : 4}`);
  assert.equal(swapped, read('deploy/examples/opam-5.yaml'));
});

test('the stack replaces nginx with opam-edge: global, host-mode ports, the volumes the configs use', () => {
  const stack = yaml('deploy/stack.yml');
  assert.equal(stack.version, '3.8');
  assert.deepEqual(Object.keys(stack.services).sort(), ['opam-edge', 'opam_live']);
  const edge = stack.services['opam-edge'];
  assert.equal(edge.deploy.mode, 'global');
  assert.equal(edge.deploy.update_config.order, 'stop-first');
  assert.deepEqual(
    edge.ports.map((p: Record<string, unknown>) => [p.target, p.published, p.protocol, p.mode]),
    [[80, 80, 'tcp', 'host'], [443, 443, 'tcp', 'host']],
  );
  assert.ok(parseDuration(edge.stop_grace_period)! > DEFAULT_GRACE_MS, 'stop_grace_period must exceed the 30 s drain');

  const m = mounts(edge);
  const config = example(4);
  assert.deepEqual(m.get('/etc/opam-edge'), { source: '/etc/opam-edge', readOnly: true });
  assert.deepEqual(m.get(config.acme!.storage), { source: 'storage', readOnly: false });
  assert.deepEqual(m.get(config.tls.certbot!), { source: 'letsencrypt', readOnly: true });
  assert.deepEqual(m.get(config.challenges.webroot!), { source: 'wwwroot', readOnly: true });
  assert.deepEqual(stack.volumes.letsencrypt, { external: true });
  assert.deepEqual(stack.volumes.wwwroot, { external: true });
  assert.equal(stack.volumes.storage.name, 'opam-edge-storage');

  // The backend as the seed runs it.
  const live = stack.services.opam_live;
  assert.equal(live.image, 'ocurrent/opam.ocaml.org:live');
  assert.equal(live.command, '--root /usr/share/caddy');
  assert.deepEqual(live.sysctls, ['net.ipv4.tcp_keepalive_time=60']);
});

test('compose.yml runs the same services on one host', () => {
  const compose = yaml('deploy/compose.yml');
  const stack = yaml('deploy/stack.yml');
  const edge = compose.services['opam-edge'];
  assert.equal(edge.image, stack.services['opam-edge'].image);
  assert.equal(edge.build.context, '..');
  assert.deepEqual(edge.ports, ['80:80', '443:443']);
  assert.equal(edge.stop_grace_period, stack.services['opam-edge'].stop_grace_period);
  const m = mounts(edge);
  for (const [target, mount] of mounts(stack.services['opam-edge'])) {
    if (target === '/etc/opam-edge') continue; // a variable here, for a config directory elsewhere
    assert.deepEqual(m.get(target), mount, target);
  }
  assert.equal(m.get('/etc/opam-edge')?.readOnly, true);
  for (const key of ['image', 'command', 'sysctls']) assert.deepEqual(compose.services.opam_live[key], stack.services.opam_live[key]);
  assert.equal(compose.volumes.letsencrypt.name, 'letsencrypt');
  assert.equal(compose.volumes.wwwroot.name, 'wwwroot');
});

test('the Dockerfile builds the image the stack runs', () => {
  const dockerfile = read('Dockerfile');
  const lines = dockerfile.replace(/\\\n\s*/g, ' ').split('\n').filter((l) => l && !l.startsWith('#'));
  const all = (word: string) => lines.filter((l) => l.startsWith(`${word} `)).map((l) => l.slice(word.length + 1).trim());
  const last = (word: string) => all(word).at(-1);
  assert.ok(all('FROM').length >= 2, 'multi-stage');
  // The exact Node the `node` devDependency pins (npm start, npm test): one bump moves both.
  const pkg = JSON.parse(read('package.json')) as { version: string; devDependencies: Record<string, string> };
  assert.match(pkg.devDependencies.node ?? '', /^24\.\d+\.\d+$/, 'the node devDependency is an exact 24.x.y');
  for (const from of all('FROM')) assert.equal(from.replace(/ AS \w+$/, ''), `node:${pkg.devDependencies.node}-bookworm-slim`);
  assert.match(dockerfile, /npm ci --omit=dev/);
  assert.equal(last('USER'), 'node');
  assert.equal(last('ENTRYPOINT'), '["node", "--max-semi-space-size=2", "/app/dist/cli.js"]');
  assert.equal(last('CMD'), '["--config", "/etc/opam-edge/config.yaml"]');
  assert.equal(last('EXPOSE'), '80 443');
  assert.equal(last('STOPSIGNAL'), 'SIGTERM');
  assert.match(last('HEALTHCHECK') ?? '', /CMD \["node", "\/app\/dist\/healthcheck\.js"\]$/);
  // `docker exec CONTAINER opam-edge status` (issue 13): the command is on PATH.
  assert.match(dockerfile, /ln -s \/app\/bin\/opam-edge\.js \/usr\/local\/bin\/opam-edge$/m);
  assert.equal(all('ARG').find((a) => a.startsWith('VERSION='))?.slice('VERSION='.length), pkg.version, 'the version label');
  // A build stage runs tsc; the final stage copies what it emitted, production dependencies,
  // the bin and package.json only: no sources, tests, bench or development certificates.
  assert.match(dockerfile, /^RUN npm run build$/m);
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const copied = [...finalStage.matchAll(/^COPY (?:--from=\w+ )?(\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(copied, ['/app/node_modules', '/app/dist/', 'package.json', 'bin/']);
  assert.deepEqual(
    read('.dockerignore').split('\n').filter((l) => l && !l.startsWith('#')),
    ['*', '!package.json', '!package-lock.json', '!tsconfig.json', '!tsconfig.build.json', '!bin/', '!src/', 'src/**/*.test.ts'],
  );
});

test('the playbook deploys the stack file and the node configs, without nginx or certbot', () => {
  const plays = yaml('deploy/ansible/playbook.yml') as unknown as Record<string, any>[];
  const tasks = plays.flatMap((p) => [...(p.tasks ?? []), ...(p.handlers ?? [])]) as Record<string, any>[];
  const text = JSON.stringify(tasks);
  assert.doesNotMatch(text, /nginx|certbot\/certbot|certonly|renew --webroot/);
  const cron = tasks.find((t) => t['ansible.builtin.command']?.removes === '/etc/cron.daily/letsencrypt-renew');
  assert.match(cron?.['ansible.builtin.command'].cmd, /^mv \/etc\/cron\.daily\/letsencrypt-renew /, 'the old renewal cron job is moved out');
  const order = tasks.map((t) => t.name);
  assert.ok(order.indexOf(cron!.name) > order.indexOf('Set up docker services'), 'certbot renews until opam-edge runs');
  const stack = tasks.find((t) => t['community.docker.docker_stack']);
  assert.equal(stack?.['community.docker.docker_stack'].name, 'infra');
  assert.equal(stack?.['community.docker.docker_stack'].prune, true);
  const main = plays[1]!;
  assert.match(main.vars.opam_edge_config, /\/\.\.\/examples\/\{\{ inventory_hostname_short \}\}\.yaml$/);
  assert.match(read('deploy/ansible/inventory'), /^opam-4\.ocaml\.org$/m);
  assert.match(read('deploy/ansible/inventory'), /^opam-5\.ocaml\.org$/m);
});

test("certbot's keys are readable by a dedicated group only, the one the container runs with (not gid 1000)", () => {
  const plays = yaml('deploy/ansible/playbook.yml') as unknown as Record<string, any>[];
  const main = plays[1]!;
  const tasks = main.tasks as Record<string, any>[];
  assert.equal(main.vars.opam_edge_group, 'opam-edge');
  const gid = Number(main.vars.opam_edge_gid);
  assert.ok(gid >= 10_000, 'a fixed gid away from the human users\' range (1000 and up)');
  const group = tasks.find((t) => t['ansible.builtin.group'])?.['ansible.builtin.group'];
  assert.deepEqual(group, { name: '{{ opam_edge_group }}', gid: '{{ opam_edge_gid }}', system: true });
  const access = tasks.find((t) => t['ansible.builtin.file']?.recurse === true)!;
  const order = tasks.map((t) => t.name);
  assert.ok(order.indexOf(access.name) > order.findIndex((n) => /create the group/.test(n)), 'the group exists before it is used');
  assert.equal(access['ansible.builtin.file'].group, '{{ opam_edge_group }}');
  assert.equal(access['ansible.builtin.file'].mode, 'g+rX,g-w,o-rwx', 'keys 0640, directories 0750, nothing for others');
  assert.deepEqual(access.loop, ['live', 'archive']);
  // The container runs as the image's user (uid 1000, Dockerfile USER node) with that group.
  for (const file of ['deploy/stack.yml', 'deploy/compose.yml']) assert.equal(yaml(file).services['opam-edge'].user, `1000:${gid}`, file);
  assert.doesNotMatch(JSON.stringify(tasks), /"group":\s*"?1000"?[,}]/);
});

test('the rollback stack is the seed one: nginx and opam_live', () => {
  const stack = yaml('deploy/rollback/nginx-stack.yml');
  assert.deepEqual(Object.keys(stack.services).sort(), ['nginx', 'opam_live']);
  assert.equal(stack.services.nginx.deploy.mode, 'global');
  assert.deepEqual(stack.services.opam_live, { image: 'ocurrent/opam.ocaml.org:live', command: '--root /usr/share/caddy' });
});

test('the BBR sysctl file is the seed one', () => {
  const settings = read('deploy/sysctl/01-bbr.conf').split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(settings, ['net.core.default_qdisc=fq', 'net.ipv4.tcp_congestion_control=bbr']);
});
