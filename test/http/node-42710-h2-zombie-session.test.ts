// nodejs/node#42710: node:http2 can destroy a session without ever closing its TLS socket
// (idle timeout, a peer gone mid-stream), which leaks the fd for good. Http2Sessions sweeps
// such zombies (src/http/secure.ts); this pins the sweep.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Http2Sessions } from '../../src/http/secure.ts';

test('the zombie sweep destroys the socket of an h2 session destroyed without closing it, one sweep later', () => {
  // The real case needs minutes of soak traffic, so the session and socket are stand-ins here.
  const sessions = new Http2Sessions();
  const fake = (destroyed: boolean) => ({ destroyed, closed: false, once() {}, destroy() {}, close() {} });
  const socket = () => {
    const s = { destroyed: false, remoteAddress: '127.0.0.1', destroy: () => (s.destroyed = true) };
    return s;
  };
  type Args = Parameters<Http2Sessions['add']>;
  const zombie = fake(true);
  const zombieSocket = socket();
  const live = fake(false);
  const liveSocket = socket();
  sessions.add(zombie as unknown as Args[0], zombieSocket as unknown as Args[1]);
  sessions.add(live as unknown as Args[0], liveSocket as unknown as Args[1]);
  sessions.stop();
  sessions.sweep();
  assert.equal(zombieSocket.destroyed, false, 'a session may be closing its socket right now: wait one sweep');
  sessions.sweep();
  assert.equal(zombieSocket.destroyed, true);
  assert.equal(liveSocket.destroyed, false);
  assert.equal(sessions.zombies, 1);
  assert.equal(sessions.size, 1);
});
