// The documentation checked against the tree and the code: every relative link resolves to a
// file (and a heading, when it names one), the defaults block of docs/configuration.md is what
// the code defaults to, every key the code knows has a row in its table, and the example
// configs validate. Docs that drift from the code fail here rather than mislead a reader.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PAGES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  'bench/README.md',
  ...readdirSync(join(ROOT, 'deploy')).filter((f) => f.endsWith('.md')).map((f) => `deploy/${f}`),
];

const read = (page: string) => readFileSync(join(ROOT, page), 'utf8');
const withoutCode = (text: string) => text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = heading!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

test('every relative link in README.md, docs/, bench/ and deploy/ points at a file and heading that exist', () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of PAGES) {
    for (const [, target] of withoutCode(read(page)).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target!)) continue;
      checked++;
      const [path, anchor] = target!.split('#') as [string, string | undefined];
      const file = path === '' ? join(ROOT, page) : join(ROOT, dirname(page), path);
      if (!existsSync(file)) {
        broken.push(`${page}: ${target} (no ${relative(ROOT, file)})`);
        continue;
      }
      if (anchor && statSync(file).isFile() && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(anchor)) {
        broken.push(`${page}: ${target} (no heading #${anchor})`);
      }
    }
  }
  assert.ok(checked > 20, `only ${checked} links found: is the link pattern still right?`);
  assert.deepEqual(broken, []);
});

const configDoc = read('docs/configuration.md');
const yamlBlocks = (text: string) => [...text.matchAll(/^```yaml\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
const minimal = 'sites:\n  - hosts: ["opam.ocaml.org", "opam-4.ocaml.org"]\n    upstream: "http://opam_live:80"\n';

test('the defaults block of docs/configuration.md is what the code defaults to', () => {
  const block = yamlBlocks(configDoc).find((b) => b.startsWith('listen:'));
  assert.ok(block, 'no defaults block starting with "listen:" in docs/configuration.md');
  const documented = parseConfig(block, 'docs');
  const coded = parseConfig(minimal, 'docs');
  assert.ok(documented.ok, JSON.stringify(!documented.ok && documented.errors));
  assert.ok(coded.ok);
  assert.deepEqual(documented.config, coded.config);
  // acme is null in that block; its keys are commented out with their defaults.
  const acme = parseConfig(`acme: {}\n${minimal}`, 'docs');
  assert.ok(acme.ok);
  for (const [key, value] of Object.entries(acme.config.acme!)) {
    const line: string | undefined = new RegExp(`^#  ${key}: (\\S+)`, 'm').exec(block)?.[1];
    assert.ok(line, `acme.${key} is not in the defaults block`);
    if (key === 'directory') assert.equal(value, 'https://acme-v02.api.letsencrypt.org/directory');
    else if (key === 'start_grace') assert.equal(line, '10m');
    else assert.equal(line, String(value), `acme.${key}`);
  }
});

/** "listen.http", "acme.email", "sites[].upstream"...: every key a config can set. */
function keyPaths(value: Record<string, unknown>, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    const path = `${prefix}${key}`;
    const plain = child !== null && typeof child === 'object' && Object.getPrototypeOf(child) === Object.prototype;
    if (key === 'sites') out.push(path, ...Object.keys((child as Record<string, unknown>[])[0]!).map((k) => `sites[].${k}`));
    else if (plain) out.push(...keyPaths(child as Record<string, unknown>, `${path}.`));
    else out.push(path);
  }
  return out;
}

test('the key table of docs/configuration.md has a row for every key the code accepts', () => {
  const parsed = parseConfig(`acme: {}\n${minimal}`, 'docs');
  assert.ok(parsed.ok);
  const { source: _source, admin_token: _token, ...config } = parsed.config;
  const rows = new Set([...configDoc.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]));
  const missing = keyPaths(config).filter((key) => !rows.has(key));
  assert.deepEqual(missing, []);
});

test('the example configs of README.md and docs/configuration.md validate', () => {
  const examples = [...yamlBlocks(read('README.md')), ...yamlBlocks(configDoc)].filter((b) => /^sites:/m.test(b));
  assert.ok(examples.length >= 3, `${examples.length} examples found`);
  for (const example of examples) {
    const result = parseConfig(example, 'example');
    assert.ok(result.ok, `${JSON.stringify(!result.ok && result.errors)}\n${example}`);
  }
});
