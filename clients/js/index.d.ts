// Type declarations of events-server-client (index.js). docs/clients.md has the guide.

export const VERSION: string;

/** A position in a stream: the last offset delivered and the epoch it belongs to. */
export interface Position {
  epoch: string;
  offset: string;
}

/** One event from the server (or the client's own `recovery`), as connect() delivers it. */
export interface Event<T = any> {
  /** "system.alert", "channel.message", "presence.joined", ..., or "recovery". */
  type: string;
  /** The event's payload (docs/websocket.md lists every type's fields). */
  data: T;
  /** When the server emitted it, RFC 3339 UTC with milliseconds. */
  timestamp: string | null;
  /** "room:NAME" for a room's events; null for the feed (and for `recovery`). */
  channel: string | null;
  /** The event's position in its stream; null for ephemeral events (presence, typing, ...). */
  offset: string | null;
}

/** What one stream answered after a (re)connect. */
export interface StreamRecovery {
  /** The room, or null for the feed (every event addressed to the user, the role or all). */
  channel: string | null;
  /**
   * true: every event this stream missed was delivered (`missed` of them, in order, each
   * once). false: the server could not prove what was missed (history trimmed or lost, or
   * this was the first connection): refetch what you show over REST. When a connection drops
   * before its recovery event, the next one reports both: false if either was.
   */
  recovered: boolean;
  missed: number;
  /** The server's error code when a re-subscribe was refused (forbidden, unknown_channel):
   * the subscription is gone. */
  error?: string;
}

/** The data of a `recovery` event: one entry per stream, the feed's first. */
export interface Recovery {
  streams: StreamRecovery[];
}

/** A member of a room, as presence() lists them. */
export interface Member {
  user_id: number;
  name: string;
  /** Open sockets of this user in the room (0 within the 5 s leave grace). */
  connections: number;
}

/** A room message: the data of a `channel.message` event and an entry of history(). */
export interface ChannelMessage {
  id: string;
  from: {user_id: number; name: string};
  body: Record<string, unknown>;
  sent_at: string;
  /** history() entries carry their offset. */
  offset?: string;
}

/** The reply to a publish. */
export interface PublishReply {
  channel: string;
  id: string;
  sent_at: string;
  offset: string;
}

/** The reply to a subscribe (also the `subscribed` lifecycle payload). */
export interface SubscribeReply {
  channel: string;
  subscribed: true;
  epoch: string;
  offset: string;
  recovered: boolean;
  missed: number;
}

/** The welcome's data (connection.established), as ready() and `connected` give it. */
export interface Welcome {
  client_id: string;
  message: string;
  role: string;
  user_id: number;
  epoch: string;
  offset: string;
  recovered: boolean;
  missed: number;
}

/** A WebSocket constructor: the browser's, Node 22's global one, or `ws`'s. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => any;

/** What a close looked like, for the `reconnect` policy. */
export interface CloseInfo {
  /** The WebSocket close code (1006: the connection dropped without a close frame). */
  code: number | null;
  reason: string;
  /** Whether that socket got its welcome (false: the handshake itself failed). */
  welcomed: boolean;
  /** Failed attempts in a row before this one. */
  attempt: number;
}

export interface ConnectOptions {
  /** The access token (POST /api/v1/auth/login's access_token). */
  token?: string;
  /**
   * A refresh token: before the access token expires (and after a handshake the server
   * refused with 401, or a 1008 "token expired"), the client gets a new access token from
   * POST /api/v1/auth/refresh and hands it to the open socket (auth.refresh). Refresh tokens
   * rotate: the `token` lifecycle event carries the new pair, keep it.
   */
  refreshToken?: string;
  /**
   * Called when the client needs a fresh access token (instead of refreshToken): before the
   * current one expires, and after a refused handshake or a 1008 "token expired". Return the
   * token, or null when there is none (the client then closes with an AuthError).
   */
  getToken?: () => string | null | Promise<string | null>;
  /**
   * The WebSocket implementation. Default: globalThis.WebSocket (browsers, Node >= 22).
   * Node 20: `import WebSocket from 'ws'` and pass it.
   */
  WebSocket?: WebSocketConstructor;
  /**
   * "json" (default) or "protobuf" (the events.v1.protobuf subprotocol: binary frames).
   * protobuf needs Node and protobufjs; browsers speak JSON.
   */
  protocol?: 'json' | 'protobuf';
  /** The protobufjs module for protocol "protobuf" (default: imported by the client). */
  protobuf?: unknown;
  /** Path of the .proto for protocol "protobuf" (default: the package's events.proto). */
  proto?: string;
  /** Backoff: the first reconnect waits a random time up to this many ms (default 500). */
  baseDelay?: number;
  /** Backoff: no wait is longer than this many ms (default 30000). */
  maxDelay?: number;
  /** Failed attempts in a row before the client gives up and closes (default Infinity). */
  maxAttempts?: number;
  /**
   * Whether to reconnect after a close (default true). A function decides per close; a 1008
   * close never reconnects, except "token expired" when a fresh token can be had.
   */
  reconnect?: boolean | ((close: CloseInfo) => boolean);
  /** Milliseconds a request waits for its reply, connection included (default 10000). */
  timeout?: number;
  /** Refresh the token at most this many ms before it expires (default 60000; a quarter of
   * a short token's life when that is less). */
  refreshLead?: number;
  /**
   * Events kept for an events() iterator created later (default 10000; 0 when you only use
   * on()). Past it, the first events() call throws instead of skipping what it missed.
   */
  backlog?: number;
  /** The fetch implementation for REST calls (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

/** Lifecycle notifications: not events from the server, never in '*' or events(). */
export interface LifecycleEvents {
  /** A socket is being opened. */
  connecting: {attempt: number; url: string};
  /** The welcome arrived: the connection is usable. */
  connected: Welcome;
  /** The socket closed; `reconnecting` or `closed` follows. */
  disconnected: {code: number; reason: string; welcomed: boolean};
  /** The next attempt starts in `delay` ms (exponential backoff with full jitter). */
  reconnecting: {attempt: number; delay: number};
  /** The client stopped for good: error is null after close(), else why (Revoked, ...). */
  closed: {error: ClientError | null; code: number | null; reason: string | null};
  /** A token refresh over REST rotated the tokens: store the new pair. */
  token: {accessToken: string; refreshToken: string; expiresIn: number};
  /** A subscribe (or re-subscribe, with the position it resumes from) is being sent. */
  subscribing: {channel: string; since: string | null; epoch: string | null};
  /** A subscribe was answered. */
  subscribed: SubscribeReply;
  /** Every frame as it arrives, replies and the welcome included (for logs and tools):
   * message is the decoded frame (null if it could not be decoded), raw the frame itself. */
  frame: {message: any | null; raw: string | ArrayBuffer};
}

export type Unsubscribe = () => void;

/** Any failure the client reports; code is a stable string. */
export class ClientError extends Error {
  code: string;
  /** For code "disconnected": the close that ended the client. */
  closeCode?: number | null;
  reason?: string;
}

/**
 * A request answered with an error: code is the server's (forbidden, unknown_channel,
 * not_subscribed, rate_limited, too_large, unavailable, invalid_message, ...) or the
 * client's: timeout, disconnected (cut by a drop, not sent again), closed.
 */
export class RequestError extends ClientError {
  /** The verb: subscribe, publish, presence, history, ... */
  type: string;
}

/** The server ended the session with a 1008 close (session revoked, account deleted, ...). */
export class Revoked extends ClientError {
  code: 'revoked';
  closeCode: 1008;
  reason: string;
}

/** The access token was refused or expired, and no fresh one could be had. */
export class AuthError extends ClientError {
  code: 'unauthorized';
  /** The HTTP status that refused it (401 for a refused token or an expiry). */
  status: number;
}

/** One subscribed channel. */
export class Subscription {
  readonly client: Client;
  readonly channel: string;
  /** The last position delivered, or null before the first reply. */
  readonly position: Position | null;
  publish(data: Record<string, unknown>): Promise<PublishReply>;
  presence(): Promise<Member[]>;
  /** Stored messages, newest first; `before` (a message id) and `limit` (1-100) page. */
  history(options?: {before?: string; limit?: number}): Promise<ChannelMessage[]>;
  /** A typing signal (no reply); rejects with code "disconnected" when not connected. */
  typing(active: boolean): Promise<void>;
  /** Leaves the channel: nothing more from it is delivered or re-subscribed. */
  unsubscribe(): Promise<void>;
  /** This channel's events of one type ('*': all of them). */
  on(type: string, fn: (event: Event) => void): Unsubscribe;
}

export class Client {
  /** The socket URL (ws(s)://host/ws). */
  readonly url: string;
  /** The HTTP base URL for REST calls. */
  readonly baseUrl: string;
  readonly state: 'connecting' | 'connected' | 'disconnected' | 'closed';
  /** Why the client closed (null while open and after close()). */
  readonly error: ClientError | null;
  /** The current access token. */
  readonly token: string;
  readonly refreshToken: string | null;
  /** The feed's last delivered position, or null before the first welcome. */
  readonly position: Position | null;

  /** A lifecycle notification (connected, disconnected, closed, token, frame, ...). */
  on<K extends keyof LifecycleEvents>(type: K, fn: (payload: LifecycleEvents[K]) => void): Unsubscribe;
  /** The `recovery` event after each (re)connect. */
  on(type: 'recovery', fn: (event: Event<Recovery>) => void): Unsubscribe;
  /** Events of one type, or every event with '*' (server events and `recovery`). */
  on(type: string, fn: (event: Event) => void): Unsubscribe;

  /**
   * Every event (the feed's, every subscription's, and `recovery` after each connect) in
   * arrival order. The first iterator also gets what arrived since connect() (see backlog).
   * It ends after close(), and throws the error when the client closed on one.
   */
  events(): AsyncIterableIterator<Event>;

  /** Resolves with the welcome once connected; rejects once the client has closed. */
  ready(): Promise<Welcome>;

  /** Subscribes to room:NAME; resolves once the server agreed; rejects with RequestError. */
  subscribe(channel: string): Promise<Subscription>;
  subscription(channel: string): Subscription | null;
  unsubscribe(channel: string): Promise<void>;
  publish(channel: string, data: Record<string, unknown>): Promise<PublishReply>;
  presence(channel: string): Promise<Member[]>;
  history(channel: string, options?: {before?: string; limit?: number}): Promise<ChannelMessage[]>;
  typing(channel: string, active: boolean): Promise<void>;

  /** Any verb: resolves with the reply's data, rejects with a RequestError. */
  request(type: string, data: Record<string, unknown>): Promise<any>;
  /** Writes a raw text frame (a test tool's "send"); false when not connected. */
  send(text: string): boolean;
  /** Hands the client a new access token, sent over the open socket (auth.refresh). */
  setToken(token: string): Promise<void>;
  /** Closes for good; resolves once the socket is closed. */
  close(): Promise<void>;
}

/**
 * Connects to an events server. url is its base URL (http://host:port; the socket is /ws
 * under it) or the socket's own ws(s):// URL. Returns at once; the client connects in the
 * background and reconnects after drops until close() or a 1008.
 */
export function connect(url: string, options?: ConnectOptions): Client;

/** Logs in over REST (POST /api/v1/auth/login). */
export function login(url: string, email: string, password: string,
                      options?: {fetch?: typeof fetch}): Promise<{
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  user: {id: number; name: string; email: string; role: string};
}>;

/** The socket and REST URLs connect() derives from a server URL. */
export function endpoints(url: string): {socket: string; http: string};
