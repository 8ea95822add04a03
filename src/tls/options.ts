// The TLS settings every https listener and certificate context shares: Mozilla's
// "intermediate" profile (guidelines 5.7, https://ssl-config.mozilla.org/guidelines/5.7.json),
// the key-exchange groups with the post-quantum hybrid where the runtime's OpenSSL has it,
// session tickets with keys shared by every context, and ALPN.

import { createSecureContext } from 'node:tls';
import type { SecureContextOptions } from 'node:tls';
import { constants, randomBytes } from 'node:crypto';

/** Mozilla intermediate, guidelines 5.7: TLS 1.2 + 1.3, AEAD ciphers with forward secrecy. */
export const INTERMEDIATE = {
  guidelines: '5.7',
  /** TLS 1.3 suites (node:tls takes them in `ciphers`, told apart by their TLS_ prefix). */
  ciphersuites: ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'],
  /** TLS 1.2 ciphers, in Mozilla's order. */
  ciphers: [
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
    'DHE-RSA-AES128-GCM-SHA256',
    'DHE-RSA-AES256-GCM-SHA384',
    'DHE-RSA-CHACHA20-POLY1305',
  ],
  groups: ['X25519', 'prime256v1', 'secp384r1'],
  /** Mozilla: "server_preferred_order": false; every listed cipher is strong, the client knows its hardware. */
  honorCipherOrder: false,
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
} as const;

/** The hybrid ML-KEM group (OpenSSL >= 3.5), offered first when the runtime supports it. */
export const PQ_GROUP = 'X25519MLKEM768';

/** OpenSSL compares it when resuming a session: one constant for every context of the process. */
export const SESSION_ID_CONTEXT = 'opam-edge';

/** Ticket lifetime hint and session lifetime, as Mozilla's nginx config (ssl_session_timeout 1d). */
export const SESSION_TIMEOUT_S = 86_400;

/** node:tls wants exactly 48 bytes: 16 name, 16 HMAC secret, 16 AES key. */
export const TICKET_KEY_BYTES = 48;

let groupsCache: string | null = null;

/**
 * The groups list for `ecdhCurve`: X25519MLKEM768 first where this runtime's OpenSSL takes
 * it (Node 24 bundles 3.5), else the classic list. Checked once by building a context.
 */
export function supportedGroups(): string {
  if (groupsCache !== null) return groupsCache;
  const classic = INTERMEDIATE.groups.join(':');
  try {
    createSecureContext({ ecdhCurve: `${PQ_GROUP}:${classic}` });
    groupsCache = `${PQ_GROUP}:${classic}`;
  } catch {
    groupsCache = classic;
  }
  return groupsCache;
}

/** Fresh ticket keys: once per process unless injected (a multi-worker mode shares them). */
export function newTicketKeys(): Buffer {
  return randomBytes(TICKET_KEY_BYTES);
}

export function checkTicketKeys(keys: Buffer): Buffer {
  if (!Buffer.isBuffer(keys) || keys.length !== TICKET_KEY_BYTES) {
    throw new TypeError(`ticket keys must be a Buffer of ${TICKET_KEY_BYTES} bytes`);
  }
  return keys;
}

/**
 * Options for every secure context (the per-certificate ones and each server's own). Tickets
 * are encrypted and decrypted with the same keys everywhere, so a session from before a
 * certificate swap still resumes after it.
 */
export function contextOptions(ticketKeys: Buffer): SecureContextOptions {
  return {
    minVersion: INTERMEDIATE.minVersion,
    maxVersion: INTERMEDIATE.maxVersion,
    ciphers: [...INTERMEDIATE.ciphersuites, ...INTERMEDIATE.ciphers].join(':'),
    ecdhCurve: supportedGroups(),
    honorCipherOrder: INTERMEDIATE.honorCipherOrder,
    // The DHE-RSA ciphers of the list need parameters; "auto" lets OpenSSL pick the
    // RFC 7919 group matching the certificate's strength (ffdhe2048 for RSA-2048).
    dhparam: 'auto',
    // Client-initiated renegotiation is a DoS lever and nothing here needs it (as nginx).
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    sessionIdContext: SESSION_ID_CONTEXT,
    sessionTimeout: SESSION_TIMEOUT_S,
    ticketKeys,
  };
}

/**
 * ALPN in the server's order of preference: h2 (with `tls.http2`), http/1.1, http/1.0, as
 * nginx offers them (less http/0.9, which is refused). A client that sends no ALPN gets HTTP/1.1.
 */
function alpnProtocols(http2: boolean): string[] {
  return http2 ? ['h2', 'http/1.1', 'http/1.0'] : ['http/1.1', 'http/1.0'];
}

/**
 * The ALPNCallback of both server kinds. node:http2 fixes its own list to h2 + http/1.1
 * unless a callback is given, so the choice is made here: the first of ours the client
 * offers; none shared is a fatal no_application_protocol alert (nginx does the same).
 */
export function alpnSelector(http2: boolean): (offer: { protocols: string[] }) => string | undefined {
  const ours = alpnProtocols(http2);
  return ({ protocols }) => {
    for (const protocol of ours) if (protocols.includes(protocol)) return protocol;
    return undefined;
  };
}
