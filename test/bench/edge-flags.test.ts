import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EDGE_NODE_FLAGS } from '../../bench/targets/opam-edge.ts';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

test('the bench runs opam-edge with the node flags the image runs it with (and npm start too)', () => {
  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
  assert.ok(entry, 'an ENTRYPOINT in exec form');
  const argv = JSON.parse(entry) as string[];
  assert.equal(argv[0], 'node');
  assert.deepEqual(argv.slice(1, -1), EDGE_NODE_FLAGS);
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `node ${EDGE_NODE_FLAGS.join(' ')} src/cli.ts`);
});
