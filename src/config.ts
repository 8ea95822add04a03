// The configuration file: schema, defaults, validation with key paths, then a frozen Config.
// Values come out normalised (durations in ms, sizes in bytes, listen addresses parsed),
// under the same key names the operator writes, so logs and code speak one language.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { LineCounter, parseDocument, isNode } from 'yaml';
import * as z from 'zod';
import { covers, isHostName, isHostPattern, isWildcard, normalizeHostName } from './host-name.ts';
import { parseDuration, parseListen, parseSize } from './units.ts';
import { errnoText } from './errors.ts';
import { deepFreeze } from './deep-freeze.ts';
import type { ListenAddress } from './units.ts';

const duration = z.union([z.string(), z.number()], { error: 'expected a duration such as "15s", "2m" or "30d"' }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.issues.push({ code: 'custom', input: value, message: `invalid duration "${value}" (expected e.g. 15s, 2m, 30d)` });
    return z.NEVER;
  }
  return ms;
});

const positiveDuration = duration.refine((ms) => ms > 0, 'must be greater than zero');

const size = z.union([z.string(), z.number()], { error: 'expected a size such as "8k" or "1m"' }).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === null) {
    ctx.issues.push({ code: 'custom', input: value, message: `invalid size "${value}" (expected e.g. 8k, 1m)` });
    return z.NEVER;
  }
  return bytes;
});

const listen = z.union([z.string(), z.number()], { error: 'expected an address such as "[::]:80" or "127.0.0.1:80"' }).transform((value, ctx): ListenAddress => {
  const parsed = parseListen(value);
  if ('error' in parsed) {
    ctx.issues.push({ code: 'custom', input: value, message: parsed.error });
    return z.NEVER;
  }
  return parsed;
});

const httpUrl = (what: string) =>
  z.string().transform((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.issues.push({ code: 'custom', input: value, message: `invalid ${what} URL "${value}"` });
      return z.NEVER;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      ctx.issues.push({ code: 'custom', input: value, message: `${what} must be an http:// or https:// URL` });
      return z.NEVER;
    }
    return url;
  });

const upstream = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.issues.push({ code: 'custom', input: value, message: `invalid upstream URL "${value}" (expected http://NAME:PORT)` });
    return z.NEVER;
  }
  if (url.protocol !== 'http:') {
    ctx.issues.push({ code: 'custom', input: value, message: 'upstream must be an http:// URL (TLS ends at opam-edge)' });
    return z.NEVER;
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username || url.password) {
    ctx.issues.push({ code: 'custom', input: value, message: 'upstream must be http://HOST[:PORT] with no path, query or credentials' });
    return z.NEVER;
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return Object.freeze({
    text: value,
    host,
    port: url.port ? Number(url.port) : 80,
    /** IP literals are used as they are and never resolved. */
    literal: isIP(host) !== 0,
  });
});

const hostPattern = z
  .string()
  .transform(normalizeHostName)
  .refine(isHostPattern, 'must be a host name like "opam.ocaml.org" or "*.example.org"');

const directoryShorthands: Record<string, string> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

const acme = z.strictObject({
  directory: z
    .string()
    .default('letsencrypt')
    .transform((value, ctx) => {
      const resolved = directoryShorthands[value] ?? value;
      try {
        const url = new URL(resolved);
        if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error();
      } catch {
        ctx.issues.push({ code: 'custom', input: value, message: 'must be an ACME directory URL, "letsencrypt" or "letsencrypt-staging"' });
        return z.NEVER;
      }
      return resolved;
    }),
  email: z.email().nullable().default(null),
  storage: z.string().min(1).default('/var/lib/opam-edge'),
  /** null = every exact host of every site (wildcards need DNS-01, which this does not do). */
  names: z
    .array(z.string().transform(normalizeHostName).refine(isHostName, 'must be an exact host name (HTTP-01 cannot prove a wildcard)'))
    .min(1)
    .nullable()
    .default(null),
  key_type: z.enum(['ecdsa-p256', 'rsa-2048']).default('ecdsa-p256'),
  ca_bundle: z.string().min(1).nullable().default(null),
  profile: z.string().min(1).nullable().default(null),
  /** A node with no certificate yet is degraded, not failing, this long after start (admin/health.ts). */
  start_grace: duration.refine((ms) => ms >= 0, 'must not be negative').default(600_000),
});

const schema = z.strictObject({
  listen: z
    .strictObject({
      http: z.array(listen).default(() => [parseListen('[::]:80') as ListenAddress]),
      https: z.array(listen).default(() => [parseListen('[::]:443') as ListenAddress]),
    })
    .default(() => ({ http: [parseListen('[::]:80') as ListenAddress], https: [parseListen('[::]:443') as ListenAddress] })),
  workers: z
    .union([z.literal('auto'), z.number().int().min(1).max(256)])
    .default(1)
    .transform((w) => (w === 'auto' ? availableParallelism() : w)),
  admin: listen.nullable().default(null),
  /** A file holding the admin listener's bearer token (a swarm secret); writes need it. */
  admin_token_file: z.string().min(1).nullable().default(null),
  /** "open": admin writes without a token (admin/admin-auth.ts); null: they need the token. */
  admin_writes: z.literal('open', { error: 'must be "open" or null' }).nullable().default(null),
  resolver: z
    .strictObject({
      servers: z
        .array(
          z.string().refine((s) => parseResolverServer(s) !== null, 'must be "IP" or "IP:PORT" ("[IPv6]:PORT" for IPv6)'),
        )
        .default([]),
      valid: positiveDuration.default(15_000),
    })
    .default({ servers: [], valid: 15_000 }),
  tls: z
    .strictObject({
      certificates: z.array(z.strictObject({ cert: z.string().min(1), key: z.string().min(1) })).default([]),
      certbot: z.string().min(1).nullable().default(null),
      unknown_sni: z.enum(['reject', 'default']).default('reject'),
      hsts: z.string().min(1).nullable().default(null),
      http2: z.boolean().default(true),
    })
    .default({ certificates: [], certbot: null, unknown_sni: 'reject', hsts: null, http2: true }),
  challenges: z
    .strictObject({
      webroot: z.string().min(1).nullable().default(null),
      peers: z.array(httpUrl('peer')).default([]),
    })
    .default({ webroot: null, peers: [] }),
  acme: acme.nullable().default(null),
  limits: z
    .strictObject({
      header_timeout: positiveDuration.default(60_000),
      idle_timeout: positiveDuration.default(75_000),
      max_header_size: size.refine((b) => b >= 1024, 'must be at least 1k').default(16 * 1024),
      max_body_size: size.nullable().default(null),
      // A request body must average this many bytes per second once header_timeout has
      // passed (see http/body-deadline.ts); null turns the check off.
      min_body_rate: size.refine((b) => b > 0, 'must be greater than zero').nullable().default(1024),
      upstream_connect_timeout: positiveDuration.default(60_000),
      upstream_read_timeout: positiveDuration.default(60_000),
    })
    .default({
      header_timeout: 60_000,
      idle_timeout: 75_000,
      max_header_size: 16 * 1024,
      max_body_size: null,
      min_body_rate: 1024,
      upstream_connect_timeout: 60_000,
      upstream_read_timeout: 60_000,
    }),
  access_log: z.string().min(1).default('stdout'),
  access_log_format: z.enum(['combined', 'json']).default('combined'),
  sites: z
    .array(
      z.strictObject({
        hosts: z.array(hostPattern).min(1),
        upstream,
      }),
    )
    .min(1),
});

export type Config = DeepReadonly<z.output<typeof schema>> & {
  /** Where the config came from: a file path, or "demo". */
  readonly source: string;
  /** The content of admin_token_file, trimmed; null without one. Never logged or shown. */
  readonly admin_token: string | null;
};
export type Site = Config['sites'][number];
export type Limits = Config['limits'];
export type Upstream = Site['upstream'];

type DeepReadonly<T> = T extends URL
  ? URL
  : T extends (infer U)[]
    ? readonly DeepReadonly<U>[]
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: string[] };

/** "127.0.0.11", "[::1]:5353", "10.0.0.2:53" -> the form node:dns setServers() takes, or null. */
export function parseResolverServer(value: string): string | null {
  if (isIP(value)) return value;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(value);
  if (v6 && isIP(v6[1]!) === 6 && Number(v6[2]) <= 65535) return value;
  const v4 = /^([0-9.]+):(\d{1,5})$/.exec(value);
  if (v4 && isIP(v4[1]!) === 4 && Number(v4[2]) <= 65535) return value;
  return null;
}

/** Parses and validates YAML text. Every problem comes back as "path (line N): message". */
export function parseConfig(text: string, source: string): ConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const at = lines.linePos(e.pos[0]);
        return `${source}:${at.line}:${at.col}: YAML ${e.message.split('\n')[0]}`;
      }),
    };
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || raw === undefined) return { ok: false, errors: ['(root): the file is empty; at least `sites` is required'] };
  const lineAt = (path: readonly PropertyKey[]): number | undefined => {
    const node = doc.getIn(path as unknown[], true);
    return isNode(node) && node.range ? lines.linePos(node.range[0]).line : undefined;
  };
  const lineOf = (path: readonly PropertyKey[]): string => {
    const line = lineAt(path);
    return line === undefined ? '' : ` (line ${line})`;
  };
  const result = validateConfig(raw, source, lineOf);
  if (result.ok) configLines.set(result.config, lineAt);
  return result;
}

/**
 * Where each key of a parsed config was written, for checks that run after validation
 * (files, names) and must name the line too. Kept beside the frozen Config, not in it, so
 * configs still compare and serialise as plain data.
 */
const configLines = new WeakMap<Config, (path: readonly PropertyKey[]) => number | undefined>();

/** The line of a key path in the file `config` was parsed from; undefined for a default or a config not from a file. */
export function configLine(config: Config, path: readonly PropertyKey[]): number | undefined {
  return configLines.get(config)?.(path);
}

/** Validates an already-parsed object (used for the built-in demo and by tests). */
export function validateConfig(
  raw: unknown,
  source: string,
  lineOf: (path: readonly PropertyKey[]) => string = () => '',
): ConfigResult {
  const result = schema.safeParse(raw);
  const errors: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const path = [...issue.path, key];
          errors.push(`${formatPath(path)}${lineOf(path)}: unknown key`);
        }
      } else {
        errors.push(`${formatPath(issue.path)}${lineOf(issue.path)}: ${issue.message}`);
      }
    }
  }
  // On the raw input, so that a host in two sites is reported even when other keys are
  // wrong too: the operator gets every problem in one run.
  checkHostOwnership(raw, errors, lineOf);
  if (!result.success) return { ok: false, errors };
  crossCheck(result.data, errors, lineOf);
  const adminToken = readAdminToken(result.data.admin_token_file, errors, lineOf);
  if (errors.length > 0) return { ok: false, errors };
  const config = result.data;
  return { ok: true, config: deepFreeze({ ...config, source, admin_token: adminToken }) as Config };
}

/**
 * A host may belong to one site only. Works on the raw input (strings only, normalised as
 * the schema does), so it runs whether or not the rest of the file validates.
 */
function checkHostOwnership(raw: unknown, errors: string[], lineOf: (p: readonly PropertyKey[]) => string): void {
  const sites = (raw as { sites?: unknown } | null)?.sites;
  if (!Array.isArray(sites)) return;
  const owner = new Map<string, number>();
  sites.forEach((site: unknown, i) => {
    const hosts = (site as { hosts?: unknown } | null)?.hosts;
    if (!Array.isArray(hosts)) return;
    hosts.forEach((value: unknown, j) => {
      if (typeof value !== 'string') return;
      const host = normalizeHostName(value);
      const previous = owner.get(host);
      const path = ['sites', i, 'hosts', j];
      if (previous === i) errors.push(`${formatPath(path)}${lineOf(path)}: "${host}" is listed twice`);
      else if (previous !== undefined) errors.push(`${formatPath(path)}${lineOf(path)}: "${host}" is already a host of sites[${previous}]`);
      else owner.set(host, i);
    });
  });
}

/** Rules that span several keys (run on a config that passed the schema). */
function crossCheck(config: z.output<typeof schema>, errors: string[], lineOf: (p: readonly PropertyKey[]) => string): void {
  // A wildcard address ("::" is dual-stack, "0.0.0.0") takes its port on every address: it
  // collides with any other listener on that port, as bind() would tell at start-up.
  const bound: { host: string; port: number; path: string }[] = [];
  const addresses: [string, ListenAddress[]][] = [
    ['listen.http', config.listen.http],
    ['listen.https', config.listen.https],
    ['admin', config.admin ? [config.admin] : []],
  ];
  for (const [key, list] of addresses) {
    list.forEach((address, i) => {
      if (address.port === 0) return;
      const path = key === 'admin' ? key : `${key}[${i}]`;
      const wild = (h: string) => h === '::' || h === '0.0.0.0';
      const other = bound.find((b) => b.port === address.port && (b.host === address.host || wild(b.host) || wild(address.host)));
      const at = lineOf(key === 'admin' ? ['admin'] : [...key.split('.'), i]);
      if (other) errors.push(`${path}${at}: "${address.text}" overlaps ${other.path}, bound on the same port`);
      else bound.push({ host: address.host, port: address.port, path });
    });
  }
  if (config.acme) {
    // The routing rule (host-name.ts): a name no site would serve gets no certificate.
    const hosts = config.sites.flatMap((s) => s.hosts);
    config.acme.names?.forEach((name, i) => {
      if (hosts.some((h) => covers(h, name))) return;
      // Older versions took "*.example.org" to cover any depth: say why that name fails.
      const deeper = hosts.find((h) => isWildcard(h) && name.endsWith(h.slice(1)));
      const why = deeper ? ` ("${deeper}" covers one label only)` : '';
      errors.push(`acme.names[${i}]${lineOf(['acme', 'names', i])}: "${name}" is not a host of any site${why}`);
    });
  }
}

/** Read with the config (at start and on each reload), so a bad file refuses it like a bad key. */
function readAdminToken(path: string | null, errors: string[], lineOf: (p: readonly PropertyKey[]) => string): string | null {
  if (path === null) return null;
  const at = `admin_token_file${lineOf(['admin_token_file'])}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    errors.push(`${at}: cannot read ${path}: ${errnoText(err)}`);
    return null;
  }
  const token = text.trim();
  if (token === '') errors.push(`${at}: ${path} is empty`);
  else if (/\s/.test(token)) errors.push(`${at}: ${path} holds more than one word (a bearer token has no spaces)`);
  return token;
}

/** ["sites", 0, "hosts", 1] -> "sites[0].hosts[1]" */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}


/** Reads and validates a config file. A missing or unreadable file is one error. */
export async function loadConfigFile(path: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${path}: cannot read the config file: ${errnoText(err)}`] };
  }
  return parseConfig(text, path);
}
