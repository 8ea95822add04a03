// Expected outcomes, written per role in the corpus as a small language:
//   "reject-400"                 one step
//   "redirect+reject-400"        a sequence: one answer per step, in order
//   "reject-400|reject-501"      alternatives: any one of them
// and the judgement of what a target did against them.

import type { Role } from './corpus.ts';

export const STEPS = {
  // Served: port 80 answers its redirect (or 404 on the challenge path); a proxy forwards
  // the request and relays the origin's 200.
  redirect: { roles: ['http'], statuses: [301], closes: false },
  'not-found': { roles: ['http'], statuses: [404], closes: false },
  forward: { roles: ['proxy'], statuses: [200], closes: false },
  // Rejected: that status, then the connection is closed (docs/behaviour.md, "Limits and bad
  // input"; RFC 9112 6.3).
  'reject-400': { roles: ['http', 'proxy'], statuses: [400], closes: true },
  'reject-413': { roles: ['http', 'proxy'], statuses: [413], closes: true },
  // An unmet expectation is no framing error: the body is read and the connection may stay.
  'reject-417': { roles: ['http', 'proxy'], statuses: [417], closes: false },
  'reject-431': { roles: ['http', 'proxy'], statuses: [431], closes: true },
  'reject-501': { roles: ['http', 'proxy'], statuses: [501], closes: true },
  'reject-505': { roles: ['http', 'proxy'], statuses: [505], closes: true },
  'reject-4xx': { roles: ['http', 'proxy'], statuses: 'any-4xx', closes: true },
  'reject-too-large': { roles: ['http', 'proxy'], statuses: [400, 414, 431], closes: true },
  // The fault is in the body: port 80 may have sent its redirect before reading it.
  'reject-400-body': { roles: ['http', 'proxy'], statuses: [400], closes: true, body: true },
  'reject-4xx-body': { roles: ['http', 'proxy'], statuses: 'any-4xx', closes: true, body: true },
  // No answer: the server closes at once, or waits for the rest of an incomplete message.
  close: { roles: ['http', 'proxy'], statuses: [], closes: true },
  wait: { roles: ['http', 'proxy'], statuses: [], closes: false },
} as const satisfies Record<string, { roles: readonly Role[]; statuses: readonly number[] | 'any-4xx'; closes: boolean; body?: boolean }>;

export type Step = keyof typeof STEPS;
export type Expectation = Step[][];

export function parseExpectation(text: string, role: Role): Expectation {
  return text.split('|').map((alternative) =>
    alternative.split('+').map((name, i, all) => {
      const step = STEPS[name.trim() as Step];
      if (!step) throw new Error(`unknown expected outcome "${name}" in "${text}"`);
      if (!(step.roles as readonly Role[]).includes(role)) throw new Error(`"${name}" is not an outcome of the ${role} role`);
      if ((step.closes || name.trim() === 'wait') && i !== all.length - 1) {
        throw new Error(`"${name}" ends the exchange: it must be the last step of "${text}"`);
      }
      return name.trim() as Step;
    }),
  );
}

/** One final response as the client saw it. Status 0: bytes that are not an HTTP response. */
export type SeenResponse = { status: number; location?: string; fromOrigin: boolean };

export type OriginRequest = { method: string; target: string; host: string | undefined; bodyLength: number; head: string };

export type OriginSeen = {
  /** Requests whose header section the origin parsed. */
  started: number;
  /** Requests parsed to the end of their body and answered. */
  complete: number;
  errors: string[];
  requests: OriginRequest[];
};

export type Observation = {
  responses: SeenResponse[];
  interim: number[];
  /** The server closed the connection (rather than our quiet timer ending the wait). */
  closed: boolean;
  ms: number;
  origin?: OriginSeen;
  /** The client could not even talk to the target. */
  error?: string;
};

function isBodyStep(step: Step): boolean {
  const def = STEPS[step];
  return 'body' in def && def.body;
}

function statusFits(step: Step, status: number, role: Role): boolean {
  const def = STEPS[step];
  if (isBodyStep(step) && role === 'http' && status === 301) return true;
  if (def.statuses === 'any-4xx') return status >= 400 && status < 500;
  return (def.statuses as readonly number[]).includes(status);
}

function matchAlternative(steps: Step[], seen: Observation, role: Role): boolean {
  const responses = seen.responses;
  let next = 0;
  for (const step of steps) {
    if (step === 'close') return next === responses.length && seen.closed;
    if (step === 'wait') return next === responses.length && !seen.closed;
    // Port 80 answers its redirect before it reads the body; the body's 400 may follow it.
    if (isBodyStep(step) && role === 'http' && responses[next]?.status === 301 && responses.length > next + 1) next++;
    const response = responses[next++];
    if (!response || !statusFits(step, response.status, role)) return false;
    if (step === 'forward' && !response.fromOrigin) return false;
    if (STEPS[step].closes) return next === responses.length && seen.closed;
  }
  return next === responses.length;
}

/** The alternative the observation matches, or null. */
export function matchExpectation(expectation: Expectation, seen: Observation, role: Role): Step[] | null {
  for (const alternative of expectation) if (matchAlternative(alternative, seen, role)) return alternative;
  return null;
}

/** "301 301", "400 closed", "closed", "waiting": the outcome in the expectation's words. */
export function describeOutcome(seen: Observation): string {
  if (seen.error) return `error: ${seen.error}`;
  const parts = seen.responses.map((r) => (r.status === 0 ? 'non-HTTP bytes' : String(r.status)));
  parts.push(seen.closed ? 'closed' : 'open');
  return parts.join(' ');
}
