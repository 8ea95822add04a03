// Reads the server name (SNI) from the first bytes a TLS client sends, without consuming
// them. Bounds-checked everywhere: hostile bytes give "no name", never an exception.
//
// Record layer:  type(1)=22 handshake, version(2), length(2), fragment
// Handshake:     type(1)=1 ClientHello, length(3), body (may span several records)
// ClientHello:   version(2) random(32) session_id<1> cipher_suites<2> compression<1> extensions<2>
// server_name:   extension 0: list<2> of { type(1)=0 host_name, name<2> }   (RFC 6066)

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const MAX_RECORD = 16_384 + 2048;
/** ClientHellos with post-quantum key shares are 1.5-3 KB; a larger one is not worth waiting for. */
export const MAX_HELLO_BYTES = 32 * 1024;

/** More bytes are needed before the answer is known. */
export const INCOMPLETE = Symbol('incomplete');

/**
 * The lower-cased server name of the ClientHello at the start of `data`; null when there
 * is none (no SNI, not TLS, malformed, too large); INCOMPLETE when more bytes are needed.
 */
export function readServerName(data: Buffer): string | null | typeof INCOMPLETE {
  // Gather the handshake bytes from consecutive records; usually one record holds it all.
  let hello: Buffer | null = null;
  let parts: Buffer[] | null = null;
  let gathered = 0;
  let offset = 0;
  for (;;) {
    if (offset + 5 > data.length) return data.length >= MAX_HELLO_BYTES ? null : INCOMPLETE;
    if (data[offset] !== RECORD_HANDSHAKE) return null;
    const length = data.readUInt16BE(offset + 3);
    if (length === 0 || length > MAX_RECORD) return null;
    if (offset + 5 + length > data.length) return data.length >= MAX_HELLO_BYTES ? null : INCOMPLETE;
    const fragment = data.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if (parts === null && hello === null) hello = fragment;
    else (parts ??= [hello!]).push(fragment);
    gathered += length;
    if (gathered < 4) continue;
    const first = parts === null ? hello! : Buffer.concat(parts);
    if (first[0] !== HANDSHAKE_CLIENT_HELLO) return null;
    const bodyLength = first.readUIntBE(1, 3);
    if (bodyLength + 4 > MAX_HELLO_BYTES) return null;
    if (gathered >= bodyLength + 4) return serverNameOf(first.subarray(4, 4 + bodyLength));
  }
}

function serverNameOf(body: Buffer): string | null {
  let p = 2 + 32;
  if (p + 1 > body.length) return null;
  p += 1 + body[p]!; // session id
  if (p + 2 > body.length) return null;
  p += 2 + body.readUInt16BE(p); // cipher suites
  if (p + 1 > body.length) return null;
  p += 1 + body[p]!; // compression methods
  if (p + 2 > body.length) return null;
  const end = Math.min(body.length, p + 2 + body.readUInt16BE(p));
  p += 2;
  while (p + 4 <= end) {
    const type = body.readUInt16BE(p);
    const length = body.readUInt16BE(p + 2);
    p += 4;
    if (p + length > end) return null;
    if (type === EXTENSION_SERVER_NAME) return hostName(body.subarray(p, p + length));
    p += length;
  }
  return null;
}

function hostName(extension: Buffer): string | null {
  if (extension.length < 2) return null;
  const end = Math.min(extension.length, 2 + extension.readUInt16BE(0));
  let p = 2;
  while (p + 3 <= end) {
    const type = extension[p]!;
    const length = extension.readUInt16BE(p + 1);
    p += 3;
    if (p + length > end) return null;
    if (type === 0) return normalise(extension, p, p + length);
    p += length;
  }
  return null;
}

/** Lower-case ASCII, trailing dot removed; anything else is no name at all. */
function normalise(buf: Buffer, from: number, to: number): string | null {
  if (to > from && buf[to - 1] === 0x2e) to--;
  if (to <= from || to - from > 253) return null;
  let name = '';
  for (let i = from; i < to; i++) {
    let c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f;
    if (!ok) return null;
    name += String.fromCharCode(c);
  }
  return name;
}
