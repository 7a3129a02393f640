// The parts that need no server: URLs, the backoff, the policy on closes, request timeouts,
// delivery order from one stream's replay and the events() backlog, on a scripted socket.

import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {test} from 'node:test';

import {ClientError, RequestError, Revoked, connect, endpoints} from '../index.js';

/** A WebSocket stand-in the test drives: it records what is sent and what URL was opened. */
function fakeSockets() {
  const opened = [];
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      opened.push(this);
      setTimeout(() => {
        this.readyState = 1;
        if (this.onopen) this.onopen({});
      }, 0);
    }
    send(data) { this.sent.push(JSON.parse(data)); }
    close(code = 1000, reason = '') { this.drop(code, reason); }
    drop(code, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose({code, reason});
    }
    deliver(message) { this.onmessage({data: JSON.stringify(message)}); }
    welcome(data = {}) {
      this.deliver({type: 'connection.established', timestamp: new Date().toISOString(),
                    data: {user_id: 1, epoch: 'E', offset: '0', recovered: false, missed: 0,
                           ...data}});
    }
  }
  return {FakeSocket, opened};
}

const unreachable = async () => { throw new TypeError('fetch failed'); };

async function until(check) {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
}

test('the package name resolves to this module (package.json exports)', async () => {
  const byName = await import('events-server-client');
  assert.equal(byName.connect, connect);
  assert.equal(byName.VERSION, JSON.parse(readFileSync(new URL('../package.json', import.meta.url))).version);
});

test('derives the socket and REST URLs from a base URL or a socket URL', () => {
  assert.deepEqual(endpoints('http://127.0.0.1:8080'),
                   {socket: 'ws://127.0.0.1:8080/ws', http: 'http://127.0.0.1:8080'});
  assert.deepEqual(endpoints('https://example.com/events/'),
                   {socket: 'wss://example.com/events/ws', http: 'https://example.com/events'});
  assert.deepEqual(endpoints('ws://localhost:8080/ws'),
                   {socket: 'ws://localhost:8080/ws', http: 'http://localhost:8080'});
  assert.throws(() => endpoints('ftp://example.com'), ClientError);
});

test('reconnects with exponential backoff and full jitter, bounded, until maxAttempts', async () => {
  const {FakeSocket, opened} = fakeSockets();
  const client = connect('http://127.0.0.1:9', {WebSocket: FakeSocket, token: 't',
                                                baseDelay: 4, maxDelay: 32, maxAttempts: 12,
                                                fetch: unreachable});
  const delays = [];
  client.on('reconnecting', (r) => delays.push(r));
  client.on('connecting', () => setTimeout(() => opened.at(-1).drop(1006), 0));
  await assert.rejects(client.ready(), (err) => err.code === 'disconnected');
  assert.equal(delays.length, 12);
  assert.deepEqual(delays.map((d) => d.attempt), Array.from({length: 12}, (_, i) => i + 1));
  for (const {attempt, delay} of delays) {
    assert.ok(delay >= 0 && delay < Math.min(32, 4 * 2 ** (attempt - 1)), `${attempt}: ${delay}`);
  }
  assert.ok(new Set(delays.map((d) => d.delay)).size > 6);  // random, not a fixed ladder
  assert.equal(opened.length, 13);
});

test('resumes with since/epoch, re-subscribes from the room offset, counts a replay once', async () => {
  const {FakeSocket, opened} = fakeSockets();
  const client = connect('http://h', {WebSocket: FakeSocket, token: 't', baseDelay: 1});
  const events = client.events();
  const subscribed = client.subscribe('room:a');
  await until(() => opened.length === 1);
  const first = opened[0];
  first.welcome({offset: '10'});
  assert.deepEqual(first.sent, [{id: 1, type: 'subscribe', data: {channel: 'room:a'}}]);
  first.deliver({type: 'reply', id: 1, data: {channel: 'room:a', subscribed: true, epoch: 'R',
                                               offset: '5', recovered: false, missed: 0}});
  assert.equal((await subscribed).channel, 'room:a');
  first.deliver({type: 'channel.message', channel: 'room:a', offset: '6', data: {n: 6}});
  first.deliver({type: 'system.alert', offset: '11', data: {n: 11}});
  first.drop(1006);
  await until(() => opened.length === 2);
  const second = opened[1];
  const url = new URL(second.url);
  assert.equal(url.searchParams.get('since'), '11');
  assert.equal(url.searchParams.get('epoch'), 'E');
  second.welcome({offset: '13', recovered: true, missed: 2});
  assert.deepEqual(second.sent[0],
                   {id: 2, type: 'subscribe', data: {channel: 'room:a', since: '6', epoch: 'R'}});
  second.deliver({type: 'system.alert', offset: '12', data: {n: 12}});
  second.drop(1006);  // in the middle of the replay: resume from the last one delivered
  await until(() => opened.length === 3);
  const third = opened[2];
  assert.equal(new URL(third.url).searchParams.get('since'), '12');
  third.welcome({offset: '13', recovered: true, missed: 1});
  third.deliver({type: 'reply', id: 3, data: {channel: 'room:a', subscribed: true, epoch: 'R',
                                               offset: '7', recovered: true, missed: 1}});
  third.deliver({type: 'system.alert', offset: '13', data: {n: 13}});
  third.deliver({type: 'channel.message', channel: 'room:a', offset: '7', data: {n: 7}});
  third.deliver({type: 'channel.message', channel: 'room:gone', offset: '1', data: {n: 0}});
  await client.close();
  const got = [];
  const recoveries = [];
  for await (const event of events) {
    got.push([event.type, event.channel, event.offset]);
    if (event.type === 'recovery') recoveries.push(event.data.streams);
  }
  // The interrupted second connection's answer counts: the feed missed 1 + 1 events.
  assert.deepEqual(recoveries[1], [{channel: null, recovered: true, missed: 2},
                                   {channel: 'room:a', recovered: true, missed: 1}]);
  assert.deepEqual(got, [
    ['recovery', null, null],
    ['channel.message', 'room:a', '6'],
    ['system.alert', null, '11'],
    ['system.alert', null, '12'],
    ['system.alert', null, '13'],
    ['channel.message', 'room:a', '7'],
    ['recovery', null, null],
  ]);
  assert.deepEqual(client.position, {epoch: 'E', offset: '13'});
});

test('a recovered: false of a connection that dropped is still reported', async () => {
  const {FakeSocket, opened} = fakeSockets();
  const client = connect('http://h', {WebSocket: FakeSocket, token: 't', baseDelay: 1});
  const recoveries = [];
  client.on('recovery', (event) => recoveries.push(event.data.streams));
  client.subscribe('room:a');
  client.subscribe('room:b');
  await until(() => opened.length === 1);
  opened[0].welcome();
  for (const [id, channel] of [[1, 'room:a'], [2, 'room:b']]) {
    opened[0].deliver({type: 'reply', id, data: {channel, subscribed: true, epoch: 'R',
                                                 offset: '1', recovered: false, missed: 0}});
  }
  opened[0].drop(1006);
  await until(() => opened.length === 2);
  opened[1].welcome({offset: '1', recovered: true, missed: 1});  // its replay never comes
  opened[1].deliver({type: 'reply', id: 3, data: {channel: 'room:a', subscribed: true,
                                                  epoch: 'R2', offset: '9', recovered: false,
                                                  missed: 0}});
  opened[1].deliver({type: 'error', id: 4, data: {code: 'forbidden', message: 'members only'}});
  opened[1].drop(1006);  // before the round was complete: nothing reported yet
  await until(() => opened.length === 3);
  opened[2].welcome({offset: '1', recovered: true, missed: 1});
  opened[2].deliver({type: 'reply', id: 5, data: {channel: 'room:a', subscribed: true,
                                                  epoch: 'R2', offset: '9', recovered: true,
                                                  missed: 0}});
  opened[2].deliver({type: 'system.alert', offset: '1', data: {}});
  assert.deepEqual(recoveries, [
    [{channel: null, recovered: false, missed: 0},
     {channel: 'room:a', recovered: false, missed: 0},
     {channel: 'room:b', recovered: false, missed: 0}],
    [{channel: null, recovered: true, missed: 1},
     {channel: 'room:a', recovered: false, missed: 0},
     {channel: 'room:b', recovered: false, missed: 0, error: 'forbidden'}],
  ]);
  assert.equal(client.subscription('room:b'), null);
  assert.deepEqual(opened[2].sent, [{id: 5, type: 'subscribe',
                                     data: {channel: 'room:a', since: '9', epoch: 'R2'}}]);
  await client.close();
});

test('a 1008 revocation stops at once; requests fail with codes', async () => {
  const {FakeSocket, opened} = fakeSockets();
  const client = connect('http://h', {WebSocket: FakeSocket, token: 't', timeout: 30});
  await until(() => opened.length === 1);
  opened[0].welcome();
  const refused = client.publish('room:x', {});
  opened[0].deliver({type: 'error', id: 1, data: {code: 'unknown_channel', message: 'no room'}});
  await assert.rejects(refused, (err) => err instanceof RequestError &&
                       err.code === 'unknown_channel' && err.type === 'publish');
  await assert.rejects(client.presence('room:x'), (err) => err.code === 'timeout');
  const cut = client.presence('room:x');
  opened[0].drop(1008, 'account deleted');
  await assert.rejects(cut, (err) => err.code === 'disconnected');
  await assert.rejects(client.ready(), (err) => err instanceof Revoked &&
                       err.reason === 'account deleted');
  await assert.rejects(client.publish('room:x', {}), (err) => err.code === 'closed');
  assert.equal(opened.length, 1);
});

test('events() after too many unread events says so instead of skipping them', async () => {
  const {FakeSocket, opened} = fakeSockets();
  const client = connect('http://h', {WebSocket: FakeSocket, token: 't', backlog: 3});
  await until(() => opened.length === 1);
  opened[0].welcome();
  for (let n = 0; n < 4; n += 1) opened[0].deliver({type: 'system.alert', offset: String(n)});
  assert.throws(() => client.events(), (err) => err.code === 'backlog_exceeded');
  await client.close();
});
