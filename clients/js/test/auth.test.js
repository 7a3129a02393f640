// Tokens against a real server with 3-second access tokens: a socket outlives several of
// them by refreshing in band, a refused handshake is retried with a refreshed token, an
// expiry with nothing to refresh with and a revocation stop the client with an error.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import WebSocket from 'ws';

import {AuthError, Revoked, connect} from '../index.js';
import {ADMIN, PASSWORD, Server, collect, until} from './server.js';

const TTL = 3;
let server;
before(async () => { server = await Server.start(`--access-token-ttl=${TTL}`); });
after(async () => { await server.close(); });

function expiry(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp * 1000;
}

/** Counts a client's lifecycle events by name. */
function tally(client, ...names) {
  const counts = Object.fromEntries(names.map((name) => [name, 0]));
  for (const name of names) client.on(name, () => { counts[name] += 1; });
  return counts;
}

test('a socket kept open past several token lifetimes refreshes in band', async () => {
  const user = await server.register('Long Reader');
  const client = connect(server.url, {WebSocket, token: user.access_token,
                                      refreshToken: user.refresh_token});
  const counts = tally(client, 'connecting', 'disconnected', 'token');
  const seen = collect(client);
  const frames = [];
  client.on('frame', ({message}) => frames.push(message.type));
  // Nothing to refresh with: the server closes this one when its token expires.
  const plain = connect(server.url, {WebSocket, token: (await server.register('Short')).access_token});
  const plainSeen = collect(plain);
  await client.ready();
  const firstExpiry = expiry(user.access_token);
  await until(() => counts.token >= 2 && Date.now() > firstExpiry + 1500,
              'two refreshes and the first token long expired', 15000);
  const admin = await server.login(ADMIN.email, ADMIN.password);
  await server.broadcast(admin.access_token, 'still here');
  await until(() => seen.alerts.length === 1, 'the alert on the refreshed socket');
  assert.equal(counts.connecting, 1);
  assert.equal(counts.disconnected, 0);
  assert.ok(frames.filter((type) => type === 'auth.refreshed').length >= 2);
  assert.ok(expiry(client.token) > firstExpiry);

  await until(() => plain.state === 'closed', 'the expired socket to be closed');
  await plainSeen.done;
  assert.ok(plain.error instanceof AuthError);
  assert.match(plain.error.message, /token expired/);
  assert.ok(plainSeen.error instanceof AuthError);
  await client.close();
  await seen.done;
  assert.equal(seen.error, null);
});

test('a refused handshake is retried with a token from the refresh token', async () => {
  const user = await server.register('Refused Reader');
  const client = connect(server.url, {WebSocket, token: 'not-a-jwt', refreshToken: user.refresh_token,
                                      baseDelay: 20});
  const tokens = [];
  client.on('token', (t) => tokens.push(t));
  const welcome = await client.ready();
  assert.equal(welcome.user_id, user.user.id);
  assert.equal(tokens.length, 1);
  assert.equal(client.token, tokens[0].accessToken);
  assert.notEqual(tokens[0].refreshToken, user.refresh_token);  // rotated
  await client.close();
});

test('a bad token with nothing to refresh with stops with an AuthError', async () => {
  const client = connect(server.url, {WebSocket, token: 'not-a-jwt', baseDelay: 20});
  await assert.rejects(client.ready(), AuthError);
  assert.equal(client.state, 'closed');
});

test('a revoked session (password changed) stops reconnecting and errors', async () => {
  const user = await server.register('Revoked Reader');
  const client = connect(server.url, {WebSocket, token: user.access_token,
                                      refreshToken: user.refresh_token, baseDelay: 20});
  const counts = tally(client, 'connecting', 'reconnecting');
  const seen = collect(client);
  await client.ready();
  const {status} = await server.call('POST', '/api/v1/users/me/password',
                                     {current_password: PASSWORD, new_password: 'another-pass-9'},
                                     user.access_token);
  assert.equal(status, 200);
  await seen.done;
  assert.ok(seen.error instanceof Revoked);
  assert.equal(seen.error.reason, 'session revoked');
  assert.equal(seen.error.closeCode, 1008);
  assert.deepEqual(seen.all.map((e) => e.type), ['recovery', 'password.changed']);
  await assert.rejects(client.ready(), Revoked);
  await assert.rejects(client.subscribe('room:lobby'), Revoked);
  assert.equal(client.state, 'closed');
  assert.deepEqual(counts, {connecting: 1, reconnecting: 0});
});
