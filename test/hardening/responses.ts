// Splits what a server sent back on one connection into responses: status line, headers,
// and a body framed by Content-Length, chunked coding, or the close. Interim 1xx answers are
// counted apart. Bytes that do not start with "HTTP/" (an HTTP/0.9-style answer) are one
// pseudo-response of status 0. Lenient on purpose: it reads servers, it does not judge them.

export type ParsedResponse = { status: number; headers: Map<string, string>; bodyLength: number };

export type ParsedStream = {
  responses: ParsedResponse[];
  interim: number[];
  /** The last response is cut short (the connection ended or went quiet inside it). */
  partial: boolean;
};

function headerEnd(buf: Buffer, from: number): { end: number; sep: number } | null {
  const crlf = buf.indexOf('\r\n\r\n', from, 'latin1');
  const lf = buf.indexOf('\n\n', from, 'latin1');
  if (crlf < 0 && lf < 0) return null;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { end: crlf, sep: 4 };
  return { end: lf, sep: 2 };
}

/** Length of a complete chunked body starting at `from`, or -1 if it is not all there. */
function chunkedLength(buf: Buffer, from: number): number {
  let at = from;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) return -1;
    const size = parseInt(buf.toString('latin1', at, eol).split(';')[0]!.trim(), 16);
    if (Number.isNaN(size)) return -1;
    at = eol + 2;
    if (size === 0) {
      // Trailer section, up to the empty line.
      for (;;) {
        const end = buf.indexOf('\r\n', at, 'latin1');
        if (end < 0) return -1;
        const empty = end === at;
        at = end + 2;
        if (empty) return at - from;
      }
    }
    at += size + 2;
    if (at > buf.length) return -1;
  }
}

export function parseResponses(buf: Buffer, closed: boolean): ParsedStream {
  const responses: ParsedResponse[] = [];
  const interim: number[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.toString('latin1', at, at + 5) !== 'HTTP/') {
      // Not a status line: the rest is one opaque answer (or garbage).
      if ('HTTP/'.startsWith(buf.toString('latin1', at)) && !closed) return { responses, interim, partial: true };
      responses.push({ status: 0, headers: new Map(), bodyLength: buf.length - at });
      return { responses, interim, partial: false };
    }
    const head = headerEnd(buf, at);
    if (!head) return { responses, interim, partial: true };
    const lines = buf.toString('latin1', at, head.end).split(/\r?\n/);
    const status = Number(lines[0]!.split(' ')[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) {
        const name = line.slice(0, colon).trim().toLowerCase();
        if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
      }
    }
    at = head.end + head.sep;
    if (status >= 100 && status < 200) {
      interim.push(status);
      continue;
    }
    let bodyLength: number;
    if (status === 204 || status === 304) bodyLength = 0;
    else if ((headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) {
      bodyLength = chunkedLength(buf, at);
      if (bodyLength < 0) {
        responses.push({ status, headers, bodyLength: buf.length - at });
        return { responses, interim, partial: true };
      }
    } else if (headers.has('content-length')) {
      bodyLength = Number(headers.get('content-length'));
      if (at + bodyLength > buf.length) {
        responses.push({ status, headers, bodyLength: buf.length - at });
        return { responses, interim, partial: true };
      }
    } else {
      // Delimited by the close.
      bodyLength = buf.length - at;
    }
    responses.push({ status, headers, bodyLength });
    at += bodyLength;
  }
  return { responses, interim, partial: false };
}
