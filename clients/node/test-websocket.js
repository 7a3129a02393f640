#!/usr/bin/env node
'use strict';
/*
 * Command-line test client for the events server's WebSocket (/ws).
 *
 *   npm install
 *   TOKEN=<access token> node test-websocket.js            # WS_URL defaults to ws://localhost:8080/ws
 *   node test-websocket.js --email admin@example.com --password secret --url http://localhost:8080
 *   TOKEN=... node test-websocket.js --subscribe room:lobby --publish '{"text": "hello"}'
 *
 * Prints every event it receives as pretty JSON, answers pings, and closes after --seconds
 * (default 10) or on Ctrl-C. With --subscribe it joins rooms; with --publish it then sends one
 * message to each of them. When the server drops the connection it reconnects like the
 * reference client (static/client.js): exponential backoff with full jitter, the feed resumed
 * from its last offset and epoch, each room re-subscribed with its own, and a line saying
 * "recovered N missed events" or "could not recover" per stream (--no-reconnect: exit instead).
 * With --protobuf it speaks the events.v1.protobuf subprotocol (binary frames, decoded with
 * protobufjs from proto/events.proto) and prints each event in the JSON protocol's shape.
 * Exit status: 0 after a clean run, 1 on any failure.
 */

const path = require('path');
const WebSocket = require('ws');

const PROTOBUF = 'events.v1.protobuf';
const DEFAULT_PROTO = path.join(__dirname, '..', '..', 'proto', 'events.proto');

const DEFAULT_WS_URL = 'ws://localhost:8080/ws';
const DEFAULT_HTTP_URL = 'http://localhost:8080';
const BASE_DELAY_MS = 500; // reconnect backoff: random in [0, min(MAX, BASE * 2^attempt))
const MAX_DELAY_MS = 30000;

const USAGE = `Usage: node test-websocket.js [options]

Connects to the events server's WebSocket and prints every event it receives.

Options:
  --email EMAIL       log in first with this email (needs --password)
  --password PASS     password for --email (or set PASSWORD)
  --url URL           server base URL for --email login (default ${DEFAULT_HTTP_URL})
  --ws-url URL        WebSocket URL (default: WS_URL, else derived from --url, else ${DEFAULT_WS_URL})
  --seconds N         close the connection after N seconds (default 10; 0 = until Ctrl-C)
  --subscribe CHANNEL subscribe to a room, e.g. --subscribe room:lobby (repeatable)
  --publish JSON      after each subscribe reply, publish this JSON object as the message
                      body to that room, e.g. --publish '{"text": "hello"}' (needs --subscribe)
  --no-reconnect      exit when the server drops the connection (default: reconnect with
                      backoff and jitter, resume the feed and re-subscribe the rooms from
                      their last offsets, and print what was recovered)
  --protobuf          speak the events.v1.protobuf subprotocol: binary requests and events,
                      printed in the JSON protocol's shape
  --proto PATH        the .proto file for --protobuf (default: the repository's
                      proto/events.proto)
  --no-deflate        do not offer permessage-deflate (offered by default; the server
                      compresses only with --websocket-compression=on)
  -h, --help          show this help

Environment:
  TOKEN               access token to connect with (when not logging in with --email)
  WS_URL              WebSocket URL, e.g. ws://localhost:8080/ws
  PASSWORD            password for --email`;

function fail(message) {
  console.error(`❌ ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { seconds: 10, subscribe: [], reconnect: true, protobuf: false, deflate: true };
  const takesValue = new Set(['--email', '--password', '--url', '--ws-url', '--seconds',
    '--subscribe', '--publish', '--proto']);
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value;
    if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
    }
    if (arg === '--no-reconnect') {
      opts.reconnect = false;
      continue;
    }
    if (arg === '--protobuf') {
      opts.protobuf = true;
      continue;
    }
    if (arg === '--no-deflate') {
      opts.deflate = false;
      continue;
    }
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (!takesValue.has(arg)) fail(`unknown option ${arg}\n\n${USAGE}`);
    if (value === undefined) {
      value = argv[i + 1];
      i += 1;
      if (value === undefined) fail(`${arg} needs a value`);
    }
    const key = arg.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (key === 'subscribe') opts.subscribe.push(value);
    else opts[key] = value;
  }
  const seconds = Number(opts.seconds);
  if (!Number.isFinite(seconds) || seconds < 0) fail('--seconds must be a number >= 0');
  opts.seconds = seconds;
  if (opts.publish !== undefined) {
    if (!opts.subscribe.length) fail('--publish needs --subscribe room:NAME (the room to publish to)');
    let body;
    try {
      body = JSON.parse(opts.publish);
    } catch (err) {
      fail(`--publish must be JSON: ${err.message}`);
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      fail('--publish must be a JSON object, e.g. \'{"text": "hello"}\'');
    }
    opts.publish = body;
  }
  return opts;
}

function wsUrlFromHttp(base) {
  const url = new URL('/ws', base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

async function login(baseUrl, email, password) {
  if (typeof fetch !== 'function') fail('logging in needs Node 18 or newer (global fetch)');
  const endpoint = new URL('/api/v1/auth/login', baseUrl).toString();
  console.log(`🔑 Logging in as ${email}...`);
  let response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
  } catch (err) {
    fail(`cannot reach ${endpoint}: ${err.cause ? err.cause.message : err.message}`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    // not JSON: reported below
  }
  if (!response.ok || !body || !body.success) {
    const reason = body && body.error ? body.error.message : response.statusText;
    fail(`login failed (HTTP ${response.status}): ${reason}`);
  }
  const user = body.data.user || {};
  console.log(`✅ Logged in as ${user.name || email} (role: ${user.role || 'unknown'})\n`);
  return body.data.access_token;
}

/**
 * The events.v1.protobuf codec (proto/events.proto): requests to binary Request messages,
 * binary Event messages to the JSON protocol's {type, id?, data, timestamp, channel?, offset?}.
 */
function protobufCodec(protoPath) {
  let protobuf;
  try {
    protobuf = require('protobufjs');
  } catch (_) {
    fail('--protobuf needs protobufjs: run npm ci in clients/node');
  }
  let root;
  try {
    root = protobuf.parse(require('fs').readFileSync(protoPath, 'utf8'), { keepCase: true }).root;
  } catch (err) {
    fail(`cannot load ${protoPath}: ${err.message}`);
  }
  const Event = root.lookupType('events.v1.Event');
  const Request = root.lookupType('events.v1.Request');
  const fields = { 'auth.refresh': 'auth_refresh' };

  // A payload as JSON shows it: "<key>_json" text fields parsed back to "<key>", empty
  // repeated fields dropped.
  function plain(value) {
    if (Array.isArray(value)) return value.map(plain);
    if (value === null || typeof value !== 'object') return value;
    const out = {};
    for (const [key, item] of Object.entries(value)) {
      if (key.endsWith('_json')) out[key.slice(0, -5)] = item ? JSON.parse(item) : null;
      else if (!(Array.isArray(item) && item.length === 0)) out[key] = plain(item);
    }
    return out;
  }

  return {
    encode(id, type, data) {
      let body = data;
      if (type === 'publish') body = { channel: data.channel, data_json: JSON.stringify(data.data) };
      const request = { id, [fields[type] || type]: body };
      const problem = Request.verify(request);
      if (problem) throw new Error(`cannot encode ${type}: ${problem}`);
      return Request.encode(Request.create(request)).finish();
    },
    decode(bytes) {
      const event = Event.toObject(Event.decode(bytes),
        { longs: Number, defaults: true, oneofs: true, arrays: true });
      const message = { type: event.type };
      if (event.id !== undefined) message.id = event.id;
      const which = event.data;
      message.data = which === 'data_json' ? JSON.parse(event.data_json) : plain(event[which] || {});
      message.timestamp = event.timestamp;
      if (event.channel !== undefined) message.channel = event.channel;
      if (event.offset !== undefined) message.offset = event.offset;
      return message;
    },
  };
}

function describeClose(code, reason) {
  const text = reason && reason.length ? reason.toString() : '';
  const known = {
    1000: 'normal closure',
    1001: 'server going away',
    1003: 'unsupported data',
    1006: 'connection lost without a close frame',
    1008: 'policy violation',
    1009: 'message too big',
    1011: 'server error',
    1013: 'try again later',
  };
  return `code ${code}${text ? `: ${text}` : known[code] ? ` (${known[code]})` : ''}`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const baseUrl = opts.url || DEFAULT_HTTP_URL;
  const wsUrl = opts.wsUrl || process.env.WS_URL || (opts.url ? wsUrlFromHttp(opts.url) : DEFAULT_WS_URL);

  let token = process.env.TOKEN;
  if (opts.email) {
    const password = opts.password || process.env.PASSWORD;
    if (!password) fail('--email needs --password (or the PASSWORD environment variable)');
    token = await login(baseUrl, opts.email, password);
  }
  if (!token) {
    fail('no token: set TOKEN=<access token> or pass --email and --password\n\n' + USAGE);
  }

  const codec = opts.protobuf ? protobufCodec(opts.proto || DEFAULT_PROTO) : null;
  let ws = null; // the current connection
  let timer = null; // --seconds
  let reconnectTimer = null;
  let stopping = false; // we initiated the close
  let everOpened = false; // a welcome arrived once: later drops reconnect
  let attempt = 0; // failed connections in a row, for the backoff
  let exitCode = 0;
  // Requests sent with an id, by id: what to do with their reply or error.
  const pending = new Map();
  let nextId = 1;
  // Positions, as the reference client keeps them: the feed's and each room's {epoch, offset}
  // (a room is null until its first subscribe reply), and the streams whose missed events are
  // still arriving after a resume: stream -> {left, offset}.
  let feed = null;
  const rooms = new Map(opts.subscribe.map((channel) => [channel, null]));
  const replaying = new Map();
  const published = new Set();

  function request(type, data, onReply) {
    const id = nextId;
    nextId += 1;
    pending.set(id, { type, channel: data.channel, onReply });
    ws.send(codec ? codec.encode(id, type, data) : JSON.stringify({ id, type, data }));
  }

  function report(stream, data) {
    if (data.recovered) console.log(`🔄 ${stream}: recovered ${data.missed} missed events`);
    else console.log(`⚠️  ${stream}: could not recover (history lost or too old): refetch what you show`);
  }

  /** Sets a stream's position from a welcome or subscribe reply (see static/client.js). */
  function position(stream, data) {
    const current = stream === 'feed' ? feed : rooms.get(stream);
    const next = { epoch: data.epoch, offset: data.offset };
    if (data.recovered && current && data.missed > 0) {
      replaying.set(stream, { left: data.missed, offset: data.offset });
      next.offset = current.offset; // moves with each replayed event, then to data.offset
    }
    if (stream === 'feed') feed = next;
    else rooms.set(stream, next);
  }

  function advance(stream, offset) {
    const current = stream === 'feed' ? feed : rooms.get(stream);
    if (!current) return;
    current.offset = offset;
    const replay = replaying.get(stream);
    if (replay && --replay.left === 0) {
      current.offset = replay.offset;
      replaying.delete(stream);
    }
  }

  function subscribe(channel) {
    const known = rooms.get(channel);
    const data = known ? { channel, since: known.offset, epoch: known.epoch } : { channel };
    if (known) console.log(`📡 Re-subscribing to ${channel} from offset ${known.offset}...`);
    else console.log(`📡 Subscribing to ${channel}...`);
    request('subscribe', data, (reply) => {
      position(channel, reply);
      if (known) report(channel, reply);
      console.log(`✅ Subscribed to ${channel}`);
      if (opts.publish === undefined || published.has(channel)) return;
      published.add(channel); // once, not again after a reconnect
      console.log(`📤 Publishing to ${channel}...`);
      request('publish', { channel, data: opts.publish }, (data) => {
        console.log(`✅ Published to ${channel} (message ${data.id})`);
      });
    });
  }

  function welcome(data) {
    const resumed = feed !== null;
    everOpened = true;
    attempt = 0;
    position('feed', data);
    if (resumed) report('feed', data);
    rooms.forEach((_, channel) => subscribe(channel));
  }

  /** Handles a reply or error to one of our requests; returns false for other messages. */
  function settle(message) {
    if (!message || (message.type !== 'reply' && message.type !== 'error')) return false;
    const waiting = pending.get(message.id);
    if (!waiting) return false;
    pending.delete(message.id);
    if (message.type === 'reply') {
      waiting.onReply(message.data || {});
    } else {
      const err = message.data || {};
      console.error(`❌ ${waiting.type} ${waiting.channel} failed: ${err.code}: ${err.message}`);
      exitCode = 1;
      stop('🛑 Request failed - closing connection');
    }
    return true;
  }

  function stop(message) {
    if (stopping) return;
    stopping = true;
    if (timer) clearTimeout(timer);
    console.log(`\n${message}`);
    if (reconnectTimer) {
      // Between two connections: nothing to close.
      clearTimeout(reconnectTimer);
      console.log('🔌 WebSocket disconnected');
      process.exit(exitCode);
    }
    if (ws.readyState === WebSocket.OPEN) {
      ws.close(1000, 'client done');
      // Do not hang on a server that never answers the close frame.
      setTimeout(() => ws.terminate(), 2000).unref();
    } else {
      ws.terminate();
    }
  }

  function scheduleReconnect() {
    // Exponential backoff with full jitter, as static/client.js: clients cut at once spread out.
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
    const delay = Math.random() * ceiling;
    attempt += 1;
    const from = feed ? ` from offset ${feed.offset} (epoch ${feed.epoch})` : '';
    console.log(`🔁 Reconnecting in ${Math.round(delay)} ms (attempt ${attempt})${from}...`);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    const target = new URL(wsUrl);
    target.searchParams.set('token', token);
    if (feed) {
      target.searchParams.set('since', feed.offset);
      target.searchParams.set('epoch', feed.epoch);
    }
    if (!everOpened) console.log('🔌 Connecting to WebSocket...');
    const socket = new WebSocket(target.toString(), codec ? [PROTOBUF] : [],
      { perMessageDeflate: opts.deflate });
    ws = socket;
    let opened = false;
    let refused = false; // the upgrade got an HTTP error answer; its handler says why
    let agreed = ''; // the server's Sec-WebSocket-Extensions answer (permessage-deflate)

    socket.on('upgrade', (res) => {
      agreed = res.headers['sec-websocket-extensions'] || '';
    });

    socket.on('open', () => {
      opened = true;
      console.log(everOpened ? '✅ WebSocket reconnected!' : '✅ WebSocket connected!');
      if (!everOpened) {
        if (socket.protocol) console.log(`📦 Subprotocol: ${socket.protocol}`);
        if (agreed) console.log(`🗜️  Extensions: ${agreed}`);
      }
      if (codec && socket.protocol !== PROTOBUF) {
        console.error(`❌ The server did not select ${PROTOBUF}`);
        exitCode = 1;
        stop('closing');
      }
      if (opts.seconds > 0 && !timer) {
        timer = setTimeout(() => stop('⏱️  Test timeout - closing connection'), opts.seconds * 1000);
      }
    });

    socket.on('message', (data, isBinary) => {
      console.log('\n📨 Message received:');
      let message;
      if (isBinary) {
        if (!codec) {
          console.log(`<${data.length} bytes of binary data>`);
          return;
        }
        try {
          message = codec.decode(data);
        } catch (err) {
          console.log(`<${data.length} bytes that are not an events.v1 Event: ${err.message}>`);
          return;
        }
      } else {
        const text = data.toString('utf8');
        try {
          message = JSON.parse(text);
        } catch (_) {
          console.log(text);
          return;
        }
      }
      console.log(JSON.stringify(message, null, 2));
      if (message.type === 'connection.established') welcome(message.data || {});
      else if (!settle(message) && message.offset !== undefined) {
        advance(message.channel || 'feed', message.offset);
      }
    });

    // ws answers pings by itself; this mirrors the seed and makes the reply explicit.
    socket.on('ping', () => {
      socket.pong();
    });

    socket.on('unexpected-response', (req, res) => {
      refused = true;
      let raw = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { raw += chunk; });
      res.on('end', () => {
        let detail = res.statusMessage || '';
        try {
          const body = JSON.parse(raw);
          if (body && body.error && body.error.message) detail = body.error.message;
        } catch (_) {
          // keep the status text
        }
        const final = !everOpened || res.statusCode === 401 || res.statusCode === 403;
        if (res.statusCode === 401) {
          console.error(`❌ Unauthorized (HTTP 401): ${detail}`);
          console.error('   The token is missing, invalid or expired: log in again for a fresh one.');
        } else if (res.statusCode === 403) {
          console.error(`❌ Forbidden (HTTP 403): ${detail}`);
        } else if (res.statusCode === 429) {
          const retry = res.headers['retry-after'];
          console.error(`❌ Too many connections (HTTP 429): ${detail}${retry ? ` (retry in ${retry} s)` : ''}`);
        } else {
          console.error(`❌ The server refused the WebSocket upgrade (HTTP ${res.statusCode}): ${detail}`);
        }
        if (final) process.exit(1);
        socket.terminate();
        if (!stopping) scheduleReconnect();
      });
    });

    socket.on('error', (err) => {
      if (refused) return; // reported by unexpected-response
      if (!everOpened) exitCode = 1;
      const detail = err.code === 'ECONNREFUSED' ? `nothing is listening at ${wsUrl}` : err.message;
      console.error(`❌ WebSocket error: ${detail}`);
    });

    socket.on('close', (code, reason) => {
      if (socket !== ws || refused) return;
      pending.clear();
      replaying.clear();
      if (stopping) {
        if (timer) clearTimeout(timer);
        console.log('🔌 WebSocket disconnected');
        process.exit(exitCode);
      }
      // Not opened: the error handler said why.
      if (opened) console.log(`\n🔌 WebSocket disconnected by the server (${describeClose(code, reason)})`);
      if (everOpened && opts.reconnect && code !== 1008) {
        scheduleReconnect();
        return;
      }
      if (timer) clearTimeout(timer);
      if (!opened || code !== 1000) exitCode = 1;
      process.exit(exitCode);
    });
  }

  process.on('SIGINT', () => stop('🛑 Interrupted - closing connection'));
  process.on('SIGTERM', () => stop('🛑 Terminated - closing connection'));
  connect();
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
