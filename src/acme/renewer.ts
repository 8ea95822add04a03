// The renewal loop: one timer, armed for the earliest of (a) the next routine check,
// about twice a day, (b) the moment the next certificate is due, (c) the next ARI poll.
// Each pass orders, one at a time, every name that is due: no certificate from any source,
// less than a third of the lifetime left, inside the CA's ARI window, a failed attempt's
// back-off over, or renewNow(). Failures back off (schedule.ts) and are persisted, so a
// restart does not retry at once; the working certificate is never touched. It runs in
// whichever process owns ACME: the sink and the challenge store are passed in.

import { covers } from '../host-name.ts';
import type { EventLog } from '../log.ts';
import type { CertificateSink, CertInfo } from '../tls/certificate.ts';
import { certId, pickInWindow } from './ari.ts';
import type { CertificateIssuer } from './issuer.ts';
import { emptyNameState } from './storage.ts';
import type { AcmeStorage, NameState, RenewalState, StoredCertificate } from './storage.ts';
import { DAY, nextAriPoll, nextAttemptAfterFailure, nextCheck, renewalTime } from './schedule.ts';

export type Clock = {
  now(): number;
  /** Calls `fn` after `ms`; the real one is unref'd so it never holds the process open. */
  setTimer(fn: () => void, ms: number): { clear(): void };
};

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { clear: () => clearTimeout(timer) };
  },
};

export type RenewerDeps = {
  names: readonly string[];
  issuer: CertificateIssuer;
  storage: AcmeStorage;
  sink: CertificateSink;
  log: EventLog;
  clock?: Clock;
  random?: () => number;
  /** Each order that ends (metrics). */
  onRenewal?: (name: string, result: 'success' | 'failure') => void;
};

/** One managed name's schedule (admin /status). */
export type RenewalStatus = { name: string; at: string; reason: Plan['reason']; failures: number; last_error: string | null; serial: string | null };

export type Plan = { at: number; reason: 'missing' | 'expiring' | 'ari' | 'retry' | 'forced' };

type Entry = {
  name: string;
  state: NameState;
  stored: StoredCertificate | null;
  forced: boolean;
  /** The last plan announced (acme_renewal_scheduled is logged when it changes). */
  announced: number | null;
};

/** setTimeout takes at most 2^31-1 ms; the loop wakes at least daily anyway. */
const MAX_SLEEP_MS = DAY;
/** Guards against re-ordering in a loop when a CA hands out certificates already "due". */
const MIN_REORDER_MS = 60_000;

export class Renewer {
  readonly #d: RenewerDeps;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #entries = new Map<string, Entry>();
  #timer: { clear(): void } | null = null;
  #nextCheck = 0;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #inFlight: string | null = null;
  readonly #abort = new AbortController();

  constructor(deps: RenewerDeps) {
    this.#d = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
  }

  /**
   * Loads the persisted schedule and the stored certificates (into the sink, so they serve
   * before anything is ordered), then runs the first pass in the background.
   */
  async start(): Promise<void> {
    const persisted = await this.#d.storage.loadState();
    for (const name of this.#d.names) {
      const stored = await this.#d.storage.loadCertificate(name);
      if (stored) {
        const refused = this.#serve(stored).refused[0];
        const fields = { name, serial: stored.serial, not_after: stored.notAfter.toISOString(), days_left: daysLeft(stored, this.#clock.now()), version: stored.version };
        if (refused) this.#d.log.warn('acme_certificate_refused', { ...fields, reason: refused.reason });
        else this.#d.log.info('acme_certificate_loaded', fields);
      }
      this.#entries.set(name, { name, state: persisted.names[name] ?? emptyNameState(), stored, forced: false, announced: null });
    }
    if (this.#stopped) return;
    this.#nextCheck = nextCheck(this.#clock.now(), this.#random);
    this.#kick();
  }

  /** Stops the timer and aborts a running order; resolves once the loop is idle. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.clear();
    this.#timer = null;
    this.#abort.abort(new Error('the renewal loop is stopping'));
    await this.#running;
  }

  /** Forces a renewal of `name` now (admin POST /renew/NAME). null for an unknown name. */
  renewNow(name: string): { name: string; at: string; in_progress: boolean } | null {
    const entry = this.#entries.get(name);
    if (!entry || this.#stopped) return null;
    const inProgress = this.#inFlight === name;
    if (!inProgress) {
      entry.forced = true;
      this.#kick();
    }
    return { name, at: new Date(this.#clock.now()).toISOString(), in_progress: inProgress };
  }

  /** Resolves when no pass is running (tests, after moving a clock). */
  async whenIdle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** The schedule, per name (for /status and tests). */
  status(): RenewalStatus[] {
    const now = this.#clock.now();
    return [...this.#entries.values()].map((e) => {
      const plan = this.plan(e.name, now)!;
      return { name: e.name, at: new Date(plan.at).toISOString(), reason: plan.reason, failures: e.state.failures, last_error: e.state.last_error, serial: e.stored?.serial ?? null };
    });
  }

  /** When `name` is due, and why. Pure in the sink's certificates, the state and `now`. */
  plan(name: string, now: number): Plan | null {
    const entry = this.#entries.get(name);
    if (!entry) return null;
    if (entry.forced) return { at: now, reason: 'forced' };
    const best = bestCertificate(this.#d.sink.certificates(), name, now);
    let plan: Plan;
    const ari = entry.state.ari;
    if (!best) plan = { at: now, reason: 'missing' };
    else if (ari?.selected && entry.stored && ari.serial === entry.stored.serial && best.serial === entry.stored.serial) plan = { at: Date.parse(ari.selected), reason: 'ari' };
    else plan = { at: renewalTime(best.notBefore.getTime(), best.notAfter.getTime()), reason: 'expiring' };
    // A certificate just issued is never re-ordered at once, whatever its dates say.
    const lastSuccess = entry.state.last_success ? Date.parse(entry.state.last_success) : NaN;
    if (best && Number.isFinite(lastSuccess)) {
      const lifetime = best.notAfter.getTime() - best.notBefore.getTime();
      plan.at = Math.max(plan.at, lastSuccess + Math.min(MIN_REORDER_MS, lifetime / 4));
    }
    // After a failure (a forced renewal's too) attempts go on at the back-off's pace, which
    // was persisted, until one succeeds.
    const retryAt = entry.state.next_attempt ? Date.parse(entry.state.next_attempt) : NaN;
    if (entry.state.failures > 0 && Number.isFinite(retryAt)) return { at: retryAt, reason: 'retry' };
    return plan;
  }

  /** Runs a pass now, or right after the one running. */
  #kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#timer?.clear();
    this.#timer = null;
    this.#running = this.#pass()
      .catch((err) => this.#d.log.error('acme_renewer_error', { reason: (err as Error)?.stack ?? String(err) }))
      .finally(() => {
        this.#running = null;
        if (this.#again) {
          this.#again = false;
          this.#kick();
        } else {
          this.#arm();
        }
      });
  }

  async #pass(): Promise<void> {
    let now = this.#clock.now();
    if (now >= this.#nextCheck) {
      this.#nextCheck = nextCheck(now, this.#random);
      this.#d.log.info('acme_check', { names: this.#d.names.length, next_check: new Date(this.#nextCheck).toISOString() });
    }
    await this.#pollRenewalInfo(now);
    for (const entry of this.#entries.values()) {
      if (this.#stopped) return;
      now = this.#clock.now();
      const plan = this.plan(entry.name, now)!;
      if (plan.at <= now) await this.#renew(entry, plan);
    }
    // A certificate just issued gets its renewal window now, not at the next check.
    await this.#pollRenewalInfo(this.#clock.now());
  }

  async #renew(entry: Entry, plan: Plan): Promise<void> {
    const { name } = entry;
    const ours = entry.stored && bestCertificate(this.#d.sink.certificates(), name, this.#clock.now())?.serial === entry.stored.serial;
    const replaces = ours && entry.stored ? safeCertId(entry.stored.cert) : null;
    this.#inFlight = name;
    entry.forced = false;
    entry.state.last_attempt = new Date(this.#clock.now()).toISOString();
    this.#d.log.info('acme_order_started', { name, reason: plan.reason, replaces });
    try {
      const issued = await this.#d.issuer.issue(name, { replaces, signal: this.#abort.signal });
      const stored = await this.#d.storage.saveCertificate(name, issued.cert, issued.key);
      const result = this.#serve(stored);
      if (result.refused.length > 0) throw new Error(`the certificate store refused it: ${result.refused[0]!.reason}`);
      entry.stored = stored;
      entry.state = { ...emptyNameState(), last_attempt: entry.state.last_attempt, last_success: new Date(this.#clock.now()).toISOString() };
      this.#d.log.info('acme_certificate_issued', {
        name,
        serial: stored.serial,
        not_before: stored.notBefore.toISOString(),
        not_after: stored.notAfter.toISOString(),
        days_left: daysLeft(stored, this.#clock.now()),
        version: stored.version,
      });
      this.#d.onRenewal?.(name, 'success');
    } catch (err) {
      if (this.#stopped) return;
      const now = this.#clock.now();
      const failures = entry.state.failures + 1;
      const retryAfterMs = (err as { retryAfterMs?: number | null }).retryAfterMs ?? null;
      const next = nextAttemptAfterFailure(now, failures, retryAfterMs, this.#random);
      const reason = (err as Error)?.message ?? String(err);
      entry.state = { ...entry.state, failures, next_attempt: new Date(next).toISOString(), last_error: reason };
      this.#d.log.error('acme_order_failed', {
        code: 'ACME_ORDER_FAILED',
        name,
        reason,
        failures,
        retry_after_ms: retryAfterMs,
        next_attempt: entry.state.next_attempt,
        serving: bestCertificate(this.#d.sink.certificates(), name, now)?.serial ?? null,
      });
      this.#d.onRenewal?.(name, 'failure');
    } finally {
      this.#inFlight = null;
    }
    await this.#persist();
  }

  /** Asks the CA for the renewal window of each certificate we issued, when due to. */
  async #pollRenewalInfo(now: number): Promise<void> {
    for (const entry of this.#entries.values()) {
      const stored = entry.stored;
      if (this.#stopped || !stored || stored.notAfter.getTime() <= now) continue;
      const ari = entry.state.ari;
      if (ari && ari.serial === stored.serial && Date.parse(ari.next_poll) > now) continue;
      let info;
      try {
        info = await this.#d.issuer.renewalInfo(stored.cert, this.#abort.signal);
      } catch (err) {
        if (this.#stopped) return;
        this.#d.log.warn('acme_renewal_info_failed', { code: 'ACME_RENEWAL_INFO_FAILED', name: entry.name, reason: (err as Error).message });
        const retryAfterMs = (err as { retryAfterMs?: number | null }).retryAfterMs ?? null;
        if (ari && ari.serial === stored.serial) entry.state.ari = { ...ari, next_poll: new Date(nextAriPoll(now, retryAfterMs)).toISOString() };
        continue;
      }
      if (info === null) continue;
      const sameWindow = ari && ari.serial === stored.serial && Date.parse(ari.start) === info.start && Date.parse(ari.end) === info.end;
      // A window already past means "renew now" (RFC 9773 4.2), unless it ended before
      // this certificate existed: that one cannot be meant for it, and following it would
      // re-order in a loop.
      const stale = info.end <= stored.notBefore.getTime();
      const selected = stale ? null : sameWindow && ari.selected ? Date.parse(ari.selected) : info.end <= now ? now : pickInWindow(Math.max(info.start, now), info.end, this.#random);
      if (stale && !sameWindow) this.#d.log.warn('acme_renewal_window_ignored', { name: entry.name, serial: stored.serial, end: new Date(info.end).toISOString() });
      entry.state.ari = {
        serial: stored.serial,
        start: new Date(info.start).toISOString(),
        end: new Date(info.end).toISOString(),
        selected: selected === null ? null : new Date(selected).toISOString(),
        next_poll: new Date(nextAriPoll(now, info.retryAfterMs)).toISOString(),
        explanation_url: info.explanationUrl,
      };
      if (!sameWindow && !stale) {
        this.#d.log.info('acme_renewal_window', { name: entry.name, start: entry.state.ari.start, end: entry.state.ari.end, selected: entry.state.ari.selected, explanation_url: info.explanationUrl });
      }
      await this.#persist();
    }
  }

  /** Arms the one timer for the earliest due moment; logs each name's plan when it moves. */
  #arm(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    let wake = this.#nextCheck;
    for (const entry of this.#entries.values()) {
      const plan = this.plan(entry.name, now)!;
      if (plan.at !== entry.announced) {
        entry.announced = plan.at;
        this.#d.log.info('acme_renewal_scheduled', { name: entry.name, at: new Date(plan.at).toISOString(), reason: plan.reason });
      }
      wake = Math.min(wake, plan.at);
      const ari = entry.state.ari;
      if (ari && entry.stored && ari.serial === entry.stored.serial) wake = Math.min(wake, Date.parse(ari.next_poll));
    }
    this.#timer?.clear();
    this.#timer = this.#clock.setTimer(() => this.#kick(), Math.min(MAX_SLEEP_MS, Math.max(0, wake - now)));
  }

  #serve(stored: StoredCertificate) {
    return this.#d.sink.setSource(`acme:${stored.name}`, 'acme', [{ cert: stored.cert, key: stored.key, origin: stored.path }]);
  }

  async #persist(): Promise<void> {
    const state: RenewalState = { version: 1, names: {} };
    for (const entry of this.#entries.values()) state.names[entry.name] = entry.state;
    try {
      await this.#d.storage.saveState(state);
    } catch (err) {
      this.#d.log.error('acme_state_save_failed', { code: 'ACME_STORAGE_FAILED', reason: (err as Error).message });
    }
  }
}

/** The serving certificate for `name` that lasts longest: exact name or a matching wildcard. */
export function bestCertificate(certs: readonly CertInfo[], name: string, now: number): CertInfo | null {
  let best: CertInfo | null = null;
  for (const cert of certs) {
    if (cert.notBefore.getTime() > now || cert.notAfter.getTime() <= now) continue;
    if (!cert.names.some((pattern) => covers(pattern, name))) continue;
    if (!best || cert.notAfter > best.notAfter) best = cert;
  }
  return best;
}

function daysLeft(stored: StoredCertificate, now: number): number {
  return Math.round(((stored.notAfter.getTime() - now) / DAY) * 10) / 10;
}

function safeCertId(pem: string): string | null {
  try {
    return certId(pem);
  } catch {
    return null;
  }
}
