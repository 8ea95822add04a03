// The error catalogue: every failure opam-edge answers or logs has a stable code here, the
// HTTP status it maps to (0 when it is not an HTTP answer) and a short message. Tests
// assert codes, not messages.

export const ERRORS = {
  // Client side: the request itself is at fault.
  BAD_REQUEST: { status: 400, message: 'Bad Request' },
  BAD_HOST: { status: 400, message: 'Bad Request: missing, repeated or invalid Host' },
  BAD_FRAMING: { status: 400, message: 'Bad Request: ambiguous message framing' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method Not Allowed' },
  REQUEST_TIMEOUT: { status: 408, message: 'Request Timeout' },
  EXPECTATION_FAILED: { status: 417, message: 'Expectation Failed' },
  BODY_TOO_LARGE: { status: 413, message: 'Payload Too Large' },
  URI_TOO_LONG: { status: 414, message: 'URI Too Long' },
  UNKNOWN_HOST: { status: 421, message: 'Misdirected Request: no site for this host' },
  HEADERS_TOO_LARGE: { status: 431, message: 'Request Header Fields Too Large' },
  UNSUPPORTED_TRANSFER_ENCODING: { status: 501, message: 'Not Implemented: unsupported Transfer-Encoding' },
  HTTP_VERSION_NOT_SUPPORTED: { status: 505, message: 'HTTP Version Not Supported' },
  // HTTP/0.9 has no status line to answer with: the connection is closed. 444 is what
  // nginx logs for "closed without an answer"; it is never sent.
  HTTP_09: { status: 444, message: 'HTTP/0.9 request: closed without an answer' },
  CHALLENGE_NOT_FOUND: { status: 404, message: 'Not Found' },
  // nginx's 499: the client went away before the response was complete (logged, never sent).
  CLIENT_CLOSED: { status: 499, message: 'Client Closed Request' },

  // Gateway side: the upstream is at fault. A gateway answers 502/503/504, never 500.
  UPSTREAM_REFUSED: { status: 502, message: 'Bad Gateway: the upstream refused the connection' },
  UPSTREAM_RESET: { status: 502, message: 'Bad Gateway: the upstream closed the connection' },
  UPSTREAM_BAD_RESPONSE: { status: 502, message: 'Bad Gateway: the upstream sent an invalid response' },
  UPSTREAM_NO_ADDRESS: { status: 503, message: 'Service Unavailable: the upstream name has no address yet' },
  UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'Gateway Timeout: connecting to the upstream timed out' },
  UPSTREAM_READ_TIMEOUT: { status: 504, message: 'Gateway Timeout: the upstream did not answer in time' },
  INTERNAL: { status: 500, message: 'Internal Server Error' },

  // Control plane: logged as events, never an HTTP answer.
  CONFIG_INVALID: { status: 0, message: 'the configuration is invalid' },
  RELOAD_REFUSED: { status: 0, message: 'a reload was refused: the running config stays' },
  CERT_INVALID: { status: 0, message: 'a certificate/key pair was refused' },
  LISTEN_FAILED: { status: 0, message: 'a listener could not be bound' },
  PEER_FORWARD_FAILED: { status: 0, message: 'a challenge peer did not answer' },
  RESOLVE_FAILED: { status: 0, message: 'an upstream name did not resolve' },
  REQUEST_FAILED: { status: 0, message: 'a request handler failed unexpectedly (the process carries on)' },
  ACME_ORDER_FAILED: { status: 0, message: 'an ACME order failed' },
  ACME_STORAGE_FAILED: { status: 0, message: 'ACME storage could not be read or written' },
  ACME_RENEWAL_INFO_FAILED: { status: 0, message: 'the ACME renewal information could not be fetched' },
  ACME_START_FAILED: { status: 0, message: 'built-in ACME could not start' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error that knows its catalogue code; `cause` keeps the original. */
export class EdgeError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${ERRORS[code].message}: ${detail}` : ERRORS[code].message, options);
    this.name = 'EdgeError';
    this.code = code;
    this.status = ERRORS[code].status;
  }
}

/**
 * Maps a failure on the way to or from the upstream to a catalogue code. Only the cases a
 * gateway can tell apart matter: refused, timed out while connecting, timed out waiting,
 * closed early, or an invalid response.
 */
export function upstreamFailure(err: unknown): ErrorCode {
  if (err instanceof EdgeError) return err.code;
  const code = (err as { code?: string } | null)?.code;
  switch (code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'UPSTREAM_REFUSED';
    // undici refused to send what the client sent (a header it does not allow): the
    // request is at fault, not the upstream.
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      return 'BAD_REQUEST';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'UPSTREAM_CONNECT_TIMEOUT';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'UPSTREAM_READ_TIMEOUT';
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_VERSION':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_CR_EXPECTED':
    case 'HPE_LF_EXPECTED':
    case 'HPE_HEADER_OVERFLOW':
    // Node refused to pass a response header on (an invalid value, a field h2 forbids).
    case 'ERR_INVALID_CHAR':
    case 'ERR_HTTP_INVALID_HEADER_VALUE':
    case 'ERR_INVALID_HTTP_TOKEN':
    case 'ERR_HTTP2_INVALID_HEADER_VALUE':
    case 'ERR_HTTP2_INVALID_CONNECTION_HEADERS':
    case 'ERR_HTTP2_HEADER_SINGLE_VALUE':
    case 'ERR_HTTP2_INVALID_INFO_STATUS':
    case 'ERR_HTTP2_STATUS_INVALID':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
    case 'UND_ERR_INFO':
      return 'UPSTREAM_BAD_RESPONSE';
    default:
      if (typeof code === 'string' && code.startsWith('HPE_')) return 'UPSTREAM_BAD_RESPONSE';
      return 'UPSTREAM_RESET';
  }
}

/** How an operating-system error is named to an operator, in problems and events. */
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOTDIR: 'a parent is not a directory',
  ELOOP: 'too many symbolic links',
  EISDIR: 'it is a directory',
};

/** "no such file" for ENOENT and the like; the code itself for others. */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return (code && ERRNO_TEXT[code]) ?? code ?? String(err);
}
