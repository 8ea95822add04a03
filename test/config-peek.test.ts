// The HEALTHCHECK's and `opam-edge status`'s cheap config reader reads admin and listen as
// the YAML library does, or says it cannot (null) and the YAML library takes over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { peekConfig } from '../src/config-peek.ts';

/** YAML's reading, numbers as text (the peek keeps scalars as text; parseListen takes both). */
function asYaml(text: string): Record<string, unknown> {
  const doc = (parse(text) ?? {}) as Record<string, unknown>;
  const text_ = (v: unknown): unknown =>
    typeof v === 'number' ? String(v) : Array.isArray(v) ? v.map(text_) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, text_(x)])) : v;
  const out: Record<string, unknown> = {};
  for (const key of ['admin', 'listen']) if (key in doc) out[key] = text_(doc[key]);
  return out;
}

test('reads admin and listen as YAML does: the deploy examples, block and flow forms, comments, JSON', () => {
  const texts = [
    readFileSync(new URL('../deploy/examples/opam-4.yaml', import.meta.url), 'utf8'),
    readFileSync(new URL('../deploy/examples/opam-5.yaml', import.meta.url), 'utf8'),
    stringify({ listen: { http: ['127.0.0.1:0'], https: [] }, admin: '127.0.0.1:9145', sites: [{ hosts: ['a.test'], upstream: 'http://a' }] }),
    '---\nadmin: 127.0.0.1:9145   # loopback only\nlisten: {http: ["[::]:80", 8080], https: []}\n',
    'listen:\n  # the defaults, written out\n  http:\n    - "[::]:80"   # dual-stack\n    - \'127.0.0.2:80\'\n  https: ["[::]:443"]\nadmin: null\nsites: []\n',
    'admin: "127.0.0.1:9145 #not a comment"\n',
    'admin: ~\nsites:\n  - hosts: [admin.test]\n    listen: nothing\n',
    '',
  ];
  for (const text of texts) assert.deepEqual(peekConfig(text), asYaml(text), text);
  assert.deepEqual(peekConfig('{"admin": "127.0.0.1:9145", "listen": {"http": []}}'), { admin: '127.0.0.1:9145', listen: { http: [] } });
});

test('what it cannot read is left to the YAML library (null)', () => {
  for (const text of [
    '"admin": 127.0.0.1:1\n',
    'admin : 127.0.0.1:1\n',
    'admin: &a 127.0.0.1:1\n',
    'admin: !!str 127.0.0.1:1\n',
    'listen: {http: [\n  "[::]:80"]}\n',
    'listen:\n  http: |\n    x\n',
    'admin: "a\\"b"\n',
    'admin: 1\nadmin: 2\n',
    'admin: 1\n---\nadmin: 2\n',
    '{admin: 127.0.0.1:1}\n',
  ]) {
    assert.equal(peekConfig(text), null, text);
  }
});
