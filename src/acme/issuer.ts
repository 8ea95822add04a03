// Obtains one certificate per name from an ACME CA over HTTP-01, with acme-client 5.4 for
// the protocol. Its `auto()` is not used: it cannot send `profile` or `replaces` in the
// order, and its own challenge pre-check resolves names with the system resolver (it hangs
// against Pebble and, behind round-robin DNS, may land on the other node). The steps are
// the same: account (created once, key kept in storage), order, HTTP-01 tokens put in the
// node's ChallengeStore before the CA is told to look, removed afterwards, finalize with a
// fresh key, download. Every order is bounded (see transport.ts and `orderTimeoutMs`).

import type { Authorization, Client, Order } from 'acme-client';
import { EdgeError } from '../errors.ts';
import type { EventLog } from '../log.ts';
import type { ChallengeStore } from './challenges.ts';
import { certId, parseRenewalInfo } from './ari.ts';
import type { RenewalInfo } from './ari.ts';
import { inspectPair } from './storage.ts';
import type { AcmeStorage } from './storage.ts';
import { AcmeTransport, attachTransport } from './transport.ts';
import type { AcmeResponse } from './transport.ts';
import { parseRetryAfter } from './schedule.ts';

let acmeClient: Promise<typeof import('acme-client')> | null = null;
/**
 * acme-client is loaded on the first order, not at start: with its dependencies (axios,
 * @peculiar/x509, asn1js...) it adds 10 MB to an idle process's RSS, and cluster workers
 * never order.
 */
function loadAcmeClient(): Promise<typeof import('acme-client')> {
  return (acmeClient ??= import('acme-client'));
}

export type IssuedCertificate = { cert: string; key: string };
export type IssueOptions = {
  /** RFC 9773 certID of the certificate this one replaces (sent when the CA has ARI). */
  replaces?: string | null;
  signal?: AbortSignal;
};

/** The seam between the renewal loop and whoever issues certificates. */
export interface CertificateIssuer {
  issue(name: string, options?: IssueOptions): Promise<IssuedCertificate>;
  /** The CA's suggested renewal window, or null when its directory has no renewalInfo. */
  renewalInfo(certPem: string, signal?: AbortSignal): Promise<RenewalInfo | null>;
  close(): Promise<void>;
}

export type AcmeDirectory = {
  newNonce?: string;
  newAccount?: string;
  newOrder?: string;
  renewalInfo?: string;
  meta?: { profiles?: Record<string, string>; termsOfService?: string };
};

/** A failed order: the catalogue code ACME_ORDER_FAILED, with what the server asked for. */
export class AcmeOrderError extends EdgeError {
  /** From the server's Retry-After, in ms. */
  readonly retryAfterMs: number | null;
  /** The ACME problem type, e.g. "urn:ietf:params:acme:error:rateLimited". */
  readonly problem: string | null;
  readonly detail: string;
  constructor(detail: string, extra: { retryAfterMs?: number | null; problem?: string | null; cause?: unknown } = {}) {
    super('ACME_ORDER_FAILED', detail, { cause: extra.cause });
    this.detail = detail;
    this.retryAfterMs = extra.retryAfterMs ?? null;
    this.problem = extra.problem ?? null;
  }
}

export type AcmeIssuerOptions = {
  directory: string;
  email: string | null;
  keyType: 'ecdsa-p256' | 'rsa-2048';
  profile: string | null;
  /** PEM text of acme.ca_bundle. */
  caBundle: string | null;
  storage: AcmeStorage;
  challenges: ChallengeStore;
  log: EventLog;
  /** A whole order, from account to download. */
  orderTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Polling of pending challenges and orders (acme-client's backoff). */
  poll?: { attempts: number; minMs: number; maxMs: number };
};

export const ORDER_TIMEOUT_MS = 5 * 60_000;
const DIRECTORY_MAX_AGE_MS = 60 * 60_000;
const TOKEN_TTL_MS = 15 * 60_000;
const NO_ACCOUNT = 'urn:ietf:params:acme:error:accountDoesNotExist';

type Problem = { status: number; type: string | null; detail: string; retryAfterMs: number | null };

export class AcmeIssuer implements CertificateIssuer {
  readonly #o: AcmeIssuerOptions;
  readonly #transport: AcmeTransport;
  #client: Client | null = null;
  #directory: { data: AcmeDirectory; at: number } | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  /** The running order's signal and the last error answer it got (one order at a time). */
  #signal: AbortSignal | undefined;
  #problem: Problem | null = null;
  #warnedProfile = false;

  constructor(options: AcmeIssuerOptions) {
    this.#o = options;
    this.#transport = new AcmeTransport({ caBundle: options.caBundle, requestTimeoutMs: options.requestTimeoutMs, userAgent: 'opam-edge acme-client/5.4' });
  }

  /** The directory, fetched at most once an hour. */
  async directory(signal?: AbortSignal): Promise<AcmeDirectory> {
    if (this.#directory && Date.now() - this.#directory.at < DIRECTORY_MAX_AGE_MS) return this.#directory.data;
    const res = await this.#transport.getJson(this.#o.directory, signal);
    if (res.status !== 200 || typeof res.data !== 'object' || res.data === null) {
      throw new AcmeOrderError(`directory ${this.#o.directory} answered ${res.status}`, { retryAfterMs: res.retryAfterMs });
    }
    this.#directory = { data: res.data as AcmeDirectory, at: Date.now() };
    return this.#directory.data;
  }

  issue(name: string, options: IssueOptions = {}): Promise<IssuedCertificate> {
    const run = this.#queue.then(() => this.#bounded(name, options));
    this.#queue = run.catch(() => {});
    return run;
  }

  async renewalInfo(certPem: string, signal?: AbortSignal): Promise<RenewalInfo | null> {
    const dir = await this.directory(signal);
    if (!dir.renewalInfo) return null;
    const url = `${dir.renewalInfo.replace(/\/+$/, '')}/${certId(certPem)}`;
    const res = await this.#transport.getJson(url, signal);
    if (res.status !== 200) throw new AcmeOrderError(`renewalInfo answered ${res.status}`, { retryAfterMs: res.retryAfterMs });
    return parseRenewalInfo(res.data, res.retryAfterMs);
  }

  close(): Promise<void> {
    return this.#transport.close();
  }

  async #bounded(name: string, options: IssueOptions): Promise<IssuedCertificate> {
    const timeout = AbortSignal.timeout(this.#o.orderTimeoutMs ?? ORDER_TIMEOUT_MS);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    this.#signal = signal;
    this.#problem = null;
    let step = 'directory';
    const setStep = (s: string) => {
      step = s;
    };
    // The order itself stops at its next request once aborted; this returns at once.
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([this.#order(name, options.replaces ?? null, setStep), aborted]);
    } catch (err) {
      throw this.#failure(step, err, signal, timeout);
    } finally {
      this.#signal = undefined;
    }
  }

  async #order(name: string, replaces: string | null, setStep: (s: string) => void): Promise<IssuedCertificate> {
    const dir = await this.directory(this.#signal);
    setStep('account');
    let client = await this.#account();
    const payload: { identifiers: { type: 'dns'; value: string }[]; profile?: string; replaces?: string } = {
      identifiers: [{ type: 'dns', value: name }],
    };
    const profile = this.#o.profile;
    if (profile !== null) {
      if (dir.meta?.profiles && profile in dir.meta.profiles) payload.profile = profile;
      else if (!this.#warnedProfile) {
        this.#warnedProfile = true;
        this.#o.log.warn('acme_profile_not_offered', { profile, directory: this.#o.directory, offered: Object.keys(dir.meta?.profiles ?? {}) });
      }
    }
    if (replaces !== null && dir.renewalInfo) payload.replaces = replaces;

    setStep('new-order');
    let order: Order;
    try {
      order = await client.createOrder(payload as Parameters<Client['createOrder']>[0]);
    } catch (err) {
      const problem = this.#problem?.type ?? null;
      if (problem === NO_ACCOUNT) {
        // The CA forgot the account (a test CA restarted, or the account was closed):
        // register the same key again once.
        this.#o.log.warn('acme_account_unknown', { directory: this.#o.directory });
        await this.#o.storage.saveAccountUrl(this.#o.directory, null, this.#o.email);
        this.#client = null;
        client = await this.#account();
      } else if (payload.replaces === undefined) {
        throw err;
      } else {
        // An ARI `replaces` the CA does not accept (already replaced, not ours) must not
        // block the renewal itself.
        this.#o.log.warn('acme_replaces_refused', { name, replaces, reason: (err as Error).message });
        delete payload.replaces;
      }
      this.#problem = null;
      order = await client.createOrder(payload as Parameters<Client['createOrder']>[0]);
    }

    setStep('authorization');
    const authorizations = await client.getAuthorizations(order);
    await Promise.all(authorizations.map((authz) => this.#authorize(client, name, authz, setStep)));

    setStep('finalize');
    const { crypto: acmeCrypto } = await loadAcmeClient();
    const key = (this.#o.keyType === 'rsa-2048' ? await acmeCrypto.createPrivateRsaKey(2048) : await acmeCrypto.createPrivateEcdsaKey('P-256')).toString();
    const [, csr] = await acmeCrypto.createCsr({ altNames: [name], commonName: name.length <= 64 ? name : undefined }, key);
    const finalized = await client.finalizeOrder(order, csr);
    setStep('download');
    const cert = await client.getCertificate(finalized);
    inspectPair(cert, key, name);
    return { cert, key };
  }

  async #authorize(client: Client, name: string, authz: Authorization, setStep: (s: string) => void): Promise<void> {
    if (authz.status === 'valid') return;
    const challenge = authz.challenges.find((c) => c.type === 'http-01');
    if (!challenge) throw new AcmeOrderError(`the CA offers no http-01 challenge for ${authz.identifier.value}`);
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    this.#o.challenges.set(challenge.token, keyAuthorization, TOKEN_TTL_MS);
    let completed = false;
    try {
      setStep('challenge');
      await client.completeChallenge(challenge);
      completed = true;
      await client.waitForValidStatus(challenge);
      this.#o.log.info('acme_challenge_validated', { name, identifier: authz.identifier.value, token: challenge.token });
    } catch (err) {
      // A pending authorization left behind counts against the account's limits.
      if (!completed && !this.#signal?.aborted) await client.deactivateAuthorization(authz).catch(() => {});
      throw err;
    } finally {
      this.#o.challenges.delete(challenge.token);
    }
  }

  /** The account client: key created once and kept; the account URL registered once. */
  async #account(): Promise<Client> {
    if (this.#client) return this.#client;
    const { Client, crypto: acmeCrypto } = await loadAcmeClient();
    const { storage, directory, email } = this.#o;
    const stored = await storage.loadAccount(directory);
    const key = stored?.key ?? (await storage.saveAccountKey(directory, (await acmeCrypto.createPrivateEcdsaKey('P-256')).toString()));
    const poll = this.#o.poll ?? { attempts: 12, minMs: 1000, maxMs: 10_000 };
    const client = new Client({
      directoryUrl: directory,
      accountKey: key,
      accountUrl: stored?.url ?? undefined,
      backoffAttempts: poll.attempts,
      backoffMin: poll.minMs,
      backoffMax: poll.maxMs,
    });
    attachTransport(client, (url, method, body) => this.#send(url, method, body));
    if (!stored?.url) {
      await client.createAccount({ termsOfServiceAgreed: true, contact: email ? [`mailto:${email}`] : undefined });
      await storage.saveAccountUrl(directory, client.getAccountUrl(), email);
      this.#o.log.info('acme_account_registered', { directory, account: client.getAccountUrl() });
    }
    this.#client = client;
    return client;
  }

  /** Every request of the running order: bounded, and its error answers remembered. */
  async #send(url: string, method: string, body: unknown): Promise<AcmeResponse> {
    const res = await this.#transport.send(url, method, body, this.#signal);
    if (res.status >= 400) {
      const data = (typeof res.data === 'object' && res.data !== null ? res.data : {}) as { type?: unknown; detail?: unknown };
      this.#problem = {
        status: res.status,
        type: typeof data.type === 'string' ? data.type : null,
        detail: typeof data.detail === 'string' ? data.detail : String(res.data).slice(0, 200),
        retryAfterMs: parseRetryAfter(res.headers['retry-after'], Date.now()),
      };
    } else if (res.status < 300) {
      this.#problem = null;
    }
    return res;
  }

  #failure(step: string, err: unknown, signal: AbortSignal, timeout: AbortSignal): AcmeOrderError {
    if (err instanceof AcmeOrderError && err.problem !== null) return err;
    if (signal.aborted) {
      const why = timeout.aborted ? `timed out after ${(this.#o.orderTimeoutMs ?? ORDER_TIMEOUT_MS) / 1000} s` : 'stopped';
      return new AcmeOrderError(`${step}: ${why}`, { cause: err });
    }
    const problem = this.#problem;
    const message = err instanceof AcmeOrderError ? err.detail : ((err as Error)?.message ?? String(err));
    if (problem) {
      const type = problem.type ? ` (${problem.type.replace('urn:ietf:params:acme:error:', '')}, HTTP ${problem.status})` : ` (HTTP ${problem.status})`;
      return new AcmeOrderError(`${step}: ${problem.detail || message}${type}`, { retryAfterMs: problem.retryAfterMs, problem: problem.type, cause: err });
    }
    return new AcmeOrderError(`${step}: ${message}`, { cause: err, retryAfterMs: err instanceof AcmeOrderError ? err.retryAfterMs : null });
  }
}
