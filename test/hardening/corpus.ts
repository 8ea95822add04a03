// The request-parsing corpus: JSON files in corpus/, one group per file, many cases each.
// Bytes are JSON strings read as latin1 (every code unit below 0x100 is one byte, so "\r\n"
// and "\u0000" are exact), or a list of such strings, `{repeat, count}` runs for the large
// cases, and `{pause_ms}` gaps where the timing matters (Expect: 100-continue).

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseExpectation } from './expectations.ts';
import type { Expectation } from './expectations.ts';

export const CORPUS_DIR = fileURLToPath(new URL('./corpus/', import.meta.url));

/** What the request's bytes are sent as: data, or a pause between two writes. */
export type Part = { data: Buffer } | { pauseMs: number };

export type Role = 'http' | 'proxy';

export type Case = {
  id: string;
  group: string;
  title: string;
  parts: Part[];
  /** All the data parts joined: what a reader of the report sees. */
  bytes: Buffer;
  source: string[];
  expect: Record<Role, Expectation>;
  /** Raw expectation text per role, as written in the file. */
  expectText: Record<Role, string>;
  /** Two parsers can disagree on where it ends or what it targets: it must never be forwarded. */
  ambiguous: boolean;
  /** Where the fault shows: in the header section (default) or only in the body. */
  detect: 'headers' | 'body';
  /** The port-80 redirect's Location, where the case pins it. */
  location?: string;
  /** What the single forwarded request must look like at the origin. */
  forwarded?: { target?: string; host?: string; bodyLength?: number; absent?: string };
  /** The server must close the connection after its answers. */
  mustClose: boolean;
  notes?: string;
};

export type Source = { title: string; url: string };

type RawPart = string | { repeat: string; count: number } | { pause_ms: number };

type RawCase = {
  id: string;
  title: string;
  bytes: RawPart | RawPart[];
  source: string[];
  expect: { http: string; proxy: string };
  ambiguous: boolean;
  detect?: 'headers' | 'body';
  location?: string;
  forwarded?: { target?: string; host?: string; body_length?: number; absent?: string };
  must_close?: boolean;
  notes?: string;
};

export function loadSources(dir = CORPUS_DIR): Map<string, Source> {
  const raw = JSON.parse(readFileSync(`${dir}sources.json`, 'utf8')) as { sources: Record<string, Source> };
  return new Map(Object.entries(raw.sources));
}

function latin1(text: string, where: string): Buffer {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0xff) throw new Error(`${where}: character U+${text.charCodeAt(i).toString(16)} is not one byte`);
  }
  return Buffer.from(text, 'latin1');
}

function materialise(bytes: RawPart | RawPart[], where: string): Part[] {
  const parts: Part[] = [];
  for (const part of Array.isArray(bytes) ? bytes : [bytes]) {
    if (typeof part === 'string') parts.push({ data: latin1(part, where) });
    else if ('repeat' in part) parts.push({ data: latin1(part.repeat.repeat(part.count), where) });
    else if ('pause_ms' in part) parts.push({ pauseMs: part.pause_ms });
    else throw new Error(`${where}: unknown part ${JSON.stringify(part)}`);
  }
  // Adjacent data parts are one write: only pauses split the bytes on the wire.
  const merged: Part[] = [];
  for (const part of parts) {
    const last = merged.at(-1);
    if (last && 'data' in last && 'data' in part) merged[merged.length - 1] = { data: Buffer.concat([last.data, part.data]) };
    else merged.push(part);
  }
  return merged;
}

/** Every case of every group file, validated: unique ids, known sources, parseable expectations. */
export function loadCorpus(dir = CORPUS_DIR): Case[] {
  const sources = loadSources(dir);
  const cases: Case[] = [];
  const ids = new Set<string>();
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'sources.json')
    .sort();
  for (const file of files) {
    const group = JSON.parse(readFileSync(`${dir}${file}`, 'utf8')) as { group: string; cases: RawCase[] };
    for (const raw of group.cases) {
      const where = `${file}: ${raw.id}`;
      if (!/^[a-z0-9-]+$/.test(raw.id)) throw new Error(`${where}: ids are lower-case words joined by "-"`);
      if (ids.has(raw.id)) throw new Error(`${where}: duplicate id`);
      ids.add(raw.id);
      if (!raw.title || !Array.isArray(raw.source) || raw.source.length === 0) throw new Error(`${where}: title and source are required`);
      for (const cite of raw.source) {
        if (!sources.has(cite.split('#')[0]!)) throw new Error(`${where}: unknown source "${cite}"`);
      }
      if (typeof raw.ambiguous !== 'boolean') throw new Error(`${where}: "ambiguous" must be true or false`);
      const expect = { http: parseExpectation(raw.expect.http, 'http'), proxy: parseExpectation(raw.expect.proxy, 'proxy') };
      if (raw.ambiguous) {
        for (const role of ['http', 'proxy'] as const) {
          if (expect[role].some((alt) => alt.some((step) => step === 'forward' || step === 'redirect'))) {
            throw new Error(`${where}: an ambiguous case cannot expect to be served (${role}: ${raw.expect[role]})`);
          }
        }
      }
      const parts = materialise(raw.bytes, where);
      cases.push({
        id: raw.id,
        group: group.group,
        title: raw.title,
        parts,
        bytes: Buffer.concat(parts.flatMap((p) => ('data' in p ? [p.data] : []))),
        source: raw.source,
        expect,
        expectText: { http: raw.expect.http, proxy: raw.expect.proxy },
        ambiguous: raw.ambiguous,
        detect: raw.detect ?? 'headers',
        location: raw.location,
        forwarded: raw.forwarded && {
          target: raw.forwarded.target,
          host: raw.forwarded.host,
          bodyLength: raw.forwarded.body_length,
          absent: raw.forwarded.absent,
        },
        mustClose: raw.must_close ?? false,
        notes: raw.notes,
      });
    }
  }
  return cases;
}
