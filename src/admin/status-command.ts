// `opam-edge status [--config FILE]`: the running node's health, certificates, upstreams and
// workers, from GET /status on its admin listener, as a short table for a person (in the
// container: `docker exec C opam-edge status`; the image has no curl).
// The config is read only for its `admin` address, the HEALTHCHECK's way (healthcheck.ts:
// the YAML library, no schema), and found the same way (configPath()). Exit 0: an answer,
// ok or degraded; 1: failing, or no answer (one line on stderr); 2: usage.

import { adminGet, configPath, probeFor, readLenient } from '../healthcheck.ts';
import type { StatusDocument } from './status.ts';
import { duration } from './admin-page.ts';

const STATUS_USAGE = 'Usage: opam-edge status [--config FILE]\n';

type Output = { write(text: string): unknown };

export async function statusCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, out: Output = process.stdout, err: Output = process.stderr): Promise<number> {
  let flag: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return out.write(STATUS_USAGE), 0;
    const value = arg === '--config' || arg === '-c' ? argv[++i] : arg.startsWith('--config=') ? arg.slice('--config='.length) : null;
    if (value === null) return err.write(`opam-edge status: unknown argument "${arg}"\n${STATUS_USAGE}`), 2;
    if (!value) return err.write(`opam-edge status: --config needs a file\n${STATUS_USAGE}`), 2;
    flag = value;
  }
  const path = await configPath(flag, env);
  let raw: unknown;
  try {
    raw = await readLenient(path);
  } catch (e) {
    return err.write(`opam-edge status: cannot read ${path}: ${(e as Error).message.split('\n')[0]}\n`), 1;
  }
  const probe = probeFor(raw);
  if (probe.kind !== 'admin') return err.write(`opam-edge status: ${path} sets no admin address with a fixed port (e.g. admin: "127.0.0.1:9145")\n`), 1;
  let doc: StatusDocument;
  try {
    const res = await adminGet(probe, '/status', 4 * 1024 * 1024);
    if (res.status !== 200) throw new Error(`answered ${res.status}`);
    doc = JSON.parse(res.body) as StatusDocument;
  } catch (e) {
    return err.write(`opam-edge status: admin ${probe.address}/status: ${(e as Error).message.split('\n')[0]}\n`), 1;
  }
  out.write(renderStatus(doc, probe.address));
  return doc.health === 'failing' ? 1 : 0;
}

/** The document as text: health and reasons, then one table each for certificates, sites and workers. */
function renderStatus(doc: StatusDocument, address: string): string {
  const lines = [`opam-edge ${doc.version} at ${address}: ${doc.health}`];
  for (const r of doc.reasons) lines.push(`  ${r.state.padEnd(8)}  ${r.reason}`);
  lines.push(`pid ${doc.pid}, up ${duration(doc.uptime_s)}, workers ${doc.workers.ready} of ${doc.workers.configured} ready`, '');
  lines.push(
    ...table(
      ['certificate', 'days left', 'next renewal', 'source', 'key'],
      doc.certificates.map((c) => [c.names.join(', '), c.days_left.toFixed(1), c.next_renewal ?? '-', c.source, c.key_type]),
      'no certificate loaded',
    ),
  );
  if (doc.names_without_certificate.length > 0) lines.push(`no valid certificate: ${doc.names_without_certificate.join(', ')}`);
  lines.push(
    '',
    ...table(
      ['site', 'upstream', 'addresses'],
      doc.sites.map((s) => [s.name, s.upstream, s.addresses.length > 0 ? s.addresses.join(', ') : `none${s.resolve_error ? ` (${s.resolve_error})` : ''}`]),
      'no sites',
    ),
  );
  if (doc.workers.list.length > 0) {
    lines.push('', ...table(['worker', 'pid', 'state', 'started'], doc.workers.list.map((w) => [String(w.id), String(w.pid ?? '-'), w.ready ? 'ready' : 'starting', w.started_at]), ''));
  }
  return `${lines.join('\n')}\n`;
}

/** Columns padded to their widest cell; `empty` alone when there is no row. */
function table(headers: string[], rows: string[][], empty: string): string[] {
  if (rows.length === 0) return [empty];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(headers), ...rows.map(line)];
}

if (import.meta.main) {
  statusCommand(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`opam-edge status: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
