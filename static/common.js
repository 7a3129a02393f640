/*
 * Helpers shared by the dashboard and the test client.
 * Everything that comes from the server is put into the page with textContent, never as HTML.
 */
(function () {
  'use strict';

  var SESSION_KEY = 'events.session';

  /** Creates an element; props may set className, text, attrs, on{Event}; children are nodes or text. */
  function el(tag, props) {
    var node = document.createElement(tag);
    props = props || {};
    Object.keys(props).forEach(function (key) {
      var value = props[key];
      if (value === undefined || value === null) return;
      if (key === 'className') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key === 'attrs') {
        Object.keys(value).forEach(function (name) { node.setAttribute(name, value[name]); });
      } else if (key.slice(0, 2) === 'on') node.addEventListener(key.slice(2).toLowerCase(), value);
      else node[key] = value;
    });
    for (var i = 2; i < arguments.length; i += 1) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function $(id) { return document.getElementById(id); }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function pad(n, width) {
    var s = String(n);
    while (s.length < (width || 2)) s = '0' + s;
    return s;
  }

  /** "14:03:07.123" in local time for an RFC 3339 string (or now). */
  function clockTime(value) {
    var d = value ? new Date(value) : new Date();
    if (isNaN(d.getTime())) return String(value);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' +
      pad(d.getMilliseconds(), 3);
  }

  function shortDate(value) {
    var d = new Date(value);
    if (isNaN(d.getTime())) return value ? String(value) : '—';
    return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
  }

  /** CSS class for an event type: "user.role.changed" -> "evt-user-role-changed". */
  function eventClass(type) {
    var known = ['connection.established', 'user.created', 'user.updated', 'user.deleted',
      'user.role.changed', 'profile.updated', 'password.changed', 'system.alert',
      'health.status.changed', 'auth.refreshed', 'error', 'reply', 'channel.message',
      'channel.unsubscribed', 'presence.joined', 'presence.left', 'typing', 'user.online',
      'user.offline'];
    return known.indexOf(type) >= 0 ? 'evt-' + type.replace(/\./g, '-') : 'evt-other';
  }

  /** ws://host/ws or wss://host/ws for this page's origin. */
  function socketUrl() {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }

  var CLOSE_CODES = {
    1000: 'Normal closure.',
    1001: 'The server is going away (restart or shutdown).',
    1003: 'The server does not accept this kind of data (binary frames are not supported).',
    1006: 'The connection dropped without a close frame. If it never opened, the server ' +
      'refused the upgrade: the token is missing, invalid or expired, or too many connections are open.',
    1008: 'Policy violation: the server ended the session.',
    1009: 'The message was too big.',
    1011: 'The server hit an unexpected error.',
    1013: 'The server dropped this connection because it could not keep up (slow consumer).'
  };

  var REASONS = {
    'token expired': 'The access token expired. Log in again (or send auth.refresh with a fresh ' +
      'token before it expires) and reconnect.',
    'session revoked': 'This session was logged out or its password changed. Log in again.',
    'account deleted': 'This account was deleted by an administrator.',
    'slow consumer': 'Too many messages were waiting for this client.'
  };

  /** A sentence explaining a close event to a person. */
  function explainClose(code, reason) {
    var text = CLOSE_CODES[code] || 'Closed with code ' + code + '.';
    if (reason && REASONS[reason]) text = REASONS[reason];
    else if (reason && reason.indexOf('refresh rejected') === 0) {
      text = 'The server rejected the token sent in auth.refresh and closed the connection.';
    }
    return text;
  }

  // -- session (sessionStorage only; never the URL) -----------------------------------------

  function loadSession() {
    try {
      var raw = sessionStorage.getItem(SESSION_KEY);
      return raw ? JSON.parse(raw) : null;
    } catch (e) {
      return null;
    }
  }

  function saveSession(session) {
    if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  /** Turns a login/refresh response's data into what we keep. */
  function sessionFrom(data, previous) {
    var ttl = (data.expires_in || 900) * 1000;
    return {
      access_token: data.access_token,
      refresh_token: data.refresh_token,
      ttl: ttl,
      expires_at: Date.now() + ttl,
      user: data.user || (previous && previous.user) || null
    };
  }

  // -- REST ---------------------------------------------------------------------------------

  /** Calls the JSON API; resolves to {status, body}; never throws on HTTP errors. */
  function request(method, path, body, token) {
    var headers = { 'Accept': 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers['Authorization'] = 'Bearer ' + token;
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit'
    }).then(function (response) {
      return response.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
        return { status: response.status, body: parsed };
      });
    }, function (err) {
      return { status: 0, body: { success: false, error: { code: 'network', message: 'network error: ' + err.message } } };
    });
  }

  function errorMessage(result) {
    if (result.body && result.body.error && result.body.error.message) return result.body.error.message;
    if (result.status === 0) return 'The server cannot be reached.';
    return 'Request failed (HTTP ' + result.status + ').';
  }

  // -- toasts -------------------------------------------------------------------------------

  function toast(message, kind) {
    var box = $('toasts');
    if (!box) return;
    var item = el('div', { className: 'toast toast-' + (kind || 'info'), text: message,
      attrs: { role: kind === 'error' ? 'alert' : 'status' } });
    box.appendChild(item);
    setTimeout(function () { item.classList.add('toast-out'); }, 4200);
    setTimeout(function () { if (item.parentNode) item.parentNode.removeChild(item); }, 4700);
  }

  window.App = {
    el: el,
    $: $,
    clear: clear,
    clockTime: clockTime,
    shortDate: shortDate,
    eventClass: eventClass,
    socketUrl: socketUrl,
    explainClose: explainClose,
    loadSession: loadSession,
    saveSession: saveSession,
    sessionFrom: sessionFrom,
    request: request,
    errorMessage: errorMessage,
    toast: toast
  };
})();
