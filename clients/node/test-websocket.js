#!/usr/bin/env node
/*
 * Command-line test client for the events server's WebSocket (/ws).
 *
 *   npm ci
 *   TOKEN=<access token> node test-websocket.js            # WS_URL defaults to ws://localhost:8080/ws
 *   node test-websocket.js --email admin@example.com --password secret --url http://localhost:8080
 *   TOKEN=... node test-websocket.js --subscribe room:lobby --publish '{"text": "hello"}'
 *
 * Prints every event it receives as pretty JSON, answers pings, and closes after --seconds
 * (default 10) or on Ctrl-C. With --subscribe it joins rooms; with --publish it then sends one
 * message to each of them. The connection is the events-server-client library's (clients/js):
 * when the server drops it, it reconnects with exponential backoff and full jitter, resumes
 * the feed from its last offset and epoch, re-subscribes each room with its own, and the script
 * prints "recovered N missed events" or "could not recover" per stream (--no-reconnect: exit
 * instead). Logged in with --email, it also refreshes its access token before it expires.
 * With --protobuf it speaks the events.v1.protobuf subprotocol (binary frames, decoded with
 * protobufjs from proto/events.proto) and prints each event in the JSON protocol's shape.
 * Exit status: 0 after a clean run, 1 on any failure.
 */

import {fileURLToPath} from 'node:url';
import WebSocket from 'ws';

import {RequestError, connect, login} from '../js/index.js';

const DEFAULT_PROTO = fileURLToPath(new URL('../../proto/events.proto', import.meta.url));

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

async function logIn(baseUrl, email, password) {
  const endpoint = new URL('/api/v1/auth/login', baseUrl).toString();
  console.log(`🔑 Logging in as ${email}...`);
  let tokens;
  try {
    tokens = await login(baseUrl, email, password);
  } catch (err) {
    if (err.status === undefined) fail(`cannot reach ${endpoint}: ${err.cause ? err.cause.message : err.message}`);
    fail(`login failed (HTTP ${err.status}): ${err.message.replace(/^login failed: /, '')}`);
  }
  const user = tokens.user || {};
  console.log(`✅ Logged in as ${user.name || email} (role: ${user.role || 'unknown'})\n`);
  return tokens;
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
  let refreshToken = null;
  if (opts.email) {
    const password = opts.password || process.env.PASSWORD;
    if (!password) fail('--email needs --password (or the PASSWORD environment variable)');
    ({accessToken: token, refreshToken} = await logIn(baseUrl, opts.email, password));
  }
  if (!token) {
    fail('no token: set TOKEN=<access token> or pass --email and --password\n\n' + USAGE);
  }
  let protobuf = null;
  if (opts.protobuf) {
    try {
      protobuf = (await import('protobufjs')).default;
    } catch (_) {
      fail('--protobuf needs protobufjs: run npm ci in clients/node');
    }
  }

  let timer = null; // --seconds
  let stopping = false; // we initiated the close
  let connections = 0; // welcomes so far: after the first, drops reconnect
  let exitCode = 0;
  const published = new Set(); // rooms --publish went to: once, not again after a reconnect

  // The socket the library opens: ws with this script's options, printing what the
  // handshake agreed and why an upgrade was refused.
  class Socket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { perMessageDeflate: opts.deflate });
      this.refused = false; // the upgrade got an HTTP error answer; its handler says why
      this.agreed = ''; // the server's Sec-WebSocket-Extensions answer (permessage-deflate)
      this.on('upgrade', (res) => {
        this.agreed = res.headers['sec-websocket-extensions'] || '';
      });
      this.on('open', () => opened(this));
      // ws answers pings by itself; this mirrors the seed and makes the reply explicit.
      this.on('ping', () => this.pong());
      this.on('unexpected-response', (req, res) => refusedUpgrade(this, res));
      this.on('error', (err) => {
        if (this.refused) return; // reported by unexpected-response
        if (!connections) exitCode = 1;
        const detail = err.code === 'ECONNREFUSED' ? `nothing is listening at ${wsUrl}` : err.message;
        console.error(`❌ WebSocket error: ${detail}`);
      });
    }
  }

  function opened(socket) {
    console.log(connections ? '✅ WebSocket reconnected!' : '✅ WebSocket connected!');
    if (!connections) {
      if (socket.protocol) console.log(`📦 Subprotocol: ${socket.protocol}`);
      if (socket.agreed) console.log(`🗜️  Extensions: ${socket.agreed}`);
    }
    if (opts.seconds > 0 && !timer) {
      timer = setTimeout(() => stop('⏱️  Test timeout - closing connection'), opts.seconds * 1000);
    }
  }

  function refusedUpgrade(socket, res) {
    socket.refused = true;
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
      if (!connections || res.statusCode === 401 || res.statusCode === 403) process.exit(1);
      socket.terminate(); // the library retries with its backoff
    });
  }

  function report(stream, data) {
    if (data.recovered) console.log(`🔄 ${stream}: recovered ${data.missed} missed events`);
    else console.log(`⚠️  ${stream}: could not recover (history lost or too old): refetch what you show`);
  }

  function requestFailed(type, channel, err) {
    if (!(err instanceof RequestError) || err.code === 'closed' || err.code === 'disconnected') return;
    console.error(`❌ ${type} ${channel} failed: ${err.code}: ${err.message}`);
    exitCode = 1;
    stop('🛑 Request failed - closing connection');
  }

  async function stop(message) {
    if (stopping) return;
    stopping = true;
    if (timer) clearTimeout(timer);
    console.log(`\n${message}`);
    await client.close();
    console.log('🔌 WebSocket disconnected');
    process.exit(exitCode);
  }

  if (connections === 0) console.log('🔌 Connecting to WebSocket...');
  const client = connect(wsUrl, {
    token, refreshToken, WebSocket: Socket,
    protocol: opts.protobuf ? 'protobuf' : 'json', protobuf, proto: opts.proto || DEFAULT_PROTO,
    baseDelay: BASE_DELAY_MS, maxDelay: MAX_DELAY_MS, backlog: 0,
    // A first connection that fails is reported, not retried.
    reconnect: () => connections > 0 && opts.reconnect,
  });

  client.on('frame', ({ message, raw }) => {
    console.log('\n📨 Message received:');
    if (message) console.log(JSON.stringify(message, null, 2));
    else if (typeof raw === 'string') console.log(raw);
    else if (opts.protobuf) console.log(`<${raw.byteLength} bytes that are not an events.v1 Event>`);
    else console.log(`<${raw.byteLength} bytes of binary data>`);
  });
  client.on('connected', () => { connections += 1; });
  client.on('subscribing', ({ channel, since }) => {
    if (since !== null) console.log(`📡 Re-subscribing to ${channel} from offset ${since}...`);
    else console.log(`📡 Subscribing to ${channel}...`);
  });
  client.on('subscribed', ({ channel }) => {
    console.log(`✅ Subscribed to ${channel}`);
    if (opts.publish === undefined || published.has(channel)) return;
    published.add(channel);
    console.log(`📤 Publishing to ${channel}...`);
    client.publish(channel, opts.publish).then(
      (data) => console.log(`✅ Published to ${channel} (message ${data.id})`),
      (err) => requestFailed('publish', channel, err));
  });
  client.on('recovery', (event) => {
    if (connections < 2) return; // the first connection had nothing to recover
    for (const stream of event.data.streams) {
      if (stream.error) requestFailed('subscribe', stream.channel, new RequestError('refused', stream.error));
      else report(stream.channel || 'feed', stream);
    }
  });
  client.on('disconnected', ({ code, reason, welcomed }) => {
    if (!stopping && welcomed) console.log(`\n🔌 WebSocket disconnected by the server (${describeClose(code, reason)})`);
  });
  client.on('reconnecting', ({ attempt, delay }) => {
    const feed = client.position;
    const from = feed ? ` from offset ${feed.offset} (epoch ${feed.epoch})` : '';
    console.log(`🔁 Reconnecting in ${Math.round(delay)} ms (attempt ${attempt})${from}...`);
  });
  client.on('closed', ({ error, code }) => {
    if (stopping) return;
    if (timer) clearTimeout(timer);
    if (error && error.code !== 'disconnected' && error.code !== 'revoked') console.error(`❌ ${error.message}`);
    if (!connections || code !== 1000) exitCode = 1;
    process.exit(exitCode);
  });
  for (const channel of opts.subscribe) {
    client.subscribe(channel).catch((err) => requestFailed('subscribe', channel, err));
  }

  process.on('SIGINT', () => stop('🛑 Interrupted - closing connection'));
  process.on('SIGTERM', () => stop('🛑 Terminated - closing connection'));
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
