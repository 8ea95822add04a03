// Runs the corpus against one target: each case on a fresh connection, its bytes written
// exactly as given, then everything the server answers is collected until it closes the
// connection or goes quiet. For proxy targets the recording origin says what reached it.
// The verdict checks the three things that matter: the expected outcome (docs/behaviour.md,
// "Limits and bad input", where it gives one), no ambiguous request forwarded, and no
// request read out of a rejected one.

import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';
import type { Case, Part, Role } from './corpus.ts';
import { matchExpectation } from './expectations.ts';
import type { Observation, Step } from './expectations.ts';
import { parseResponses } from './responses.ts';
import { ORIGIN_MARK } from './recording-origin.ts';
import { TARGETS } from './targets.ts';
import type { Target } from './targets.ts';

export type Timing = {
  /** How long to wait for a first byte before deciding the server is waiting for more. */
  firstByteMs: number;
  /** How long the connection must stay silent after the last byte received. */
  quietMs: number;
  /** After the client is done, how long to let the proxy's upstream side settle. */
  settleMs: number;
};

export const DEFAULT_TIMING: Timing = { firstByteMs: 2000, quietMs: 400, settleMs: 150 };

/** The hidden request every smuggling case carries. Seeing it anywhere is a desync. */
export const SMUGGLED_PATH = '/smuggled';

type Exchange = { received: Buffer; closed: boolean; ms: number; error?: string };

function exchange(target: Target, parts: Part[], timing: Timing): Promise<Exchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket: Socket = target.tls
      ? tlsConnect({ host: '127.0.0.1', port: target.port, servername: target.tls.servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : connect({ host: '127.0.0.1', port: target.port });
    const chunks: Buffer[] = [];
    let closed = false;
    let connected = false;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const hardStop = setTimeout(() => finish(), 15_000);
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(hardStop);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed, ms: Date.now() - started, error });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(), chunks.length > 0 ? timing.quietMs : timing.firstByteMs);
    };
    socket.once(target.tls ? 'secureConnect' : 'connect', async () => {
      connected = true;
      for (const part of parts) {
        if (done || socket.destroyed || !socket.writable) break;
        if ('data' in part) socket.write(part.data);
        else await new Promise((r) => setTimeout(r, part.pauseMs));
      }
      if (!done) arm();
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (connected) arm();
    });
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) return finish(`${err.code ?? err.message}`);
      // A reset or a write after the server's close: the server ended the connection.
      closed = true;
      finish();
    });
  });
}

export async function observe(target: Target, testCase: Case, timing: Timing = DEFAULT_TIMING): Promise<Observation> {
  const ex = await exchange(target, testCase.parts, timing);
  const parsed = parseResponses(ex.received, ex.closed);
  const seen: Observation = {
    responses: parsed.responses.map((r) => ({ status: r.status, location: r.headers.get('location'), fromOrigin: r.headers.has(ORIGIN_MARK) })),
    interim: parsed.interim,
    closed: ex.closed,
    ms: ex.ms,
    error: ex.error,
  };
  if (target.origin) {
    await new Promise((r) => setTimeout(r, timing.settleMs));
    const { bytes: _bytes, ...origin } = target.origin.take();
    seen.origin = origin;
    // take() dropped the upstream connections: let the proxy notice before the next case.
    await new Promise((r) => setTimeout(r, 50));
  }
  return seen;
}

export type Verdict = {
  /** The outcome is one the corpus expects for this role. */
  statusOk: boolean;
  /** Which expected alternative matched. */
  matched: Step[] | null;
  /** Desync evidence: a hidden request answered or forwarded, an ambiguous request forwarded, stray bytes upstream. */
  safety: string[];
  /** Other departures: wrong Location, forwarded request not as the case says. */
  details: string[];
};

export function judge(testCase: Case, role: Role, seen: Observation): Verdict {
  const matched = seen.error ? null : matchExpectation(testCase.expect[role], seen, role);
  const safety: string[] = [];
  const details: string[] = [];
  if (seen.error) details.push(`could not talk to the target: ${seen.error}`);
  if (!matched) details.push(`expected ${testCase.expectText[role]}`);
  if (testCase.mustClose && !seen.closed) details.push('the connection should have been closed');
  for (const r of seen.responses) {
    if (r.location?.includes(SMUGGLED_PATH)) safety.push(`answered the hidden request (Location: ${r.location})`);
  }
  const origin = seen.origin;
  if (origin) {
    const forwards = (matched ?? []).filter((s) => s === 'forward').length;
    // Answers the client got from the origin (an HTTP/0.9-style answer carries no mark).
    const relayed = seen.responses.filter((r) => r.fromOrigin || (r.status === 0 && origin.complete > 0)).length;
    if (origin.requests.some((q) => q.target.includes(SMUGGLED_PATH))) safety.push('the hidden request reached the origin');
    if (origin.errors.length > 0) safety.push(`the origin could not parse what it got: ${origin.errors.join('; ')}`);
    if (testCase.ambiguous && origin.complete > 0) safety.push(`ambiguous request forwarded (${origin.complete} complete at the origin)`);
    if (testCase.ambiguous && testCase.detect === 'headers' && origin.started > origin.complete) safety.push('ambiguous request started upstream');
    // A request the client never got an answer for was read out of the bytes of another.
    if (origin.complete > relayed) safety.push(`${origin.complete - relayed} request(s) completed at the origin without their answer reaching the client`);
    if (origin.started - origin.complete > 1) safety.push(`${origin.started - origin.complete} requests left cut off upstream`);
    const first = origin.requests[0];
    const want = testCase.forwarded;
    if (want && first && forwards > 0) {
      if (want.target !== undefined && first.target !== want.target) details.push(`forwarded target ${first.target}, expected ${want.target}`);
      if (want.host !== undefined && first.host !== want.host) details.push(`forwarded Host ${first.host}, expected ${want.host}`);
      if (want.bodyLength !== undefined && first.bodyLength !== want.bodyLength) details.push(`forwarded body ${first.bodyLength} bytes, expected ${want.bodyLength}`);
      if (want.absent !== undefined && first.head.includes(want.absent)) details.push(`forwarded head still contains ${want.absent}`);
    }
  }
  if (role === 'http' && testCase.location && matched?.includes('redirect')) {
    const location = seen.responses.find((r) => r.status === 301)?.location;
    if (location !== testCase.location) details.push(`Location ${location}, expected ${testCase.location}`);
  }
  return { statusOk: matched !== null, matched, safety, details };
}

export type CaseResult = { testCase: Case; seen: Observation; verdict: Verdict };

/** The corpus against one target, one case after the other (the origin's record is per case). */
export async function runTarget(target: Target, cases: Case[], timing: Timing = DEFAULT_TIMING): Promise<CaseResult[]> {
  const role = TARGETS[target.key].role;
  const results: CaseResult[] = [];
  for (const testCase of cases) {
    const seen = await observe(target, testCase, timing);
    results.push({ testCase, seen, verdict: judge(testCase, role, seen) });
  }
  return results;
}
