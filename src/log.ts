// Two logs. Events (start, listeners, certificates, upstream changes, peers, reloads) are
// JSON lines on stderr through pino. The access log is one line per request, nginx's
// `combined` format or JSON, written through a buffered destination so the request path
// never waits on a write; disabled, it costs one boolean check.

import { pino } from 'pino';
import { mkdirSync } from 'node:fs';
import { LineWriter } from './line-writer.ts';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';

export type Fields = Record<string, unknown>;

export type EventLog = {
  debug(event: string, fields?: Fields): void;
  info(event: string, fields?: Fields): void;
  warn(event: string, fields?: Fields): void;
  error(event: string, fields?: Fields): void;
};

/** Events as JSON lines: {"level":"info","time":"...","pid":1,"event":"listening",...}. */
export function createEventLog(stream: Writable | NodeJS.WritableStream = process.stderr, level = process.env.OPAM_EDGE_LOG_LEVEL ?? 'info'): EventLog {
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream === process.stderr ? pino.destination({ fd: 2, sync: true }) : (stream as Writable),
  );
  return {
    debug: (event, fields) => logger.debug({ event, ...fields }),
    info: (event, fields) => logger.info({ event, ...fields }),
    warn: (event, fields) => logger.warn({ event, ...fields }),
    error: (event, fields) => logger.error({ event, ...fields }),
  };
}

/** An event log that drops everything (tests, `check`). */
export const silentLog: EventLog = { debug() {}, info() {}, warn() {}, error() {} };

/** What one request leaves in the access log. */
export type AccessRecord = {
  remoteAddr: string;
  method: string;
  url: string;
  httpVersion: string;
  status: number;
  bytesSent: number;
  referer: string | undefined;
  userAgent: string | undefined;
  host: string;
  upstreamAddr: string | null;
  startedAt: number;
  requestId: string | null;
};

export type AccessLog = {
  readonly enabled: boolean;
  write(record: AccessRecord): void;
  /** Reopens the file (after logrotate moved it). */
  reopen(): void;
  flush(): void;
  close(): Promise<void>;
};

const FLUSH_EVERY_MS = 1000;

/**
 * A file target is opened once synchronously first, so that a path that cannot be written
 * is a start-up (or reload) error rather than a crash later; write errors after that are
 * events, and the requests go on. Lines go out in whole-line writes (see line-writer.ts),
 * so workers sharing stdout or a file never interleave inside a line.
 */
export function createAccessLog(target: string, format: 'combined' | 'json', log: EventLog = silentLog): AccessLog {
  if (target === 'off') {
    return { enabled: false, write() {}, reopen() {}, flush() {}, async close() {} };
  }
  if (target !== 'stdout') mkdirSync(dirname(target), { recursive: true });
  const writer = new LineWriter(target === 'stdout' ? null : target, {
    onError: (err) => log.error('access_log_failed', { target, error: err.message }),
    onDrop: (dropped) => log.warn('access_log_dropped', { target, dropped, reason: 'the destination is not keeping up' }),
  });
  const timer = setInterval(() => writer.flush(), FLUSH_EVERY_MS);
  timer.unref();
  const render = format === 'json' ? renderJson : renderCombined;
  return {
    enabled: true,
    write: (record) => writer.write(render(record)),
    reopen: () => writer.reopen(),
    flush: () => writer.flush(),
    async close() {
      clearInterval(timer);
      await writer.close();
    },
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
let cachedSecond = -1;
let cachedLocalTime = '';

/** nginx's $time_local in UTC, e.g. "26/Nov/2026:09:09:33 +0000"; rebuilt once a second. */
export function timeLocal(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    const d = new Date(second * 1000);
    cachedSecond = second;
    cachedLocalTime = `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
  }
  return cachedLocalTime;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

const NEEDS_ESCAPE = /["\\\x00-\x1f\x7f-\uffff]/;
/** A character past latin1: the string is text already, not node's one-char-per-byte header form. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/;
const HIGH_LATIN1 = /[\u0080-\u00ff]/;

/** nginx's escaping of logged variables: `"` and `\` and bytes outside printable ASCII as \xHH. */
export function escapeLogValue(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  let out = '';
  for (const byte of Buffer.from(value, BEYOND_LATIN1.test(value) ? 'utf8' : 'latin1')) {
    out += byte === 0x22 || byte === 0x5c || byte < 0x20 || byte > 0x7e ? `\\x${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/**
 * $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
 * `now` is when the line is written, the end of the request: nginx's $time_local.
 */
export function renderCombined(r: AccessRecord, now = Date.now()): string {
  return `${r.remoteAddr} - - [${timeLocal(now)}] "${escapeLogValue(r.method)} ${escapeLogValue(r.url)} HTTP/${r.httpVersion}" ${r.status} ${r.bytesSent} "${r.referer === undefined ? '-' : escapeLogValue(r.referer)}" "${r.userAgent === undefined ? '-' : escapeLogValue(r.userAgent)}"\n`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * node:http and node:http2 give header values and the target one character per byte
 * (latin1). For JSON those bytes are read as UTF-8 where they are valid UTF-8, so a
 * "Müller/1.0 ✓" user agent parses back as itself (nginx's escape=json writes the bytes
 * as they came); bytes that are not UTF-8 stay one character each (U+0080..U+00FF).
 */
export function headerText(value: string): string {
  if (!HIGH_LATIN1.test(value) || BEYOND_LATIN1.test(value)) return value;
  try {
    return utf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

const NON_ASCII = /[\u007f-\uffff]/g;
const HAS_NON_ASCII = /[\u007f-\uffff]/;

/** The same fields as `combined`, plus host, upstream address, duration and request id. `time` is when the line is written. */
export function renderJson(r: AccessRecord, now = Date.now()): string {
  const line = `${JSON.stringify({
    time: new Date(now).toISOString(),
    remote_addr: r.remoteAddr,
    request: headerText(`${r.method} ${r.url} HTTP/${r.httpVersion}`),
    status: r.status,
    body_bytes_sent: r.bytesSent,
    http_referer: r.referer === undefined ? null : headerText(r.referer),
    http_user_agent: r.userAgent === undefined ? null : headerText(r.userAgent),
    host: r.host,
    upstream_addr: r.upstreamAddr,
    request_time: (now - r.startedAt) / 1000,
    request_id: r.requestId,
  })}\n`;
  // ASCII only (non-ASCII as \\u escapes, which JSON.parse turns back into the same
  // characters), so a line's length is its size in bytes.
  return HAS_NON_ASCII.test(line) ? line.replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : line;
}
