import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineWriter } from '../src/line-writer.ts';
import { tempDir } from './helpers/edge-process.ts';

const CHILD = fileURLToPath(new URL('./fixtures/line-writer-child.ts', import.meta.url));

test('workers sharing one stdout pipe never interleave inside a line', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out.log');
  const node = process.execPath;
  // Four writers on the same pipe (the shell's stdout), read by one cat.
  execFileSync('sh', ['-c', `( "${node}" "${CHILD}" a 3000 & "${node}" "${CHILD}" b 3000 & "${node}" "${CHILD}" c 3000 & "${node}" "${CHILD}" d 3000 & wait ) | cat > "${out}"`], { timeout: 60_000 });
  const lines = readFileSync(out, 'latin1').split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 12_000);
  const next: Record<string, number> = { a: 0, b: 0, c: 0, d: 0 };
  for (const line of lines) {
    const [id, seq, length, payload = ''] = line.split(' ');
    assert.ok(id! in next, `a whole line: ${line.slice(0, 80)}`);
    assert.equal(Number(seq), next[id!], `in order for writer ${id}`);
    assert.equal(payload.length, Number(length), `line ${id} ${seq} is whole`);
    next[id!]!++;
  }
});

test('a destination that falls behind: lines are dropped and counted, memory stays bounded', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  let dropped = 0;
  const writer = new LineWriter(path, { maxBufferedBytes: 10_000, onDrop: (n) => (dropped += n) });
  // Written in one go: the first 4 KiB write is in flight while the rest piles up.
  for (let i = 0; i < 1000; i++) writer.write(`line ${i} ${'y'.repeat(80)}\n`);
  await writer.close();
  const written = readFileSync(path, 'latin1').split('\n').filter((l) => l.length > 0).length;
  assert.ok(dropped > 0, 'some lines were dropped');
  assert.equal(written + dropped, 1000, 'every line is either written or counted as dropped');
  assert.ok(written * 90 <= 10_000 + 4096 + 200, `no more than the buffer held was written (${written} lines)`);
});
