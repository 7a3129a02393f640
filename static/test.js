/*
 * The /test page: the seed's WebSocket test client. Its socket is a client of the
 * events-server-client library (clients/js, served at /clients/js/index.js): after a drop it
 * reconnects with backoff, resumes the feed and re-subscribes the room with their positions, and
 * says whether the missed events were recovered (or that it could not recover and refetched).
 * Switched to SSE, the same page runs on an EventSource (sse.js) with the same log and lines.
 * Data is rendered with textContent only. A module: it runs after common.js, rooms.js and sse.js.
 */
import { connect as connectClient } from '/clients/js/index.js';

(function () {
  'use strict';

  var A = window.App;
  var SseClient = window.SseClient;
  var TOKEN_KEY = 'events.test.token';
  var TRANSPORT_KEY = 'events.test.transport';
  var MAX_ENTRIES = 500;

  var RECONNECT_TRIES = 10; // failed attempts in a row before giving up
  var FRESH = 'connected (fresh start)';
  // The message box's first example: a request the server answers with a reply of the same id.
  var SUBSCRIBE_EXAMPLE = { id: 1, type: 'subscribe', data: { channel: 'room:lobby' } };
  var client = null;
  var received = 0;
  var transport = sessionStorage.getItem(TRANSPORT_KEY) === 'sse' ? 'sse' : 'ws';
  var transports = Array.prototype.slice.call(document.querySelectorAll('input[name="transport"]'));

  var tokenInput = A.$('token');
  var connectBtn = A.$('connect');
  var disconnectBtn = A.$('disconnect');
  var sendBtn = A.$('send');
  var statusEl = A.$('status');
  var list = A.$('messages');
  var countEl = A.$('count');
  var empty = A.$('messages-empty');
  var newestFirst = A.$('newest-first');

  var recoveryEl = A.$('recovery');
  var rooms = window.RoomsPanel.create(function () { return tokenInput.value.trim(); });

  // A token from this tab's earlier visit (or the dashboard's login) saves pasting it again.
  var stored = sessionStorage.getItem(TOKEN_KEY);
  var session = A.loadSession();
  tokenInput.value = stored || (session && session.access_token) || '';

  function setStatus(state) {
    var labels = { connected: 'Connected', connecting: 'Connecting…', reconnecting: 'Reconnecting…',
      disconnected: 'Disconnected' };
    statusEl.textContent = labels[state];
    statusEl.className = 'status status-' + (state === 'reconnecting' ? 'connecting' : state);
    connectBtn.disabled = state !== 'disconnected';
    disconnectBtn.disabled = state === 'disconnected';
    sendBtn.disabled = state !== 'connected' || transport === 'sse';
    tokenInput.readOnly = state !== 'disconnected';
    transports.forEach(function (input) { input.disabled = state !== 'disconnected'; });
  }

  /** WebSocket (the client library) or SSE (an EventSource): chosen while disconnected. */
  function setTransport(value) {
    transport = value;
    sessionStorage.setItem(TRANSPORT_KEY, value);
    transports.forEach(function (input) { input.checked = input.value === value; });
    A.$('ws-url').textContent = value === 'sse' ? location.origin + '/sse' : A.socketUrl();
    A.$('send-sse-note').hidden = value !== 'sse';
    sendBtn.disabled = true;
  }

  function updateCount() {
    countEl.textContent = String(received);
    empty.hidden = list.childElementCount > 0;
  }

  function addEntry(entry) {
    if (newestFirst.checked) list.insertBefore(entry, list.firstChild);
    else list.appendChild(entry);
    while (list.childElementCount > MAX_ENTRIES) {
      list.removeChild(newestFirst.checked ? list.lastChild : list.firstChild);
    }
    if (!newestFirst.checked) list.scrollTop = list.scrollHeight;
    updateCount();
  }

  function pretty(value) {
    try { return JSON.stringify(value, null, 2); } catch (e) { return String(value); }
  }

  /** One received event: time, type and payload, color-coded by its type. */
  function showEvent(message, raw) {
    var type = message && typeof message.type === 'string' ? message.type : '(not JSON)';
    var stamp = message && message.timestamp;
    var payload = message ? pretty(message.data !== undefined ? message.data : message) : raw;
    var item = A.el('li', { className: 'msg ' + A.eventClass(type), attrs: { 'data-type': type } },
      A.el('div', { className: 'msg-head' },
        A.el('time', { className: 'msg-time', text: A.clockTime(stamp),
          attrs: { datetime: stamp || new Date().toISOString(), title: stamp || 'received' } }),
        A.el('span', { className: 'msg-type', text: type }),
        message && message.data && message.data.priority ?
          A.el('span', { className: 'pill pill-' + String(message.data.priority).replace(/[^a-z]/g, ''),
            text: String(message.data.priority) }) : null),
      A.el('pre', { className: 'msg-payload', text: payload }));
    received += 1;
    addEntry(item);
  }

  /** A local note (sent message, close) that is not counted as received. */
  function showNote(kind, title, body) {
    addEntry(A.el('li', { className: 'msg note note-' + kind },
      A.el('div', { className: 'msg-head' },
        A.el('time', { className: 'msg-time', text: A.clockTime() }),
        A.el('span', { className: 'msg-type', text: title })),
      body ? A.el('pre', { className: 'msg-payload', text: body }) : null));
  }

  function hideCloseInfo() { A.$('close-info').hidden = true; }

  /** Why the connection ended: its close code, or the HTTP answer that refused an SSE stream. */
  function showCloseInfo(end, opened) {
    var title = opened ? 'The server closed the connection' : 'Could not connect';
    A.$('close-title').textContent = title + (end.status ? ' · ' + end.reason :
      ' · code ' + end.code + (end.reason ? ' "' + end.reason + '"' : ''));
    A.$('close-detail').textContent = closeText(end);
    A.$('close-info').hidden = false;
  }

  function closeText(end) {
    if (end.status) return 'The server refused the stream; EventSource does not retry that.';
    return A.explainClose(end.code, end.reason);
  }

  /**
   * One line for a recovery event: every stream recovered, and how many events. A stream the
   * connection had no position for (`fresh`: a room the SSE stream just started to follow) had
   * nothing to recover and does not count.
   */
  function summarize(streams, first) {
    var known = first ? [] : streams.filter(function (s) { return !s.fresh; });
    return {
      fresh: known.length === 0,
      recovered: known.every(function (s) { return s.recovered; }),
      missed: known.reduce(function (sum, s) { return sum + s.missed; }, 0),
      streams: known
    };
  }

  function setRecoveryLine(text, ok) {
    recoveryEl.textContent = text;
    recoveryEl.className = 'hint ' + (ok ? 'hint-ok' : 'hint-error');
    recoveryEl.hidden = false;
  }

  /** A first connection: there was nothing to recover (its welcome says `recovered: false`). */
  function showFresh() {
    setRecoveryLine(FRESH, true);
    showNote('info', FRESH, 'first connection: nothing to recover, events from now on');
  }

  /** The outcome of a reconnect: its missed events recovered, or refetched because not. */
  function showRecovery(summary, reopened) {
    var text = summary.recovered ? (reopened ? 'reopened for the new rooms, ' : 'reconnected, ') +
      summary.missed + ' missed events recovered' : 'could not recover, refreshed';
    setRecoveryLine(text, summary.recovered);
    showNote(summary.recovered ? 'info' : 'warn', text, summary.streams.map(function (r) {
      return (r.channel || 'feed') + ': ' + (r.recovered ? r.missed + ' recovered' : 'not recovered');
    }).join('\n'));
  }

  function connect() {
    var token = tokenInput.value.trim();
    if (!token) {
      A.toast('Paste an access token first, or log in above.', 'error');
      tokenInput.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    hideCloseInfo();
    recoveryEl.hidden = true;
    setStatus('connecting');
    var welcomes = 0;
    var last = null; // the last close: {code, reason}
    var sse = transport === 'sse';
    var c = sse ? new SseClient({ token: token }) : connectClient(location.origin, {
      token: token,
      maxDelay: 10000,
      backlog: 0, // the page listens with on(), it never iterates events()
      // Reconnect after a drop, not after a refused first connection, and give up after a run
      // of failed attempts. (A 1008 stops the client by itself: a pasted token has no refresh.)
      reconnect: function (close) { return welcomes > 0 && close.attempt < RECONNECT_TRIES; }
    });
    client = c;
    window.testClient = c; // for tests and the curious: positions, subscriptions
    rooms.attach(c);
    c.on('frame', function (frame) {
      if (c !== client) return;
      var raw = typeof frame.raw === 'string' ? frame.raw : '[binary message]';
      showEvent(frame.message, raw);
    });
    c.on('connected', function () {
      welcomes += 1;
      if (c === client) setStatus('connected');
    });
    // The first connection is a fresh start; after a reconnect (or a reopened SSE stream):
    // what came back.
    c.on('recovery', function (event) {
      if (c !== client) return;
      var summary = summarize(event.data.streams, !sse && welcomes < 2);
      if (summary.fresh) { showFresh(); return; }
      rooms.resumed(summary).then(function () {
        if (c === client) showRecovery(summary, Boolean(event.data.reopened));
      });
    });
    c.on('disconnected', function (close) { last = close; });
    c.on('reconnecting', function () {
      if (c !== client) return;
      setStatus('reconnecting');
      showNote('warn', 'closed · ' + last.code, (last.reason ? last.reason + ' — ' : '') +
        'reconnecting and resuming…');
    });
    c.on('closed', function (end) {
      if (c !== client) return;
      client = null;
      rooms.attach(null);
      setStatus('disconnected');
      showCloseInfo(end, welcomes > 0);
      showNote('warn', end.status ? 'refused · ' + end.reason : 'closed · ' + end.code,
        (end.reason && !end.status ? end.reason + ' — ' : '') + closeText(end));
    });
  }

  function disconnect() {
    if (!client) return;
    var c = client;
    client = null;
    c.close();
    rooms.attach(null);
    setStatus('disconnected');
    showNote('info', 'disconnected', 'You closed the connection (code 1000).');
  }

  A.$('connect-form').addEventListener('submit', function (e) { e.preventDefault(); connect(); });
  disconnectBtn.addEventListener('click', disconnect);
  tokenInput.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); connect(); }
  });

  A.$('clear').addEventListener('click', function () {
    A.clear(list);
    received = 0;
    updateCount();
  });

  // -- sending ----------------------------------------------------------------------------

  var sendText = A.$('send-text');

  A.$('preset-subscribe').addEventListener('click', function () {
    sendText.value = JSON.stringify(SUBSCRIBE_EXAMPLE, null, 2);
  });
  A.$('preset-refresh').addEventListener('click', function () {
    sendText.value = JSON.stringify({ type: 'auth.refresh', data: { token: tokenInput.value.trim() } }, null, 2);
  });
  A.$('preset-unknown').addEventListener('click', function () {
    sendText.value = JSON.stringify({ type: 'chat.message', data: { text: 'hello' } }, null, 2);
  });

  A.$('send-form').addEventListener('submit', function (e) {
    e.preventDefault();
    if (!client || !client.send(sendText.value)) return;
    var text = sendText.value;
    var shown = text;
    try {
      var parsed = JSON.parse(text);
      if (parsed && parsed.data && typeof parsed.data.token === 'string' && parsed.data.token) {
        parsed.data.token = parsed.data.token.slice(0, 12) + '…';
      }
      shown = pretty(parsed);
    } catch (err) { /* sent as typed; the server answers with an error event */ }
    showNote('out', 'sent', shown);
  });

  transports.forEach(function (input) {
    input.addEventListener('change', function () { if (input.checked) setTransport(input.value); });
  });

  setTransport(transport);
  setStatus('disconnected');
  updateCount();
})();
