// The webroot's HTTP-01 token files, as certbot --webroot writes them:
// webroot/.well-known/acme-challenge/TOKEN. Port 80 serves them to anyone, so nothing under
// the webroot may lead elsewhere: a symlink (to /proc/self/environ, to a key) at the file or
// at either directory is refused, and so is anything but a regular file. The size is not
// trusted from stat (procfs reports 0): at most MAX_WEBROOT_FILE + 1 bytes are read.

import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { join } from 'node:path';

/** Key authorizations are ~90 bytes; a larger "token file" is not one. */
const MAX_WEBROOT_FILE = 4096;

/**
 * O_NOFOLLOW: the token itself must not be a symlink. O_NONBLOCK: a FIFO under that name
 * opens at once (and is then refused) instead of holding a thread of the pool forever.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;

/** The key authorization in `webroot` for `token` (already checked by isValidToken), or null. */
export async function readWebrootToken(webroot: string, token: string): Promise<string | null> {
  let dir: string;
  try {
    // The webroot itself is the operator's choice and may be a link; below it, nothing may.
    dir = join(await realpath(webroot), '.well-known', 'acme-challenge');
    if ((await realpath(dir)) !== dir) return null;
  } catch {
    return null;
  }
  let file;
  try {
    file = await open(join(dir, token), OPEN_FLAGS);
  } catch {
    return null; // missing, or ELOOP for a symlink
  }
  try {
    // fstat of what was opened, not stat of the path: no swap in between.
    if (!(await file.stat()).isFile()) return null;
    const buffer = Buffer.alloc(MAX_WEBROOT_FILE + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return length > MAX_WEBROOT_FILE ? null : buffer.toString('latin1', 0, length);
  } catch {
    return null;
  } finally {
    await file.close();
  }
}
