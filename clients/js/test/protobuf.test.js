// protocol: 'protobuf' in Node (events.v1.protobuf with protobufjs): requests, replies,
// decoded events and a resume after a drop, against a real server.

import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {after, before, test} from 'node:test';
import protobuf from 'protobufjs';
import WebSocket from 'ws';

import {connect} from '../index.js';
import {ADMIN, Proxy, Server, collect, range, until} from './server.js';

let server;
let proxy;
before(async () => {
  server = await Server.start();
  proxy = await Proxy.start(server.port);
});
after(async () => {
  await proxy.close();
  await server.close();
});

test('the shipped events.proto is the server schema', () => {
  const shipped = readFileSync(new URL('../events.proto', import.meta.url), 'utf8');
  const server = readFileSync(new URL('../../../proto/events.proto', import.meta.url), 'utf8');
  assert.equal(shipped, server);
});

test('speaks events.v1.protobuf: replies, events, presence, history and a resume', async () => {
  const admin = await server.login(ADMIN.email, ADMIN.password);
  const user = await server.register('Binary Reader');
  const client = connect(proxy.url, {WebSocket, protocol: 'protobuf', protobuf,
                                     token: user.access_token, baseDelay: 50, maxDelay: 400});
  const seen = collect(client);
  const binary = [];
  client.on('frame', ({raw}) => binary.push(raw instanceof ArrayBuffer));
  const room = await client.subscribe('room:lobby');
  const reply = await room.publish({n: 0, text: 'ü'.repeat(3)});
  assert.equal(reply.channel, 'room:lobby');
  assert.ok(reply.id && reply.offset && reply.sent_at);
  await server.broadcast(admin.access_token, '0');
  await until(() => seen.room.length === 1 && seen.alerts.length === 1, 'the first events');
  const message = seen.all.find((e) => e.type === 'channel.message');
  assert.deepEqual(message.data.body, {n: 0, text: 'üüü'});
  assert.equal(message.data.from.user_id, user.user.id);
  assert.equal(message.offset, reply.offset);
  const members = await room.presence();
  assert.deepEqual(members.map((m) => m.user_id), [user.user.id]);
  const history = await room.history({limit: 5});
  assert.deepEqual(history.map((m) => m.body), [{n: 0, text: 'üüü'}]);

  proxy.down();
  await until(() => client.state !== 'connected', 'the drop to be noticed');
  const sender = connect(server.url, {WebSocket, token: admin.access_token});
  for (let n = 1; n <= 3; n += 1) {
    await server.broadcast(admin.access_token, String(n));
    await sender.publish('room:lobby', {n});
  }
  const heard = collect(sender);  // the last alert went through the outbox once it is heard
  await server.broadcast(admin.access_token, '4');
  await sender.publish('room:lobby', {n: 4});
  await until(() => heard.alerts.includes(4), 'the sender to hear the last alert');
  proxy.up();
  await until(() => seen.recoveries.length === 2, 'the recovery after the reconnect');
  await until(() => seen.room.length === 5 && seen.alerts.length === 5, 'every event');
  assert.deepEqual(seen.room, range(0, 5));
  assert.deepEqual(seen.alerts, range(0, 5));
  assert.deepEqual(seen.recoveries[1].streams, [
    {channel: null, recovered: true, missed: 4},
    {channel: 'room:lobby', recovered: true, missed: 4}]);
  assert.ok(binary.length > 10 && binary.every(Boolean));
  await sender.close();
  await client.close();
});
