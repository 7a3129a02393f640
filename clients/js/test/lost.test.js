// A position the server no longer holds (older than --history-size) is reported as
// recovered: false, and nothing from the past is delivered after it.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import WebSocket from 'ws';

import {connect} from '../index.js';
import {ADMIN, Proxy, Server, collect, until} from './server.js';

let server;
let proxy;
before(async () => {
  server = await Server.start('--history-size=3');
  proxy = await Proxy.start(server.port);
});
after(async () => {
  await proxy.close();
  await server.close();
});

test('a room trimmed past the position says recovered: false and replays nothing', async () => {
  const admin = await server.login(ADMIN.email, ADMIN.password);
  const sender = connect(server.url, {WebSocket, token: admin.access_token});
  const heard = collect(sender);
  await sender.subscribe('room:lobby');
  const user = await server.register('Trimmed Reader');
  const client = connect(proxy.url, {WebSocket, token: user.access_token, baseDelay: 50,
                                     maxDelay: 400});
  const seen = collect(client);
  const room = await client.subscribe('room:lobby');
  await sender.publish('room:lobby', {n: 0});
  await until(() => seen.room.length === 1, 'the first message');
  const before = room.position;
  proxy.down();
  await until(() => client.state !== 'connected', 'the drop to be noticed');
  for (let n = 1; n <= 8; n += 1) await sender.publish('room:lobby', {n});  // 3 are kept
  await until(() => heard.room.length === 9, 'the sender to hear all 9');
  proxy.up();
  await until(() => seen.recoveries.length === 2, 'the recovery after the reconnect');
  assert.deepEqual(seen.recoveries[1].streams, [
    {channel: null, recovered: true, missed: 0},
    {channel: 'room:lobby', recovered: false, missed: 0}]);
  await sender.publish('room:lobby', {n: 9});
  await until(() => seen.room.length === 2, 'the live message after the reconnect');
  assert.deepEqual(seen.room, [0, 9]);  // 1-8 are for the application to refetch over REST
  assert.equal(room.position.epoch, before.epoch);
  assert.notEqual(room.position.offset, before.offset);
  await client.close();
  await sender.close();
});
