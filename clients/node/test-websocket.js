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
 * message to each of them. Exit status: 0 after a clean run, 1 on any failure.
 */

const WebSocket = require('ws');

const DEFAULT_WS_URL = 'ws://localhost:8080/ws';
const DEFAULT_HTTP_URL = 'http://localhost:8080';

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
  const opts = { seconds: 10, subscribe: [] };
  const takesValue = new Set(['--email', '--password', '--url', '--ws-url', '--seconds',
    '--subscribe', '--publish']);
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value;
    if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
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

  const target = new URL(wsUrl);
  target.searchParams.set('token', token);

  console.log('🔌 Connecting to WebSocket...');
  const ws = new WebSocket(target.toString());
  let timer = null;
  let stopping = false; // we initiated the close
  let opened = false;
  let refused = false; // the upgrade got an HTTP error answer; its handler exits
  let exitCode = 0;
  // Requests sent with an id, by id: what to do with their reply or error.
  const pending = new Map();
  let nextId = 1;

  function request(type, data, onReply) {
    const id = nextId;
    nextId += 1;
    pending.set(id, { type, channel: data.channel, onReply });
    ws.send(JSON.stringify({ id, type, data }));
  }

  function subscribe(channel) {
    console.log(`📡 Subscribing to ${channel}...`);
    request('subscribe', { channel }, () => {
      console.log(`✅ Subscribed to ${channel}`);
      if (opts.publish === undefined) return;
      console.log(`📤 Publishing to ${channel}...`);
      request('publish', { channel, data: opts.publish }, (data) => {
        console.log(`✅ Published to ${channel} (message ${data.id})`);
      });
    });
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
    if (ws.readyState === WebSocket.OPEN) {
      ws.close(1000, 'client done');
      // Do not hang on a server that never answers the close frame.
      setTimeout(() => ws.terminate(), 2000).unref();
    } else {
      ws.terminate();
    }
  }

  ws.on('open', () => {
    opened = true;
    console.log('✅ WebSocket connected!');
    if (opts.seconds > 0) {
      timer = setTimeout(() => stop('⏱️  Test timeout - closing connection'), opts.seconds * 1000);
    }
  });

  ws.on('message', (data, isBinary) => {
    console.log('\n📨 Message received:');
    if (isBinary) {
      console.log(`<${data.length} bytes of binary data>`);
      return;
    }
    const text = data.toString('utf8');
    let message;
    try {
      message = JSON.parse(text);
    } catch (_) {
      console.log(text);
      return;
    }
    console.log(JSON.stringify(message, null, 2));
    if (message.type === 'connection.established') opts.subscribe.forEach(subscribe);
    else settle(message);
  });

  // ws answers pings by itself; this mirrors the seed and makes the reply explicit.
  ws.on('ping', () => {
    ws.pong();
  });

  ws.on('unexpected-response', (req, res) => {
    refused = true;
    exitCode = 1;
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
      process.exit(1);
    });
  });

  ws.on('error', (err) => {
    if (refused) return; // reported by unexpected-response
    exitCode = 1;
    const detail = err.code === 'ECONNREFUSED' ? `nothing is listening at ${wsUrl}` : err.message;
    console.error(`❌ WebSocket error: ${detail}`);
  });

  ws.on('close', (code, reason) => {
    if (timer) clearTimeout(timer);
    if (refused) return;
    if (stopping) {
      console.log('🔌 WebSocket disconnected');
    } else if (!opened) {
      process.exit(1); // the error handler said why
    } else {
      console.log(`\n🔌 WebSocket disconnected by the server (${describeClose(code, reason)})`);
      if (code !== 1000) exitCode = 1;
    }
    process.exit(exitCode);
  });

  process.on('SIGINT', () => stop('🛑 Interrupted - closing connection'));
  process.on('SIGTERM', () => stop('🛑 Terminated - closing connection'));
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
