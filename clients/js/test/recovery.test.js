// Recovery against a real server: a dropped connection and a SIGTERM restart lose and
// duplicate nothing (every alert and room message counted by number), and a position the
// server no longer holds is reported as recovered: false.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import WebSocket from 'ws';

import {connect} from '../index.js';
import {ADMIN, Proxy, Server, collect, range, until} from './server.js';

const FAST = {WebSocket, baseDelay: 50, maxDelay: 400};

/** A server, a proxy to cut the reader off, an admin publishing alerts and room messages. */
async function setUp(...args) {
  const server = await Server.start(...args);
  const proxy = await Proxy.start(server.port);
  const admin = await server.login(ADMIN.email, ADMIN.password);
  const sender = connect(server.url, {...FAST, token: admin.access_token,
                                      refreshToken: admin.refresh_token});
  const heard = collect(sender);  // the sender hears its alerts and messages too
  await sender.subscribe('room:lobby');
  let next = 0;
  const publish = async (count) => {
    for (let i = 0; i < count; i += 1) {
      await server.broadcast(admin.access_token, String(next));
      await sender.publish('room:lobby', {n: next});
      next += 1;
    }
    // Published through the outbox: the sender hearing them means they are in the log.
    await until(() => heard.alerts.length >= next && heard.room.length >= next,
                'the sender to hear what it published');
  };
  const reader = async () => {
    const user = await server.register('Reader');
    const client = connect(proxy.url, {...FAST, token: user.access_token});
    const seen = collect(client);
    await client.subscribe('room:lobby');
    return {client, seen};
  };
  const tearDown = async () => {
    await sender.close();
    await proxy.close();
    await server.close();
  };
  return {server, proxy, sender, publish, reader, count: () => next, tearDown};
}

function streams(recovery) {
  return Object.fromEntries(recovery.streams.map((s) => [s.channel ?? 'feed', s]));
}

let world;
before(async () => { world = await setUp(); });
after(async () => { await world.tearDown(); });

test('resumes the feed and a room after a drop with no gap and no duplicate', async () => {
  const {proxy, publish, reader, count} = world;
  const {client, seen} = await reader();
  await publish(5);
  await until(() => seen.alerts.length === count() && seen.room.length === count(), 'live events');
  const from = count();
  proxy.down();  // the network drops: both directions cut, reconnects refused
  await until(() => client.state !== 'connected', 'the drop to be noticed');
  await publish(5);
  proxy.up();
  await until(() => seen.recoveries.length === 2, 'the recovery after the reconnect');
  await publish(5);
  await until(() => seen.alerts.length >= count() && seen.room.length >= count(), 'every event');
  assert.deepEqual(seen.alerts, range(0, count()));
  assert.deepEqual(seen.room, range(0, count()));
  const [first, resumed] = seen.recoveries;
  assert.deepEqual(first.streams, [{channel: null, recovered: false, missed: 0},
                                   {channel: 'room:lobby', recovered: false, missed: 0}]);
  assert.deepEqual(resumed.streams, [{channel: null, recovered: true, missed: 5},
                                     {channel: 'room:lobby', recovered: true, missed: 5}]);
  // The recovery event follows the last missed event and precedes the first live one.
  const before = seen.all.slice(0, seen.all.findIndex((e) => e.data === resumed));
  assert.equal(before.filter((e) => e.type === 'system.alert').length, from + 5);
  assert.equal(before.filter((e) => e.type === 'channel.message').length, from + 5);
  await client.close();
});

test('resumes across a SIGTERM restart of the server', async () => {
  const {server, proxy, publish, reader, count} = world;
  const {client, seen} = await reader();
  const start = count();
  await publish(3);
  await until(() => seen.alerts.length === 3 && seen.room.length === 3, 'live events');
  proxy.down();
  await until(() => client.state !== 'connected', 'the drop to be noticed');
  await publish(2);  // missed before the restart
  const closes = [];
  world.sender.on('disconnected', (close) => closes.push(close.code));
  await server.restart();
  await world.sender.ready();
  await publish(2);  // missed after it, published by the restarted server
  proxy.up();
  await until(() => seen.recoveries.length === 2, 'the recovery after the restart');
  await publish(2);
  await until(() => seen.alerts.length >= 9 && seen.room.length >= 9, 'every event');
  assert.equal(closes[0], 1001);  // the server really went away (server shutting down)
  assert.deepEqual(seen.alerts, range(start, count()));
  assert.deepEqual(seen.room, range(start, count()));
  assert.deepEqual(seen.recoveries[1].streams, [
    {channel: null, recovered: true, missed: 4},
    {channel: 'room:lobby', recovered: true, missed: 4}]);
  await client.close();
});
