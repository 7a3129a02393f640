// EventsClient: the reference browser client of the events server (docs/websocket.md).
//
// Plain script, no build step: <script src="/static/client.js"></script> defines
// `EventsClient` on the page. It connects with an access token, reconnects with exponential
// backoff and full jitter, remembers the last offset of every stream (the feed and each room
// it subscribed to), resumes with since/epoch, re-subscribes its rooms with their positions,
// and tells its caller whether each resume recovered everything (`on('recovery', ...)`).
(function (global) {
  'use strict';

  const POLICY_CLOSES = ['session revoked', 'account deleted', 'too many messages'];
  const MAX_ID = 2147483648;

  class EventsClient {
    // url: the /ws endpoint (default: this page's origin). options: {token, getToken,
    // baseDelay (ms, default 500), maxDelay (ms, default 30000), timeout (request ms,
    // default 10000), reconnect, WebSocket (for tests)}. getToken() may return a fresh token
    // (or a promise of one) before each reconnect. reconnect({code, reason, opened}) decides
    // whether to reconnect after a close (default: always, except the policy closes below).
    constructor(url, options = {}) {
      const scheme = global.location && global.location.protocol === 'https:' ? 'wss:' : 'ws:';
      this.url = url || `${scheme}//${global.location.host}/ws`;
      this.token = options.token || '';
      this.getToken = options.getToken || null;
      this.baseDelay = options.baseDelay || 500;
      this.maxDelay = options.maxDelay || 30000;
      this.timeout = options.timeout || 10000;
      this.WebSocket = options.WebSocket || global.WebSocket;
      this.shouldReconnect = options.reconnect || null;
      this.feed = null;              // {epoch, offset} of the feed, once known
      this.rooms = new Map();        // channel -> {epoch, offset} (null until the first reply)
      this.handlers = new Map();     // event type -> Set of functions
      this.pending = new Map();      // request id -> {resolve, reject, timer}
      this.replaying = new Map();    // stream -> {left, offset} while missed events arrive
      this.ws = null;
      this.nextId = 0;
      this.attempt = 0;
      this.stopped = true;
      this.connected = false;
      this.timer = null;
      this.opened = false;           // whether the current socket got its welcome
      this.whenReplayed = [];        // callbacks run once no stream is replaying any more
    }

    // Registers fn for an event type ('*' for every event; also 'open', 'close',
    // 'recovery', 'resumed', 'reconnecting'; 'frame' gets every frame as it arrives, replies
    // included, and is not part of '*'); returns a function that removes it.
    on(type, fn) {
      if (!this.handlers.has(type)) this.handlers.set(type, new Set());
      this.handlers.get(type).add(fn);
      return () => this.handlers.get(type).delete(fn);
    }

    emit(type, payload) {
      for (const key of type === 'frame' ? [type] : [type, '*']) {
        for (const fn of this.handlers.get(key) || []) {
          try { fn(payload, type); } catch (err) { console.error(err); }
        }
      }
    }

    connect() {
      this.stopped = false;
      this.open();
      return this;
    }

    close() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) this.ws.close(1000, 'client closed');
    }

    async open() {
      if (this.getToken) this.token = (await this.getToken()) || this.token;
      if (this.stopped) return;
      let query = `token=${encodeURIComponent(this.token)}`;
      if (this.feed) {
        query += `&since=${encodeURIComponent(this.feed.offset)}` +
                 `&epoch=${encodeURIComponent(this.feed.epoch)}`;
      }
      const ws = new this.WebSocket(`${this.url}?${query}`);
      this.ws = ws;
      this.opened = false;
      ws.onmessage = (message) => {
        if (ws !== this.ws) return;
        let event = null;
        try { event = JSON.parse(message.data); } catch (err) { event = null; }
        this.emit('frame', {event, raw: message.data});
        if (event && typeof event.type === 'string') this.receive(event);
      };
      ws.onclose = (event) => this.closed(ws, event);
    }

    closed(ws, event) {
      if (ws !== this.ws) return;
      const opened = this.opened;
      this.connected = false;
      this.opened = false;
      this.replaying.clear();
      this.whenReplayed = [];
      for (const [, request] of this.pending) {
        clearTimeout(request.timer);
        request.reject(new Error('disconnected'));
      }
      this.pending.clear();
      const info = {code: event.code, reason: event.reason, opened};
      const again = this.shouldReconnect ? this.shouldReconnect(info) :
        !(event.code === 1008 && POLICY_CLOSES.includes(event.reason));
      if (!again) this.stopped = true;  // e.g. log in again: reconnecting cannot help
      this.emit('close', info);
      if (this.stopped) return;
      // Exponential backoff with full jitter: a random delay up to base * 2^attempt.
      const ceiling = Math.min(this.maxDelay, this.baseDelay * 2 ** this.attempt);
      const delay = Math.random() * ceiling;
      this.attempt += 1;
      this.emit('reconnecting', {attempt: this.attempt, delay});
      this.timer = setTimeout(() => this.open(), delay);
    }

    receive(event) {
      if (event.type === 'connection.established') return this.welcome(event);
      if ((event.type === 'reply' || event.type === 'error' || event.type === 'auth.refreshed') &&
          event.id && this.pending.has(event.id)) {
        const request = this.pending.get(event.id);
        this.pending.delete(event.id);
        clearTimeout(request.timer);
        if (event.type === 'error') {
          const err = new Error(event.data.message);
          err.code = event.data.code;
          request.reject(err);
        } else {
          request.resolve(event.data);
        }
        return;
      }
      if (event.offset !== undefined) this.advance(event.channel || 'feed', event.offset);
      this.emit(event.type, event);
    }

    welcome(event) {
      const data = event.data;
      const resumed = this.feed !== null;
      const ws = this.ws;
      this.connected = true;
      this.opened = true;
      this.attempt = 0;
      this.position('feed', data);
      this.emit('open', data);
      const streams = [];
      if (resumed) {
        const feed = {stream: 'feed', recovered: data.recovered, missed: data.missed};
        streams.push(Promise.resolve(feed));
        this.emit('recovery', feed);
      }
      for (const channel of this.rooms.keys()) {
        streams.push(this.resubscribe(channel).then(
          (reply) => ({stream: channel, recovered: reply.recovered, missed: reply.missed}),
          (error) => {
            if (error.code) this.rooms.delete(channel);  // refused now: do not retry it
            this.emit('subscribe.failed', {channel, error});
            return {stream: channel, recovered: false, missed: 0, error};
          }));
      }
      if (!resumed) return;
      // 'resumed': one summary per reconnect, once every stream answered and every missed
      // event it announced has arrived.
      Promise.all(streams).then((results) => {
        if (ws !== this.ws || !this.connected) return;
        const summary = {
          recovered: results.every((r) => r.recovered),
          missed: results.reduce((sum, r) => sum + r.missed, 0),
          streams: results,
        };
        const done = () => this.emit('resumed', summary);
        if (this.replaying.size === 0) done(); else this.whenReplayed.push(done);
      });
    }

    // Sets a stream's position from a welcome or subscribe reply. When it recovered, the
    // missed events follow: the position moves to the reply's offset only once they all
    // arrived, so a drop in the middle of a replay resumes from the last one received.
    position(stream, data) {
      const current = stream === 'feed' ? this.feed : this.rooms.get(stream);
      const next = {epoch: data.epoch, offset: data.offset};
      if (data.recovered && current && data.missed > 0) {
        this.replaying.set(stream, {left: data.missed, offset: data.offset});
        next.offset = current.offset;
      }
      if (stream === 'feed') this.feed = next; else this.rooms.set(stream, next);
    }

    advance(stream, offset) {
      const current = stream === 'feed' ? this.feed : this.rooms.get(stream);
      if (!current) return;
      current.offset = offset;
      const replay = this.replaying.get(stream);
      if (replay && --replay.left === 0) {
        current.offset = replay.offset;
        this.replaying.delete(stream);
        if (this.replaying.size === 0) {
          const callbacks = this.whenReplayed;
          this.whenReplayed = [];
          for (const fn of callbacks) fn();
        }
      }
    }

    // Sends a raw text frame as is (a test tool's "send"); false when not connected.
    send(text) {
      if (!this.connected) return false;
      this.ws.send(text);
      return true;
    }

    request(type, data, expectReply = true) {
      if (!this.connected) return Promise.reject(new Error('not connected'));
      if (!expectReply) {
        this.ws.send(JSON.stringify({type, data}));
        return Promise.resolve(null);
      }
      this.nextId = this.nextId % MAX_ID + 1;
      const id = this.nextId;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(`${type} timed out`));
        }, this.timeout);
        this.pending.set(id, {resolve, reject, timer});
        this.ws.send(JSON.stringify({id, type, data}));
      });
    }

    async subscribe(channel) {
      if (!this.rooms.has(channel)) this.rooms.set(channel, null);
      try {
        return await this.resubscribe(channel);
      } catch (err) {
        // Refused (forbidden, unknown room): forget it, so that no reconnect retries it.
        if (err.code && this.rooms.get(channel) === null) this.rooms.delete(channel);
        throw err;
      }
    }

    async resubscribe(channel) {
      const known = this.rooms.get(channel);
      const data = known ? {channel, since: known.offset, epoch: known.epoch} : {channel};
      const reply = await this.request('subscribe', data);
      this.position(channel, reply);
      if (known) this.emit('recovery', {stream: channel, recovered: reply.recovered,
                                        missed: reply.missed});
      return reply;
    }

    unsubscribe(channel) {
      this.rooms.delete(channel);
      return this.request('unsubscribe', {channel});
    }

    publish(channel, data) { return this.request('publish', {channel, data}); }

    presence(channel) { return this.request('presence', {channel}); }

    history(channel, options = {}) { return this.request('history', {channel, ...options}); }

    typing(channel, active) { return this.request('typing', {channel, active}, false); }

    refresh(token) {
      this.token = token;
      return this.request('auth.refresh', {token});
    }
  }

  global.EventsClient = EventsClient;
})(typeof window !== 'undefined' ? window : globalThis);
