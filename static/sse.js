/*
 * The /test page's Server-Sent Events transport: an EventSource on /sse that the page drives
 * as it drives the client library's WebSocket client (on, state, subscribe, publish, close),
 * so the log, the recovery line and the Rooms panel work the same over either.
 *
 * EventSource reconnects by itself and sends the last id it saw (Last-Event-ID), the position
 * of every stream it follows. When the rooms change, the stream is reopened with the new
 * `channels` and that id as `last_event_id`, so nothing published meanwhile is missed and
 * nothing comes twice. It cannot send: a room message goes out as POST
 * /api/v1/rooms/{name}/messages and history comes over REST; typing and the presence list
 * need the WebSocket (who joins and leaves still arrives as events). Loaded before test.js.
 */
(function () {
  'use strict';

  var A = window.App;

  // EventSource hands an event only to the listeners of its type: the server's own types.
  var TYPES = ['connection.established', 'recovery', 'close', 'user.created', 'user.updated',
    'user.deleted', 'user.role.changed', 'profile.updated', 'password.changed', 'system.alert',
    'health.status.changed', 'channel.message', 'channel.unsubscribed', 'presence.joined',
    'presence.left', 'typing', 'user.online', 'user.offline'];

  /** A refused request: the server's error code and message, as the library's RequestError. */
  class SseRequestError extends Error {
    constructor(message, code) {
      super(message);
      this.name = 'SseRequestError';
      this.code = code;
    }
  }

  function roomPath(channel) {
    return '/api/v1/rooms/' + encodeURIComponent(String(channel).replace(/^room:/, ''));
  }

  class SseClient {
    /** Opens /sse with options.token; emits what the library's client emits. */
    constructor(options) {
      this.transport = 'sse';
      this.token = options.token;
      this.state = 'connecting'; // connecting | connected | disconnected | closed
      this.channels = []; // the rooms the stream follows
      this.lastId = null; // the cursor: every followed stream's position
      this._handlers = new Map();
      this._source = null;
      this._positioned = new Set(); // streams (null: the feed) the cursor holds a position of
      this._unpositioned = new Set(); // this connection's streams that had none: fresh ones
      this._reopening = false; // the page closed the last stream on purpose (rooms changed)
      this._waiting = []; // subscribe/unsubscribe calls waiting for the reopened stream
      this._welcomed = false;
      this._reopened = false;
      this._open();
    }

    on(type, fn) {
      if (!this._handlers.has(type)) this._handlers.set(type, new Set());
      this._handlers.get(type).add(fn);
      return () => { this._handlers.get(type).delete(fn); };
    }

    /** Follows one more room: checked over REST first (403, 404), then the stream reopens. */
    async subscribe(channel) {
      this._ensureConnected('subscribe');
      if (this.channels.indexOf(channel) < 0) {
        await this._rest('GET', roomPath(channel));
        await this._reopen(this.channels.concat([channel]));
      }
      return { channel: channel, subscribed: true };
    }

    async unsubscribe(channel) {
      if (this.channels.indexOf(channel) < 0 || this.state === 'closed') return {};
      await this._reopen(this.channels.filter(function (c) { return c !== channel; }));
      return { channel: channel, unsubscribed: true };
    }

    publish(channel, data) {
      return this._rest('POST', roomPath(channel) + '/messages', { data: data });
    }

    async history(channel, options) {
      var query = '?limit=' + encodeURIComponent((options && options.limit) || 50);
      if (options && options.before) query += '&before=' + encodeURIComponent(options.before);
      return (await this._rest('GET', roomPath(channel) + '/messages' + query)).messages || [];
    }

    presence() {
      return Promise.reject(new SseRequestError('the presence list needs the WebSocket', 'unsupported'));
    }

    typing() {
      return Promise.reject(new SseRequestError('SSE cannot send typing', 'unsupported'));
    }

    /** A raw frame cannot go up an SSE stream. */
    send() { return false; }

    close() { this._stop(1000, 'client closed'); }

    // -- the stream ---------------------------------------------------------------------------

    _url() {
      var params = new URLSearchParams({ token: this.token });
      if (this.channels.length) params.set('channels', this.channels.join(','));
      if (this.lastId) params.set('last_event_id', this.lastId);
      return '/sse?' + params.toString();
    }

    _open() {
      var source = new EventSource(this._url());
      var self = this;
      this._source = source;
      TYPES.forEach(function (type) {
        source.addEventListener(type, function (e) { self._receive(source, e); });
      });
      source.onerror = function () { self._error(source); };
    }

    _reopen(channels) {
      if (!this._source) return Promise.reject(new SseRequestError('the stream is closed', 'closed'));
      var self = this;
      var done = new Promise(function (resolve, reject) {
        self._waiting.push({ resolve: resolve, reject: reject });
      });
      this.channels = channels;
      this._source.close();
      this._reopening = true;
      this._open();
      return done;
    }

    _receive(source, e) {
      if (source !== this._source) return; // a stream the page replaced
      var message = null;
      try { message = JSON.parse(e.data); } catch (err) { message = null; }
      if (e.lastEventId) this.lastId = e.lastEventId;
      this._emit('frame', { message: message, raw: e.data });
      if (!message || typeof message.type !== 'string') return;
      if (message.type === 'connection.established') this._welcome(message.data || {});
      else if (message.type === 'close') this._ending(message.data || {});
      else {
        var event = { type: message.type, data: message.data === undefined ? null : message.data,
          timestamp: message.timestamp || null, channel: message.channel || null,
          offset: message.offset === undefined ? null : message.offset };
        if (event.type === 'recovery') event.data = this._recovery(event.data);
        this._emit(event.type, event);
        this._emit('*', event);
        if (event.type === 'channel.unsubscribed') this._forget(event.channel);
      }
    }

    _welcome(data) {
      var streams = [null].concat(this.channels);
      var positioned = this._positioned;
      this._unpositioned = new Set(streams.filter(function (s) { return !positioned.has(s); }));
      this._positioned = new Set(streams); // the welcome's id holds where each one starts
      var planned = this._reopening && this.state === 'connected';
      this._reopening = false;
      this._reopened = planned;
      this._welcomed = true;
      if (planned) return; // the same session on a new stream: still connected
      this.state = 'connected';
      this._emit('connected', data);
    }

    /**
     * Marks the streams that had no position (nothing to recover) `fresh`, and says whether the
     * page reopened this stream (`reopened`) rather than EventSource after a drop; settles reopens.
     */
    _recovery(data) {
      var fresh = this._unpositioned;
      var streams = (data && data.streams || []).map(function (s) {
        return Object.assign({}, s, { fresh: fresh.has(s.channel === undefined ? null : s.channel) });
      });
      this._waiting.splice(0).forEach(function (w) { w.resolve(); });
      return { streams: streams, reopened: this._reopened };
    }

    /** A room the server unsubscribed (removed, deleted): the stream must not name it again. */
    _forget(channel) {
      if (this.channels.indexOf(channel) < 0) return;
      this._reopen(this.channels.filter(function (c) { return c !== channel; })).catch(function () {});
    }

    /** The server's last event: 1008 ends the session (EventSource must not come back). */
    _ending(data) {
      if (data.code === 1008) {
        this._stop(1008, data.reason || '');
        return;
      }
      this._lost(data.code, data.reason || '');
    }

    _lost(code, reason) {
      if (this.state !== 'connected') return;
      this.state = 'disconnected';
      this._emit('disconnected', { code: code, reason: reason, welcomed: true });
      this._emit('reconnecting', { attempt: 1 }); // EventSource comes back by itself
    }

    _error(source) {
      if (source !== this._source) return;
      if (source.readyState !== EventSource.CLOSED) {
        this._lost(1006, ''); // cut without a close event; EventSource retries
        return;
      }
      // Refused for good (401, 403, 404, 429): EventSource gives up without saying why, so the
      // same request is made once more to read the server's error.
      var self = this;
      var ask = new AbortController();
      this._source = null;
      fetch(this._url(), { headers: { Accept: 'application/json' }, cache: 'no-store',
        credentials: 'omit', signal: ask.signal }).then(function (res) {
        if (res.ok) { // open again by now: not a refusal this page can explain
          ask.abort();
          self._stop(1006, 'the stream ended');
          return null;
        }
        return res.json().catch(function () { return null; }).then(function (body) {
          var error = body && body.error;
          self._stop(1006, 'HTTP ' + res.status + (error ? ': ' + error.message : ''), res.status);
        });
      }, function () { self._stop(1006, 'the server cannot be reached'); });
    }

    _stop(code, reason, status) {
      if (this.state === 'closed') return;
      this.state = 'closed';
      if (this._source) this._source.close();
      this._source = null;
      this._waiting.splice(0).forEach(function (w) {
        w.reject(new SseRequestError('the stream is closed', 'closed'));
      });
      this._emit('closed', { error: null, code: code, reason: reason, status: status || null,
        opened: this._welcomed });
    }

    // -- REST -----------------------------------------------------------------------------------

    _ensureConnected(type) {
      if (this.state !== 'connected') throw new SseRequestError(type + ': not connected', 'disconnected');
    }

    async _rest(method, path, body) {
      var res = await A.request(method, path, body, this.token);
      if (res.status >= 200 && res.status < 300 && res.body && res.body.success) return res.body.data;
      var error = (res.body && res.body.error) || {};
      throw new SseRequestError(error.message || A.errorMessage(res), error.code || 'http_' + res.status);
    }

    _emit(type, payload) {
      var handlers = this._handlers.get(type);
      if (handlers) Array.from(handlers).forEach(function (fn) { fn(payload); });
    }
  }

  window.SseClient = SseClient;
})();
