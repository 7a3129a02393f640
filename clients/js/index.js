// events-server-client: the JavaScript client of the events server (docs/clients.md).
//
// One ES module for browsers and Node >= 20, no dependencies. connect() opens the server's
// authenticated WebSocket and keeps the server's recovery promise for its caller: it
// reconnects with exponential backoff and full jitter, resumes the feed and every
// subscription from the last offset and epoch it delivered, delivers each event once and in
// order within its stream, says after every (re)connect what it recovered (a `recovery`
// event), refreshes the access token before it expires, and stops on a 1008 revocation.
// index.d.ts documents every option.

export const VERSION = '0.1.0';

const PROTOBUF = 'events.v1.protobuf';
const MAX_ID = 2 ** 31;
const REPLIES = new Set(['reply', 'error', 'auth.refreshed']);

/** Any failure the client reports; `code` is a stable string. */
export class ClientError extends Error {
  constructor(message, code, details = {}) {
    super(message);
    this.name = 'ClientError';
    this.code = code;
    Object.assign(this, details);
  }
}

/** A request answered with an `error` (code from the server) or never answered. */
export class RequestError extends ClientError {
  constructor(message, code, type) {
    super(message, code, {type});
    this.name = 'RequestError';
  }
}

/** The server ended the session with a 1008 close: reconnecting cannot help. */
export class Revoked extends ClientError {
  constructor(reason) {
    super(`the server ended the session (1008 ${reason})`, 'revoked', {closeCode: 1008, reason});
    this.name = 'Revoked';
  }
}

/** The access token was refused or expired, and no fresh one could be had. */
export class AuthError extends ClientError {
  constructor(message, status = 401) {
    super(message, 'unauthorized', {status});
    this.name = 'AuthError';
  }
}

/** Returns the socket URL and the HTTP base URL for a server URL (http(s) or ws(s)). */
export function endpoints(url) {
  const here = globalThis.location ? globalThis.location.href : undefined;
  const parsed = new URL(url, here);
  const secure = parsed.protocol === 'https:' || parsed.protocol === 'wss:';
  let path = parsed.pathname.replace(/\/+$/, '');
  if (parsed.protocol === 'ws:' || parsed.protocol === 'wss:') path = path.replace(/\/ws$/, '');
  else if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ClientError(`unsupported URL ${url}: use http(s):// or ws(s)://`, 'invalid_url');
  }
  const host = parsed.host;
  return {
    socket: `${secure ? 'wss' : 'ws'}://${host}${path}/ws`,
    http: `${secure ? 'https' : 'http'}://${host}${path}`,
  };
}

/** Returns a JWT's claims without verifying it (for its exp and iat), or null. */
function claims(token) {
  try {
    const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch (err) {
    return null;
  }
}

const JSON_CODEC = {
  protocols: [],
  encode: (id, type, data) => JSON.stringify(id === undefined ? {type, data} : {id, type, data}),
  decode: (raw) => (typeof raw === 'string' ? JSON.parse(raw) : null),
};

/** Two answers of one stream as one: recovered only if both were, the missed of both. */
function merge(now, before) {
  if (!before) return now;
  const merged = {channel: now.channel, recovered: now.recovered && before.recovered,
                  missed: now.missed + before.missed};
  const error = now.error || before.error;
  return error ? {...merged, error} : merged;
}

/** A FIFO queue that does not copy on every shift. */
class Queue {
  constructor(items = []) { this.items = items; this.head = 0; }
  get length() { return this.items.length - this.head; }
  push(item) { this.items.push(item); }
  shift() {
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/** One channel the client is subscribed to; returned by client.subscribe(). */
export class Subscription {
  constructor(client, channel) {
    this.client = client;
    this.channel = channel;
  }

  /** The last position delivered, {epoch, offset}, or null before the first reply. */
  get position() { return this.client._positionOf(this.channel); }

  /** Publishes a JSON object to the channel; resolves with {channel, id, sent_at, offset}. */
  publish(data) { return this.client.publish(this.channel, data); }

  /** Resolves with the channel's members: [{user_id, name, connections}]. */
  presence() { return this.client.presence(this.channel); }

  /** Resolves with stored messages, newest first ({before, limit} page through them). */
  history(options = {}) { return this.client.history(this.channel, options); }

  /** Tells the channel's other users that this user is (or stopped) typing. */
  typing(active) { return this.client.typing(this.channel, active); }

  /** Leaves the channel: nothing more is delivered from it, no reconnect re-subscribes it. */
  unsubscribe() { return this.client.unsubscribe(this.channel); }

  /** Registers fn for this channel's events of one type ('*': all); returns the remover. */
  on(type, fn) {
    return this.client.on(type, (event) => { if (event.channel === this.channel) fn(event); });
  }
}

/** A connection to the server that survives drops; see connect(). */
export class Client {
  constructor(url, options = {}) {
    const ends = endpoints(url);
    this.url = ends.socket;
    this.baseUrl = ends.http;
    this.options = {
      baseDelay: 500, maxDelay: 30000, maxAttempts: Infinity, timeout: 10000,
      reconnect: true, backlog: 10000, protocol: 'json', ...options,
    };
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) {
      throw new ClientError('no WebSocket implementation here: pass {WebSocket} ' +
                            "(in Node 20: import WebSocket from 'ws')", 'no_websocket');
    }
    if (this.options.protocol !== 'json' && this.options.protocol !== 'protobuf') {
      throw new ClientError(`unknown protocol ${this.options.protocol}: json or protobuf`,
                            'invalid_option');
    }
    // Called as a plain function: a browser's fetch refuses any other `this`.
    const fetchImpl = options.fetch || globalThis.fetch;
    this._fetch = fetchImpl ? (...args) => fetchImpl(...args) : null;
    this.token = options.token || '';
    this.refreshToken = options.refreshToken || null;
    this.state = 'connecting';      // connecting | connected | disconnected | closed
    this.error = null;              // why the client closed, once it has (null: close())
    this._codec = this.options.protocol === 'json' ? JSON_CODEC : null;
    this._ws = null;
    this._welcomed = false;         // whether the current socket got its welcome
    this._welcome = null;           // the last welcome's data
    this._feed = null;              // the feed's {epoch, offset, replay}, once known
    this._subs = new Map();         // channel -> {sub, pos, first: {resolve, reject} | null}
    this._round = null;             // this connection's recovery tally until it is complete
    this._carry = null;             // answers of a tally a drop interrupted, for the next one
    this._pending = new Map();      // request id -> {type, onReply, onError, timer}
    this._queue = [];               // requests waiting for a connection
    this._nextId = 0;
    this._attempt = 0;              // failed connections in a row, for the backoff
    this._checkToken = false;       // a handshake failed: ask the REST API about the token
    this._closing = null;           // close() in progress: its resolve
    this._skew = 0;                 // server clock minus ours, from the welcome's timestamp
    this._timer = null;
    this._refreshTimer = null;
    this._renewing = null;
    this._handlers = new Map();
    this._iterators = new Set();
    this._backlog = this.options.backlog > 0 ? [] : null;
    this._backlogLost = false;
    this._iterated = false;         // events() was called once: the backlog is spoken for
    this._waiters = [];
    Promise.resolve().then(() => this._open());
  }

  // -- public API ------------------------------------------------------------------------

  /** The feed's last delivered position {epoch, offset}, or null before the first welcome. */
  get position() { return this._feed ? {epoch: this._feed.epoch, offset: this._feed.offset} : null; }

  /**
   * Registers fn for one event type, '*' for every event (server events and `recovery`), or a
   * lifecycle name (connecting, connected, disconnected, reconnecting, closed, token,
   * subscribing, subscribed, frame); returns a function that removes it.
   */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => { this._handlers.get(type).delete(fn); };
  }

  /** Iterates over every event (feed, subscriptions, `recovery`) in arrival order. */
  events() {
    let queue;
    if (this._backlog) {
      queue = new Queue(this._backlog);
      this._backlog = null;
    } else if (this._backlogLost && this._iterators.size === 0 && !this._iterated) {
      throw new ClientError(`events() came after ${this.options.backlog} unread events: ` +
                            'call it right after connect()', 'backlog_exceeded');
    } else {
      queue = new Queue();
    }
    this._iterated = true;
    const it = {queue, wake: null, done: false};
    this._iterators.add(it);
    const client = this;
    const finish = () => {
      it.done = true;
      client._iterators.delete(it);
      return {value: undefined, done: true};
    };
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        while (!it.done) {
          if (it.queue.length) return {value: it.queue.shift(), done: false};
          if (client.state === 'closed') {
            finish();
            if (client.error) throw client.error;
            break;
          }
          await new Promise((resolve) => { it.wake = resolve; });
        }
        return {value: undefined, done: true};
      },
      async return() { return finish(); },
    };
  }

  /** Resolves with the welcome's data once connected; rejects once the client has closed. */
  ready() {
    if (this.state === 'closed') return Promise.reject(this._closedError());
    if (this.state === 'connected') return Promise.resolve(this._welcome);
    return new Promise((resolve, reject) => this._waiters.push({resolve, reject}));
  }

  /** Subscribes to a channel (room:NAME); resolves with its Subscription after the reply. */
  subscribe(channel) {
    if (this.state === 'closed') return Promise.reject(this._closedError());
    const known = this._subs.get(channel);
    if (known) return known.first ? known.first.promise : Promise.resolve(known.sub);
    const entry = {sub: new Subscription(this, channel), pos: null, first: null};
    entry.first = {};
    entry.first.promise = new Promise((resolve, reject) => {
      entry.first.resolve = resolve;
      entry.first.reject = reject;
    });
    entry.first.promise.catch(() => {});  // a caller that never awaits it is not an error
    this._subs.set(channel, entry);
    if (this.state === 'connected') this._subscribe(entry);
    return entry.first.promise;
  }

  /** The Subscription of a channel, if the client holds one. */
  subscription(channel) {
    const entry = this._subs.get(channel);
    return entry ? entry.sub : null;
  }

  /** Leaves a channel; resolves once the server confirmed it (at once when disconnected). */
  async unsubscribe(channel) {
    const entry = this._subs.get(channel);
    this._subs.delete(channel);
    if (entry && entry.first) entry.first.reject(new RequestError('unsubscribed', 'closed', 'subscribe'));
    if (this.state !== 'connected') return;
    await this.request('unsubscribe', {channel});
  }

  publish(channel, data) { return this.request('publish', {channel, data}); }

  async presence(channel) { return (await this.request('presence', {channel})).members || []; }

  async history(channel, options = {}) {
    return (await this.request('history', {channel, ...options})).messages || [];
  }

  /** Sends a typing signal (no reply); rejects with `disconnected` when not connected. */
  typing(channel, active) {
    if (this.state !== 'connected') {
      return Promise.reject(new RequestError('not connected', 'disconnected', 'typing'));
    }
    this._ws.send(this._codec.encode(undefined, 'typing', {channel, active: Boolean(active)}));
    return Promise.resolve();
  }

  /**
   * Sends one request and resolves with its reply's data; rejects with a RequestError (the
   * server's code, or `timeout`, `disconnected`, `closed`). Waits for a connection if there is
   * none, within the timeout; a request cut by a drop is not sent again.
   */
  request(type, data) {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed') {
        reject(new RequestError('the client is closed', 'closed', type));
        return;
      }
      const entry = {type, data, onReply: resolve, onError: reject};
      entry.timer = setTimeout(() => this._expire(entry), this.options.timeout);
      if (this.state === 'connected') this._transmit(entry); else this._queue.push(entry);
    });
  }

  /** Writes a raw text frame as is (a test tool's "send"); false when not connected. */
  send(text) {
    if (this.state !== 'connected') return false;
    this._ws.send(text);
    return true;
  }

  /** Hands the client a new access token; sent over the open socket (auth.refresh). */
  async setToken(token) {
    this.token = token;
    this._scheduleRefresh();
    if (this.state === 'connected') await this.request('auth.refresh', {token});
  }

  /** Closes the socket for good; resolves once it is closed. */
  close() {
    if (this.state === 'closed') return Promise.resolve();
    if (this._closing) return this._closing.promise;
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    this._closing = {promise, resolve};
    const ws = this._ws;
    if (ws && ws.readyState <= 1) {
      ws.close(1000, 'client closed');
      // A server that never answers the close frame does not keep close() waiting.
      this._closing.timer = setTimeout(() => {
        if (typeof ws.terminate === 'function') ws.terminate();
        this._stop(null);
      }, 2000);
    } else {
      this._stop(null);
    }
    return promise;
  }

  // -- connecting ----------------------------------------------------------------------------

  async _open() {
    this._timer = null;
    if (this.state === 'closed') return;
    this.state = 'connecting';
    try {
      await this._prepare();
    } catch (err) {
      if (err instanceof AuthError || !this._codec) {
        this._stop(err instanceof ClientError ? err : new ClientError(String(err.message || err),
                                                                       'failed'));
      } else if (this.state !== 'closed') {
        this._retry({code: null, reason: String(err.message || err), welcomed: false});
      }
      return;
    }
    if (this.state === 'closed') return;
    const target = new URL(this.url);
    target.searchParams.set('token', this.token);
    if (this._feed && this._feed.offset != null && this._feed.epoch != null) {
      target.searchParams.set('since', this._feed.offset);
      target.searchParams.set('epoch', this._feed.epoch);
    }
    this._emit('connecting', {attempt: this._attempt, url: this.url});
    let ws;
    try {
      ws = new this.WebSocket(target.toString(), this._codec.protocols);
    } catch (err) {
      this._stop(new ClientError(`cannot open ${this.url}: ${err.message}`, 'invalid_url'));
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (ws !== this._ws || !this._codec.protocols.length || ws.protocol === PROTOBUF) return;
      this._stop(new ClientError(`the server did not select ${PROTOBUF}`, 'protocol'));
    };
    ws.onmessage = (message) => { if (ws === this._ws) this._receive(message.data); };
    ws.onerror = () => {};  // the close that follows says what happened
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
  }

  /** Loads the protobuf codec once and makes sure the token is worth a handshake. */
  async _prepare() {
    if (!this._codec) {
      try {
        const {protobufCodec} = await import('./protobuf.js');
        this._codec = await protobufCodec(this.options.protobuf, this.options.proto);
      } catch (err) {
        throw new ClientError(`protobuf needs protobufjs (npm install protobufjs) and Node: ${
          err.message}`, 'protobuf_unavailable');
      }
    }
    if (!this.token) {
      if (!(await this._renew())) throw new AuthError('no access token: pass {token} or {getToken}');
      return;
    }
    if (this._checkToken) {
      this._checkToken = false;
      const status = await this._probe();
      if (status === 401 && !(await this._renew())) {
        throw new AuthError('the server refused the access token (HTTP 401)');
      }
      return;
    }
    if (this._expiresIn() < 5000 && this._canRenew()) await this._renew();
  }

  /** Asks the REST API whether the token is good: 401, another status, or 0 (unreachable). */
  async _probe() {
    if (!this._fetch) return 0;
    try {
      const response = await this._fetch(`${this.baseUrl}/api/v1/users/me`, {
        headers: {Authorization: `Bearer ${this.token}`, Accept: 'application/json'},
        cache: 'no-store', credentials: 'omit',
      });
      return response.status;
    } catch (err) {
      return 0;
    }
  }

  _receive(raw) {
    let message = null;
    try { message = this._codec.decode(raw); } catch (err) { message = null; }
    this._emit('frame', {message, raw});
    if (!message || typeof message.type !== 'string') return;
    if (message.type === 'connection.established') {
      this._welcomeArrived(message);
    } else if (REPLIES.has(message.type) && message.id != null && this._pending.has(message.id)) {
      this._settle(message);
    } else {
      this._event(message);
    }
  }

  _welcomeArrived(message) {
    const data = message.data || {};
    const stamp = Date.parse(message.timestamp);
    if (!Number.isNaN(stamp)) this._skew = stamp - Date.now();
    const resumed = this._feed !== null;
    if (!this._feed) this._feed = {epoch: null, offset: null, replay: null};
    this._position(this._feed, data, resumed);
    this._welcomed = true;
    this._welcome = data;
    this.state = 'connected';
    this._attempt = 0;
    const streams = new Map([[null, {channel: null, recovered: Boolean(data.recovered),
                                     missed: data.missed || 0}]]);
    for (const channel of this._subs.keys()) streams.set(channel, null);
    this._round = {streams};
    this._emit('connected', data);
    for (const waiter of this._waiters.splice(0)) waiter.resolve(data);
    for (const entry of this._subs.values()) this._subscribe(entry);
    for (const entry of this._queue.splice(0)) this._transmit(entry);
    this._scheduleRefresh();
    this._roundCheck();
  }

  /** Sets a stream's position from a welcome or subscribe reply. When it recovered, the
   * missed events follow: the position moves to the reply's offset only once they all
   * arrived, so a drop in the middle of a replay resumes from the last one delivered. */
  _position(pos, data, resumed) {
    pos.epoch = data.epoch;
    if (resumed && data.recovered && data.missed > 0) {
      pos.replay = {left: data.missed, offset: data.offset};
    } else {
      pos.offset = data.offset;
      pos.replay = null;
    }
  }

  _subscribe(entry) {
    const channel = entry.sub.channel;
    const known = entry.pos && entry.pos.offset != null && entry.pos.epoch != null ? entry.pos : null;
    const data = known ? {channel, since: known.offset, epoch: known.epoch} : {channel};
    this._emit('subscribing', {channel, since: known ? known.offset : null,
                               epoch: known ? known.epoch : null});
    const ws = this._ws;
    const stale = () => ws !== this._ws || this._subs.get(channel) !== entry;
    this._transmit({
      type: 'subscribe', data,
      onReply: (reply) => {
        if (stale()) return;
        if (!entry.pos) entry.pos = {epoch: null, offset: null, replay: null};
        this._position(entry.pos, reply, Boolean(known));
        this._answer(channel, {channel, recovered: Boolean(reply.recovered), missed: reply.missed || 0});
        this._emit('subscribed', reply);
        if (entry.first) {
          entry.first.resolve(entry.sub);
          entry.first = null;
        }
        this._roundCheck();
      },
      onError: (err) => {
        if (stale() || err.code === 'disconnected') return;  // the next connection retries
        this._subs.delete(channel);  // refused: forget it, so that no reconnect retries it
        this._answer(channel, {channel, recovered: false, missed: 0, error: err.code});
        if (entry.first) entry.first.reject(err);
        this._roundCheck();
      },
    });
  }

  _answer(channel, result) {
    if (this._round && this._round.streams.has(channel)) this._round.streams.set(channel, result);
  }

  /** Emits `recovery` once every stream of this connection answered and replayed. A tally
   * that a drop interrupted is merged in: a stream that could not recover says so even if
   * the socket that said it did not last, and `missed` counts what each socket delivered. */
  _roundCheck() {
    const round = this._round;
    if (!round) return;
    for (const result of round.streams.values()) if (result === null) return;
    if (this._feed.replay) return;
    for (const entry of this._subs.values()) if (entry.pos && entry.pos.replay) return;
    this._round = null;
    const carry = this._carry || new Map();
    this._carry = null;
    const streams = [...round.streams.values()].map((now) => merge(now, carry.get(now.channel)));
    // A re-subscribe refused before the drop is reported although the channel is gone.
    for (const before of carry.values()) {
      if (before.error && !round.streams.has(before.channel)) streams.push(before);
    }
    this._dispatch({type: 'recovery', data: {streams},
                    timestamp: new Date().toISOString(), channel: null, offset: null});
  }

  /** Keeps what an interrupted tally learned: each answered stream, with `missed` cut to the
   * replayed events that arrived. */
  _interrupt(round) {
    const carry = this._carry || new Map();
    for (const [channel, result] of round.streams) {
      if (result === null) continue;
      const pos = channel === null ? this._feed : (this._subs.get(channel) || {}).pos;
      const left = pos && pos.replay ? pos.replay.left : 0;
      carry.set(channel, merge({...result, missed: result.missed - left}, carry.get(channel)));
    }
    this._carry = carry;
  }

  _event(message) {
    const channel = message.channel == null ? null : message.channel;
    let pos = this._feed;
    if (channel !== null) {
      const entry = this._subs.get(channel);
      if (!entry) return;  // left already: what was in flight is not delivered
      pos = entry.pos;
      if (message.type === 'channel.unsubscribed') this._subs.delete(channel);
    }
    const offset = message.offset == null ? null : message.offset;
    if (offset !== null && pos) {
      pos.offset = offset;
      if (pos.replay && --pos.replay.left === 0) {
        pos.offset = pos.replay.offset;
        pos.replay = null;
      }
    }
    this._dispatch({type: message.type, data: message.data === undefined ? null : message.data,
                    timestamp: message.timestamp || null, channel, offset});
    if (offset !== null) this._roundCheck();
  }

  // -- requests ------------------------------------------------------------------------------

  _transmit(entry) {
    this._nextId = (this._nextId % MAX_ID) + 1;
    const id = this._nextId;
    entry.id = id;
    this._pending.set(id, entry);
    this._ws.send(this._codec.encode(id, entry.type, entry.data));
  }

  _settle(message) {
    const entry = this._pending.get(message.id);
    this._pending.delete(message.id);
    clearTimeout(entry.timer);
    if (message.type === 'error') {
      const data = message.data || {};
      entry.onError(new RequestError(data.message || 'request failed', data.code || 'error',
                                     entry.type));
    } else {
      entry.onReply(message.data || {});
    }
  }

  _expire(entry) {
    if (entry.id !== undefined) this._pending.delete(entry.id);
    const queued = this._queue.indexOf(entry);
    if (queued >= 0) this._queue.splice(queued, 1);
    entry.onError(new RequestError(`${entry.type} timed out`, 'timeout', entry.type));
  }

  // -- closing and reconnecting ----------------------------------------------------------------

  _closed(ws, code, reason) {
    if (ws !== this._ws) return;
    const welcomed = this._welcomed;
    this._ws = null;
    this._welcomed = false;
    if (this._round) this._interrupt(this._round);
    this._round = null;
    if (this._feed) this._feed.replay = null;
    for (const entry of this._subs.values()) if (entry.pos) entry.pos.replay = null;
    const cut = [...this._pending.values()];
    this._pending.clear();
    for (const entry of cut) {
      clearTimeout(entry.timer);
      entry.onError(new RequestError(`${entry.type}: disconnected before the reply`,
                                     'disconnected', entry.type));
    }
    if (this.state === 'closed') return;
    this.state = 'disconnected';
    this._last = {code, reason};
    this._emit('disconnected', {code, reason, welcomed});
    if (this._closing) {
      this._stop(null);
      return;
    }
    if (code === 1008) {
      if (reason !== 'token expired') {
        this._stop(new Revoked(reason));
        return;
      }
      if (!this._canRenew()) {
        this._stop(new AuthError('the access token expired (1008 token expired)'));
        return;
      }
      this.token = '';  // fetched anew before the next handshake
    }
    this._checkToken = !welcomed;
    this._retry({code, reason, welcomed});
  }

  /** Schedules the next attempt, or stops when the policy or maxAttempts says so. */
  _retry(info) {
    const policy = this.options.reconnect;
    const again = typeof policy === 'function' ?
      policy({...info, attempt: this._attempt}) : policy !== false;
    if (!again || this._attempt >= this.options.maxAttempts) {
      const {code, reason} = info;
      this._stop(new ClientError(`disconnected (code ${code}${reason ? `: ${reason}` : ''})`,
                                 'disconnected', {closeCode: code, reason}));
      return;
    }
    // Exponential backoff with full jitter: a random delay up to base * 2^attempt, so
    // clients cut at once do not all come back at once.
    const ceiling = Math.min(this.options.maxDelay, this.options.baseDelay * 2 ** this._attempt);
    const delay = Math.random() * ceiling;
    this._attempt += 1;
    this._emit('reconnecting', {attempt: this._attempt, delay});
    this._timer = setTimeout(() => this._open(), delay);
  }

  _closedError() { return this.error || new ClientError('the client is closed', 'closed'); }

  _stop(error) {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.error = error;
    clearTimeout(this._timer);
    clearTimeout(this._refreshTimer);
    const ws = this._ws;
    this._ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, 'client closed');
    const closedError = this._closedError();
    for (const entry of [...this._queue.splice(0), ...this._pending.values()]) {
      clearTimeout(entry.timer);
      entry.onError(new RequestError(closedError.message, 'closed', entry.type));
    }
    this._pending.clear();
    for (const entry of this._subs.values()) if (entry.first) entry.first.reject(closedError);
    for (const waiter of this._waiters.splice(0)) waiter.reject(closedError);
    const last = this._last || {code: null, reason: null};
    this._emit('closed', {error, code: last.code, reason: last.reason});
    for (const it of this._iterators) if (it.wake) it.wake();
    if (this._closing) {
      clearTimeout(this._closing.timer);
      this._closing.resolve();
    }
  }

  // -- tokens --------------------------------------------------------------------------------

  _canRenew() { return Boolean(this.options.getToken || this.refreshToken); }

  /** Milliseconds until the token expires by the server's clock (Infinity: unknown). */
  _expiresIn() {
    const c = claims(this.token);
    return c && c.exp ? c.exp * 1000 - (Date.now() + this._skew) : Infinity;
  }

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    const c = claims(this.token);
    if (!c || !c.exp || !this._canRenew() || this.state === 'closed') return;
    // A minute early, or after about three quarters of a short-lived token's life (plus a
    // second: exp counts whole seconds from the issue time).
    const ttl = c.iat ? (c.exp - c.iat) * 1000 : 900000;
    const lead = Math.min(this.options.refreshLead ?? 60000, ttl / 4) + 1000;
    const wait = Math.max(1000, this._expiresIn() - lead);
    this._refreshTimer = setTimeout(() => {
      this._renew().catch((err) => {
        if (err instanceof AuthError) this._stop(err);
        else this._refreshTimer = setTimeout(() => this._scheduleRefresh(), 1000);
      });
    }, wait);
  }

  /** Gets a fresh access token (getToken, else the refresh token) and hands it to the open
   * socket; resolves false when there is no way to get one. One renewal at a time. */
  _renew() {
    if (!this._renewing) {
      this._renewing = this._renewOnce().finally(() => { this._renewing = null; });
    }
    return this._renewing;
  }

  async _renewOnce() {
    let token = null;
    if (this.options.getToken) {
      token = await this.options.getToken();
    } else if (this.refreshToken) {
      token = await this._refreshOverRest();
    }
    if (!token || this.state === 'closed') return false;
    this.token = token;
    if (this.state === 'connected') {
      try {
        await this.request('auth.refresh', {token});
      } catch (err) {
        if (err.code !== 'disconnected' && err.code !== 'closed') throw err;
      }
    }
    this._scheduleRefresh();
    return true;
  }

  async _refreshOverRest() {
    if (!this._fetch) throw new ClientError('no fetch here to refresh the token with', 'refresh_failed');
    const response = await this._fetch(`${this.baseUrl}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Accept: 'application/json'},
      body: JSON.stringify({refresh_token: this.refreshToken}),
      cache: 'no-store', credentials: 'omit',
    });
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (response.status === 401 || response.status === 400) {
      const why = body && body.error ? body.error.message : 'refresh token rejected';
      throw new AuthError(`cannot refresh the access token: ${why}`, response.status);
    }
    if (!response.ok || !body || !body.data) {
      throw new ClientError(`token refresh failed (HTTP ${response.status})`, 'refresh_failed');
    }
    this.refreshToken = body.data.refresh_token;
    this._emit('token', {accessToken: body.data.access_token,
                         refreshToken: body.data.refresh_token,
                         expiresIn: body.data.expires_in});
    return body.data.access_token;
  }

  // -- delivery ------------------------------------------------------------------------------

  _positionOf(channel) {
    const entry = this._subs.get(channel);
    return entry && entry.pos ? {epoch: entry.pos.epoch, offset: entry.pos.offset} : null;
  }

  _emit(type, payload) {
    for (const fn of this._handlers.get(type) || []) {
      try { fn(payload); } catch (err) { console.error(err); }
    }
  }

  _dispatch(event) {
    this._emit(event.type, event);
    this._emit('*', event);
    for (const it of this._iterators) {
      it.queue.push(event);
      if (it.wake) {
        it.wake();
        it.wake = null;
      }
    }
    if (this._backlog) {
      this._backlog.push(event);
      if (this._backlog.length > this.options.backlog) {
        this._backlog = null;  // nobody iterates: the application listens with on()
        this._backlogLost = true;
      }
    }
  }
}

/**
 * Connects to an events server. `url` is its base URL (http://host:port; the socket is
 * /ws under it) or a ws(s):// URL of the socket itself. Returns the Client at once; it
 * connects in the background (await client.ready() to wait for the welcome).
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}

/** Logs in over REST; resolves with {accessToken, refreshToken, expiresIn, user}. */
export async function login(url, email, password, {fetch = globalThis.fetch} = {}) {
  const response = await fetch(`${endpoints(url).http}/api/v1/auth/login`, {
    method: 'POST',
    headers: {'Content-Type': 'application/json', Accept: 'application/json'},
    body: JSON.stringify({email, password}),
    credentials: 'omit',
  });
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok || !body || !body.success) {
    const why = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new AuthError(`login failed: ${why}`, response.status);
  }
  const data = body.data;
  return {accessToken: data.access_token, refreshToken: data.refresh_token,
          expiresIn: data.expires_in, user: data.user};
}
