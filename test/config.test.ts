import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configLine, formatPath, loadConfigFile, parseConfig, validateConfig } from '../src/config.ts';

const minimal = `sites:\n  - hosts: ["opam.ocaml.org"]\n    upstream: "http://opam_live:80"\n`;

test('a minimal config gets every default of docs/configuration.md', () => {
  const result = parseConfig(minimal, 'test.yaml');
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  const c = result.config;
  assert.deepEqual(c.listen.http.map((l) => l.text), ['[::]:80']);
  assert.deepEqual(c.listen.https.map((l) => l.text), ['[::]:443']);
  assert.equal(c.workers, 1);
  assert.equal(c.resolver.valid, 15_000);
  assert.equal(c.limits.max_header_size, 16 * 1024);
  assert.equal(c.limits.idle_timeout, 75_000);
  assert.equal(c.tls.unknown_sni, 'reject');
  assert.equal(c.sites[0]!.upstream.host, 'opam_live');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.sites[0]));
});

test('every problem is reported with its key path and line', () => {
  const text = `listen:\n  http: ["[::]:99999"]\nresolver:\n  valid: soon\nbogus: 1\nsites:\n  - hosts: ["a.test"]\n    upstream: "ftp://x"\n  - hosts: ["a.test"]\n    upstream: "http://b"\n`;
  const result = parseConfig(text, 'test.yaml');
  assert.equal(result.ok, false);
  const errors = !result.ok ? result.errors : [];
  assert.ok(errors.some((e) => e.startsWith('listen.http[0] (line 2): port 99999 is out of range')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('resolver.valid (line 4): invalid duration')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('bogus (line 5): unknown key')), errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('sites[0].upstream (line 8)')), errors.join('\n'));
});

const errorsOf = (text: string): string[] => {
  const result = parseConfig(text, 'test.yaml');
  assert.equal(result.ok, false, 'expected the config to be refused');
  return result.ok ? [] : result.errors;
};
const has = (errors: string[], prefix: string) => assert.ok(errors.some((e) => e.startsWith(prefix)), `no error starting "${prefix}" in:\n${errors.join('\n')}`);

test('values come out normalised: durations in ms, sizes in bytes, hosts lower-cased, peers as URLs', () => {
  const result = parseConfig(
    `listen: {http: ["127.0.0.1:0", 8080], https: []}\nworkers: 2\nlimits: {header_timeout: 10s, max_header_size: 8k, max_body_size: 1m}\nchallenges: {webroot: /var/www/html, peers: ["http://opam-5.ocaml.org"]}\naccess_log: off\nsites:\n  - hosts: ["OPAM.ocaml.org", "*.Example.org"]\n    upstream: "http://[::1]:8080"\n`,
    'test.yaml',
  );
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  const c = result.config;
  assert.deepEqual(c.listen.http.map((l) => [l.host, l.port]), [['127.0.0.1', 0], ['::', 8080]]);
  assert.deepEqual(c.listen.https, []);
  assert.equal(c.limits.header_timeout, 10_000);
  assert.equal(c.limits.max_header_size, 8192);
  assert.equal(c.limits.max_body_size, 1_048_576);
  assert.equal(c.challenges.webroot, '/var/www/html');
  assert.equal(c.challenges.peers[0]!.href, 'http://opam-5.ocaml.org/');
  assert.equal(c.access_log, 'off');
  assert.equal(c.source, 'test.yaml');
  assert.deepEqual(c.sites[0]!.hosts, ['opam.ocaml.org', '*.example.org']);
  assert.deepEqual({ ...c.sites[0]!.upstream }, { text: 'http://[::1]:8080', host: '::1', port: 8080, literal: true });
  assert.throws(() => {
    (c.limits as { header_timeout: number }).header_timeout = 1;
  }, TypeError);
});

test('unknown keys are named by their full path, at any depth', () => {
  const errors = errorsOf(`listen: {http: ["[::]:0"], htps: []}\nlimits: {header_timeot: 5s}\n${minimal}  - hosts: [b.test]\n    upstream: http://b\n    upstrem: x\n`);
  has(errors, 'listen.htps (line 1): unknown key');
  has(errors, 'limits.header_timeot (line 2): unknown key');
  has(errors, 'sites[1].upstrem (line 8): unknown key');
});

test('wrong types, bad durations and sizes, ports out of range: each named by path', () => {
  const errors = errorsOf(
    `listen:\n  http: "[::]:80"\n  https: ["[::]:65536"]\nworkers: many\nresolver: {valid: true, servers: ["1.2.3.4:99999"]}\nlimits: {idle_timeout: 5 minutes, max_header_size: 12q, header_timeout: 0s}\ntls: {http2: "yes"}\nadmin: "127.0.0.1:70000"\naccess_log_format: clf\n${minimal}`,
  );
  has(errors, 'listen.http (line 2): Invalid input: expected array');
  has(errors, 'listen.https[0] (line 3): port 65536 is out of range');
  has(errors, 'workers (line 4)');
  has(errors, 'resolver.valid (line 5): expected a duration');
  has(errors, 'resolver.servers[0] (line 5)');
  has(errors, 'limits.idle_timeout (line 6): invalid duration "5 minutes"');
  has(errors, 'limits.max_header_size (line 6): invalid size "12q"');
  has(errors, 'limits.header_timeout (line 6): must be greater than zero');
  has(errors, 'tls.http2 (line 7)');
  has(errors, 'admin (line 8): port 70000 is out of range');
  has(errors, 'access_log_format (line 9)');
});

test('a host in two sites is an error, reported together with the other problems', () => {
  const twoSites = `sites:\n  - hosts: [a.test, b.test]\n    upstream: http://a\n  - hosts: [c.test, A.TEST]\n    upstream: http://c\n`;
  has(errorsOf(twoSites), 'sites[1].hosts[1] (line 4): "a.test" is already a host of sites[0]');
  const alsoBroken = `limits: {idle_timeout: never}\nsites:\n  - hosts: [a.test]\n    upstream: ftp://a\n  - hosts: [a.test]\n    upstream: http://c\n`;
  const errors = errorsOf(alsoBroken);
  has(errors, 'limits.idle_timeout (line 1)');
  has(errors, 'sites[0].upstream (line 4)');
  has(errors, 'sites[1].hosts[0] (line 5): "a.test" is already a host of sites[0]');
  has(errorsOf(`sites:\n  - hosts: [a.test, a.test]\n    upstream: http://a\n`), 'sites[0].hosts[1] (line 2): "a.test" is listed twice');
});

test('listeners that would collide on bind are refused; port 0 never collides', () => {
  const errors = errorsOf(`listen:\n  http: ["[::]:8080", "127.0.0.1:8080"]\n  https: ["127.0.0.1:8443", "127.0.0.1:8443", "[::]:0", "[::]:0"]\nadmin: "0.0.0.0:8443"\n${minimal}`);
  has(errors, 'listen.http[1] (line 2): "127.0.0.1:8080" overlaps listen.http[0]');
  has(errors, 'listen.https[1] (line 3): "127.0.0.1:8443" overlaps listen.https[0]');
  has(errors, 'admin (line 4): "0.0.0.0:8443" overlaps listen.https[0]');
  assert.equal(errors.length, 3, errors.join('\n'));
  const ok = parseConfig(`listen:\n  http: ["127.0.0.1:8080", "127.0.0.2:8080"]\n  https: []\n${minimal}`, 't');
  assert.ok(ok.ok);
});

test('sites, upstreams, peers and acme names are checked', () => {
  has(errorsOf('sites: []\n'), 'sites (line 1)');
  has(errorsOf('listen: {http: []}\n'), 'sites: ');
  const errors = errorsOf(
    `challenges: {peers: ["ftp://x", "not a url"]}\nacme: {names: [z.test], key_type: dsa}\nsites:\n  - hosts: ["bad host", "*.ok.test"]\n    upstream: "http://x/path"\n  - hosts: []\n    upstream: "http://y:99999"\n`,
  );
  has(errors, 'challenges.peers[0] (line 1): peer must be an http:// or https:// URL');
  has(errors, 'challenges.peers[1] (line 1): invalid peer URL');
  has(errors, 'acme.key_type (line 2)');
  has(errors, 'sites[0].hosts[0] (line 4): must be a host name');
  has(errors, 'sites[0].upstream (line 5): upstream must be http://HOST[:PORT]');
  has(errors, 'sites[1].hosts (line 6)');
  has(errors, 'sites[1].upstream (line 7): invalid upstream URL');
  const names = errorsOf(`acme: {names: [a.test, x.other.test, y.ok.test]}\nsites:\n  - hosts: [a.test, "*.ok.test"]\n    upstream: http://a\n`);
  assert.deepEqual(names, ['acme.names[1] (line 1): "x.other.test" is not a host of any site']);
});

test('acme.names: "*.example.org" covers one label only, as routing and TLS do (issue 15)', () => {
  const names = errorsOf(`acme: {names: [a.example.org, a.b.example.org, example.org]}\nsites:\n  - hosts: ["*.example.org"]\n    upstream: http://a\n`);
  assert.deepEqual(names, [
    'acme.names[1] (line 1): "a.b.example.org" is not a host of any site ("*.example.org" covers one label only)',
    'acme.names[2] (line 1): "example.org" is not a host of any site',
  ]);
});

test('host names are normalised before they are compared: case and a trailing dot', () => {
  const ok = parseConfig(`acme: {names: [WWW.opam.test.]}\nsites:\n  - hosts: ["OPAM.test.", "*.Opam.test"]\n    upstream: http://a\n`, 't');
  assert.ok(ok.ok, ok.ok ? '' : ok.errors.join('\n'));
  assert.deepEqual(ok.config.sites[0]!.hosts, ['opam.test', '*.opam.test']);
  assert.deepEqual(ok.config.acme!.names, ['www.opam.test']);
  const twice = errorsOf(`sites:\n  - hosts: [opam.test, "OPAM.test."]\n    upstream: http://a\n`);
  assert.deepEqual(twice, ['sites[0].hosts[1] (line 2): "opam.test" is listed twice']);
  has(errorsOf(`sites:\n  - hosts: ["*.0.0.1"]\n    upstream: http://a\n`), 'sites[0].hosts[0] (line 2): must be a host name');
});

test('YAML errors carry file, line and column; empty files and duplicate keys are refused', () => {
  const syntax = errorsOf('sites:\n  - hosts: [a.test\n');
  assert.match(syntax[0]!, /^test\.yaml:\d+:\d+: YAML /);
  const dup = errorsOf(`workers: 1\nworkers: 2\n${minimal}`);
  assert.match(dup[0]!, /^test\.yaml:2:1: YAML .*[Mm]ap keys must be unique/);
  assert.deepEqual(errorsOf(''), ['(root): the file is empty; at least `sites` is required']);
  has(errorsOf('- a\n'), '(root) (line 1): Invalid input: expected object');
});

test('a config file that cannot be read is one clear error', async () => {
  const result = await loadConfigFile('/nonexistent/opam-edge.yaml');
  assert.deepEqual(result, { ok: false, errors: ['/nonexistent/opam-edge.yaml: cannot read the config file: no such file'] });
});

test('formatPath', () => {
  assert.equal(formatPath([]), '(root)');
  assert.equal(formatPath(['sites', 0, 'hosts', 1]), 'sites[0].hosts[1]');
  assert.equal(formatPath(['limits', 'idle_timeout']), 'limits.idle_timeout');
});

test('configLine: the line each key of a parsed config was written on, for checks after validation', () => {
  const result = parseConfig(`# comment\ntls:\n  certificates:\n    - cert: a.pem\n      key: b.pem\n${minimal}`, 'test.yaml');
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  assert.equal(configLine(result.config, ['tls', 'certificates', 0, 'key']), 5);
  assert.equal(configLine(result.config, ['sites', 0, 'upstream']), 8);
  // A default was written nowhere; a config built in code has no lines.
  assert.equal(configLine(result.config, ['acme']), undefined);
  const built = validateConfig({ sites: [{ hosts: ['a.test'], upstream: 'http://a' }] }, 'code');
  assert.ok(built.ok);
  assert.equal(configLine(built.config, ['sites', 0, 'upstream']), undefined);
});
