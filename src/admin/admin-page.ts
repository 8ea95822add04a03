// GET / on the admin listener: the /status document as one HTML page for a person. No
// script, no external asset (inline CSS); every value from the document goes through esc(),
// since names, errors and origins can carry anything a DNS answer, a CA or a file path can.

import type { StatusDocument } from './status.ts';

/** Days left under which a certificate is shown as a warning, then as a problem. */
const WARN_DAYS = 14;
const BAD_DAYS = 3;
const STATE_CLASS = { ok: 'ok', degraded: 'warn', failing: 'bad' } as const;

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;min-width:40%}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1b5e20}.warn{color:#8d6e00;background:#fff8e1}.bad{color:#b71c1c;background:#ffebee}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;font-weight:600}
.badge.ok{background:#e8f5e9}.badge.warn{background:#fff8e1}.badge.bad{background:#ffebee}
.muted{color:#777}code{font-size:.95em}ul{margin:.3em 0}
`;

export function esc(value: unknown): string {
  return String(value ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** A cell: escaped text, or a muted dash for null/empty. */
function cell(value: unknown, cls = ''): string {
  const empty = value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0);
  const text = Array.isArray(value) ? value.map(esc).join('<br>') : esc(value);
  return `<td${cls ? ` class="${cls}"` : ''}>${empty ? '<span class="muted">-</span>' : text}</td>`;
}

function table(headers: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p class="muted">${esc(empty)}</p>`;
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join('');
  return `<table><thead><tr>${head}</tr></thead><tbody>${rows.map((r) => `<tr>${r.join('')}</tr>`).join('')}</tbody></table>`;
}

function daysClass(days: number): string {
  return days < BAD_DAYS ? 'n bad' : days < WARN_DAYS ? 'n warn' : 'n';
}

/** Seconds for a person: "2d 3h", "1h 2m", "4m 5s". */
export function duration(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}

export function renderStatusPage(doc: StatusDocument): string {
  const badge = `<span class="badge ${STATE_CLASS[doc.health]}">${esc(doc.health)}</span>`;
  const parts: string[] = [
    `<h1>opam-edge ${esc(doc.version)} ${badge}</h1>`,
    doc.reasons.length > 0 ? `<ul>${doc.reasons.map((r) => `<li class="${STATE_CLASS[r.state]}">${esc(r.reason)}</li>`).join('')}</ul>` : '',
    `<p>pid ${esc(doc.pid)}, up ${esc(duration(doc.uptime_s))} (since ${esc(doc.started_at)}), workers ${esc(doc.workers.ready)} of ${esc(doc.workers.configured)} ready. Page made at ${esc(doc.now)}.</p>`,
    '<h2>Listeners</h2>',
    table(
      ['role', 'configured', 'bound', 'not bound'],
      doc.listeners.map((l) => [cell(l.role), cell(l.configured), cell(l.bound), cell(l.missing, l.missing.length > 0 ? 'bad' : '')]),
      'no listeners',
    ),
  ];
  if (doc.workers.list.length > 0) {
    parts.push(
      '<h2>Workers</h2>',
      table(
        ['id', 'pid', 'state', 'started'],
        doc.workers.list.map((w) => [cell(w.id, 'n'), cell(w.pid, 'n'), cell(w.ready ? 'ready' : 'starting', w.ready ? 'ok' : 'warn'), cell(w.started_at)]),
        'no workers',
      ),
    );
  }
  parts.push(
    '<h2>Sites</h2>',
    table(
      ['site', 'hosts', 'upstream', 'addresses', 'resolved at', 'resolver error'],
      doc.sites.map((s) => [cell(s.name), cell(s.hosts), cell(s.upstream), cell(s.addresses, s.addresses.length === 0 ? 'bad' : ''), cell(s.resolved_at), cell(s.resolve_error, s.resolve_error ? 'warn' : '')]),
      'no sites',
    ),
    '<h2>Certificates</h2>',
    table(
      ['names', 'source', 'issuer', 'not after', 'days left', 'next renewal', 'last error', 'origin'],
      doc.certificates.map((c) => [
        cell(c.names),
        cell(c.source),
        cell(c.issuer),
        cell(c.not_after),
        cell(c.days_left, daysClass(c.days_left)),
        cell(c.next_renewal),
        cell(c.last_error, c.last_error ? 'bad' : ''),
        cell(c.origin),
      ]),
      'no certificate loaded',
    ),
    doc.names_without_certificate.length > 0 ? `<p class="bad">No valid certificate for: ${doc.names_without_certificate.map(esc).join(', ')}</p>` : '',
  );
  if (doc.acme !== null) {
    parts.push(
      '<h2>ACME</h2>',
      table(
        ['name', 'next attempt', 'reason', 'failures', 'last error', 'serial'],
        doc.acme.map((a) => [cell(a.name), cell(a.next_attempt), cell(a.reason), cell(a.failures, a.failures > 0 ? 'n warn' : 'n'), cell(a.last_error, a.last_error ? 'bad' : ''), cell(a.serial)]),
        'no names managed',
      ),
    );
  }
  parts.push(
    '<h2>Challenge peers</h2>',
    table(
      ['peer', 'last forward', 'reached', 'last error'],
      doc.peers.map((p) => [
        cell(p.peer),
        cell(p.last_attempt_at),
        cell(p.reached === null ? null : p.reached ? 'yes' : 'no', p.reached === false ? 'bad' : p.reached ? 'ok' : ''),
        cell(p.last_error, p.last_error ? 'bad' : ''),
      ]),
      'no peers configured',
    ),
    '<p class="muted">Also: <a href="status">/status</a> (JSON), <a href="metrics">/metrics</a> (Prometheus), <a href="healthz">/healthz</a>.</p>',
  );
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
    `<meta http-equiv="refresh" content="30"><title>opam-edge ${esc(doc.health)}</title><style>${CSS}</style></head>` +
    `<body>${parts.join('\n')}</body></html>\n`;
}
