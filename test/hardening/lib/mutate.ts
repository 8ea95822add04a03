// Seeded mutations for the fuzzing run: a small PRNG (mulberry32), and the mutations applied
// to corpus requests (byte flips, splices, truncations, duplicated or dropped lines, random
// inserts), to TLS ClientHellos (the same plus broken length fields) and random TLS records.
// Iteration i of a run with seed S uses the generator seeded with S + i: one failing
// iteration can be replayed alone.

export type Rng = { next(): number; int(n: number): number; pick<T>(list: readonly T[]): T; bytes(n: number): Buffer };

export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(list: readonly T[]) => list[int(list.length)]!,
    bytes: (n: number) => {
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    },
  };
}

function lines(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x0a) {
      out.push(buf.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}

export const MUTATIONS = ['flip', 'splice', 'truncate', 'duplicate-line', 'drop-line', 'insert-random', 'swap-lines'] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** One mutation of `input`; `donors` give the spliced-in bytes. */
export function mutateOnce(r: Rng, input: Buffer, donors: readonly Buffer[], kind: Mutation = r.pick(MUTATIONS)): Buffer {
  if (input.length === 0) return r.bytes(1 + r.int(16));
  switch (kind) {
    case 'flip': {
      const out = Buffer.from(input);
      const n = 1 + r.int(4);
      for (let i = 0; i < n; i++) {
        const at = r.int(out.length);
        // Half the time a single bit, otherwise a byte from the interesting set or any byte.
        out[at] = r.next() < 0.5 ? out[at]! ^ (1 << r.int(8)) : r.pick([0x00, 0x0a, 0x0d, 0x20, 0x09, 0x3a, 0x7f, 0x80, 0xff, r.int(256)]);
      }
      return out;
    }
    case 'splice': {
      const donor = r.pick(donors);
      const from = r.int(donor.length + 1);
      const piece = donor.subarray(from, from + 1 + r.int(64));
      const at = r.int(input.length + 1);
      return Buffer.concat([input.subarray(0, at), piece, input.subarray(at)]);
    }
    case 'truncate':
      return input.subarray(0, r.int(input.length));
    case 'duplicate-line': {
      const ls = lines(input);
      const i = r.int(ls.length);
      ls.splice(i, 0, ls[i]!);
      return Buffer.concat(ls);
    }
    case 'drop-line': {
      const ls = lines(input);
      if (ls.length > 1) ls.splice(r.int(ls.length), 1);
      return Buffer.concat(ls);
    }
    case 'insert-random': {
      const at = r.int(input.length + 1);
      return Buffer.concat([input.subarray(0, at), r.bytes(1 + r.int(8)), input.subarray(at)]);
    }
    case 'swap-lines': {
      const ls = lines(input);
      if (ls.length > 2) {
        const i = r.int(ls.length);
        const j = r.int(ls.length);
        [ls[i], ls[j]] = [ls[j]!, ls[i]!];
      }
      return Buffer.concat(ls);
    }
  }
}

/** 1 to 3 mutations in a row. */
export function mutate(r: Rng, input: Buffer, donors: readonly Buffer[]): Buffer {
  let out = input;
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) out = mutateOnce(r, out, donors);
  return out;
}

/** A ClientHello record with one of its length fields (record, handshake, extensions) broken, or mutated bytes. */
export function mutateClientHello(r: Rng, hello: Buffer): Buffer {
  const out = Buffer.from(hello);
  switch (r.int(4)) {
    case 0:
      // Record length (bytes 3-4).
      out.writeUInt16BE(r.int(0x10000), 3);
      return out;
    case 1:
      // Handshake length (bytes 6-8).
      out.writeUIntBE(r.int(0x1000000), 6, 3);
      return out;
    case 2:
      return mutateOnce(r, out, [hello], r.pick(['flip', 'truncate', 'insert-random'] as const));
    default: {
      // Several flips past the random field (cipher suites, extensions).
      for (let i = 0; i < 1 + r.int(8); i++) {
        const at = 43 + r.int(Math.max(1, out.length - 43));
        if (at < out.length) out[at] = r.int(256);
      }
      return out;
    }
  }
}

/** TLS-looking records with random type, version and payload (and sometimes a lying length). */
export function randomRecords(r: Rng): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0, n = 1 + r.int(4); i < n; i++) {
    const payload = r.bytes(r.int(600));
    const head = Buffer.alloc(5);
    head[0] = r.pick([0x14, 0x15, 0x16, 0x17, 0x18, r.int(256)]);
    head[1] = 0x03;
    head[2] = r.pick([0x00, 0x01, 0x02, 0x03, 0x04, r.int(256)]);
    head.writeUInt16BE(r.next() < 0.8 ? payload.length : r.int(0x10000), 3);
    parts.push(head, payload);
  }
  return Buffer.concat(parts);
}
