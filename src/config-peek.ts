// A cheap look at the config for the HEALTHCHECK and `opam-edge status`, which need only
// `admin` and `listen`: it runs every 30 s in the container, so it avoids loading the YAML
// library and the schema (config.ts). It reads JSON, and the plain YAML the examples use:
//   admin: "127.0.0.1:9145"                      # a top-level scalar, quoted or not
//   listen: {http: ["[::]:80"], https: []}       # a flow mapping on one line, or
//   listen:                                      # a block mapping of flow or block lists
//     http: ["[::]:80"]
//     https:
//       - "[::]:443"
// Anything else in those two keys (anchors, tags, multi-line flow, block scalars) returns
// null, and the caller parses the file with the YAML library. Other keys are skipped unread.

type Value = string | null | Value[] | { [key: string]: Value };

/** { admin?, listen? } as YAML would read them, or null when this reader cannot tell. */
export function peekConfig(text: string): Record<string, unknown> | null {
  const body = text.replace(/^\uFEFF/, '');
  if (/^\s*\{/.test(body)) {
    try {
      return JSON.parse(body) as Record<string, unknown>;
    } catch {
      return null;
    }
  }
  const lines = body.split(/\r?\n/);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment(lines[i]!);
    if (line === '---' && i === 0) continue;
    if (line === '---' || line === '...') return null;
    const top = /^(admin|listen):(.*)$/.exec(line);
    if (!top) {
      // The same keys written some other way ("admin": x, admin : x): leave it to YAML.
      if (/^["']?(admin|listen)["']?\s*:/.test(line)) return null;
      continue;
    }
    const [, key, rest] = top as unknown as [string, 'admin' | 'listen', string];
    if (key in out) return null;
    const value = rest.trim();
    if (value !== '') {
      const parsed = flow(value);
      if (parsed === undefined) return null;
      out[key] = parsed;
      continue;
    }
    if (key === 'admin') return null;
    const block = readBlock(lines, i + 1);
    if (block === null) return null;
    out.listen = block.value;
    i = block.next - 1;
  }
  return out;
}

/** `listen:`'s indented children: `http: [..]`, or `http:` and `- item` lines below. */
function readBlock(lines: string[], from: number): { value: Record<string, Value>; next: number } | null {
  const value: Record<string, Value> = {};
  let i = from;
  let list: Value[] | null = null;
  for (; i < lines.length; i++) {
    const line = stripComment(lines[i]!);
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) break;
    const item = /^\s+-\s+(.*)$/.exec(line);
    if (item && list) {
      const parsed = flow(item[1]!.trim());
      if (parsed === undefined) return null;
      list.push(parsed);
      continue;
    }
    const child = /^\s+([A-Za-z_]+):(.*)$/.exec(line);
    if (!child) return null;
    const rest = child[2]!.trim();
    if (rest === '') {
      list = value[child[1]!] = [];
    } else {
      const parsed = flow(rest);
      if (parsed === undefined) return null;
      value[child[1]!] = parsed;
      list = null;
    }
  }
  return { value, next: i };
}

/** A comment starts at a `#` after whitespace, outside quotes. */
function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || line[i - 1] === ' ' || line[i - 1] === '\t')) {
      return line.slice(0, i).trimEnd();
    }
  }
  return line.trimEnd();
}

/** One flow value on one line: scalar, [list] or {map}. undefined: not in this subset. */
function flow(text: string): Value | undefined {
  let pos = 0;
  const skip = () => {
    while (text[pos] === ' ' || text[pos] === '\t') pos++;
  };
  const scalar = (stops: string): string | null | undefined => {
    skip();
    const c = text[pos];
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, pos + 1);
      if (end < 0 || (c === '"' && text.slice(pos + 1, end).includes('\\'))) return undefined;
      const s = text.slice(pos + 1, end);
      pos = end + 1;
      return s;
    }
    if (c === undefined || '&*!|>%@`'.includes(c)) return undefined;
    let end = pos;
    while (end < text.length && !stops.includes(text[end]!)) end++;
    const s = text.slice(pos, end).trim();
    pos = end;
    return s === 'null' || s === '~' || s === '' ? null : s;
  };
  const value = (stops: string): Value | undefined => {
    skip();
    if (text[pos] === '[') {
      pos++;
      const items: Value[] = [];
      skip();
      if (text[pos] === ']') return pos++, items;
      for (;;) {
        const v = value(',]');
        if (v === undefined) return undefined;
        items.push(v);
        skip();
        if (text[pos] === ']') return pos++, items;
        if (text[pos++] !== ',') return undefined;
      }
    }
    if (text[pos] === '{') {
      pos++;
      const map: Record<string, Value> = {};
      skip();
      if (text[pos] === '}') return pos++, map;
      for (;;) {
        const k = scalar(':');
        if (typeof k !== 'string' || text[pos++] !== ':') return undefined;
        const v = value(',}');
        if (v === undefined) return undefined;
        map[k] = v;
        skip();
        if (text[pos] === '}') return pos++, map;
        if (text[pos++] !== ',') return undefined;
      }
    }
    return scalar(stops);
  };
  const result = value('');
  skip();
  return pos === text.length ? result : undefined;
}
