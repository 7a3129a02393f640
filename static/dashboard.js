/*
 * The live dashboard at /. Signs in over the REST API, keeps tokens in sessionStorage, and
 * updates itself from its own WebSocket plus a 2 s poll of /ws/stats (admins). The socket is a
 * client of the events-server-client library (clients/js, served at /clients/js/index.js): it
 * reconnects with backoff and jitter, resumes the feed and asks this page for a fresh token
 * before the current one expires; when a resume cannot recover what was missed, the page
 * reloads what it shows. Data from the server is rendered with textContent only. The parts of
 * the page live in chart.js, stats.js, feed.js, users.js, broadcast.js, online.js and
 * apikeys.js, loaded before this file (a module, so it runs after them).
 */
import { AuthError, Revoked, connect } from '/clients/js/index.js';

(function () {
  'use strict';

  var A = window.App;
  var POLL_MS = 2000;
  var WINDOW_MS = 5 * 60 * 1000;

  var session = A.loadSession();
  var me = null;
  var client = null; // the library client of the signed-in session
  var pollTimer = null;
  var refreshing = null;
  var signingOut = false;
  var samples = [];
  var names = {};
  var online = window.OnlinePanel.create(authed, initials);
  var apiKeys = window.ApiKeysPanel.create(authed);
  var users = window.UsersTable.create({
    authed: authed,
    me: function () { return me; },
    names: names,
    initials: initials
  });

  // -- views --------------------------------------------------------------------------------

  function show(view) {
    A.$('login-view').hidden = view !== 'login';
    A.$('admin-view').hidden = view !== 'admin';
    A.$('user-view').hidden = view !== 'user';
    A.$('whoami').hidden = view === 'login';
    A.$('ws-status').hidden = view === 'login';
  }

  function isAdmin(user) {
    return !!user && (user.role === 'admin' || user.role === 'superadmin');
  }

  function initials(name) {
    var parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
    var letters = parts.slice(0, 2).map(function (p) { return p.charAt(0); }).join('');
    return (letters || '?').toUpperCase();
  }

  function setSocketStatus(state, label) {
    var node = A.$('ws-status');
    node.className = 'status status-' + state;
    node.textContent = label;
  }

  function renderMe() {
    A.$('whoami-name').textContent = me.name;
    A.$('whoami-role').textContent = me.role;
    A.$('whoami-role').className = 'role-badge role-' + me.role;
    A.$('whoami-avatar').textContent = initials(me.name);
    names[me.id] = me.name;
    if (isAdmin(me)) return;
    A.$('profile-avatar').textContent = initials(me.name);
    A.$('profile-name').textContent = me.name;
    A.$('profile-email').textContent = me.email;
    A.$('profile-role').textContent = me.role;
    A.$('profile-role').className = 'role-badge role-' + me.role;
    A.$('profile-age').textContent = me.age === null || me.age === undefined ? '—' : String(me.age);
    A.$('profile-created').textContent = A.shortDate(me.created_at);
    A.$('profile-updated').textContent = new Date(me.updated_at).toLocaleString();
    A.$('profile-id').textContent = '#' + me.id;
  }

  // -- auth ---------------------------------------------------------------------------------

  function refreshTokens() {
    if (refreshing) return refreshing;
    if (!session || !session.refresh_token) return Promise.resolve(false);
    refreshing = A.request('POST', '/api/v1/auth/refresh', { refresh_token: session.refresh_token })
      .then(function (res) {
        refreshing = null;
        if (res.status !== 200 || !res.body || !res.body.success) return false;
        session = A.sessionFrom(res.body.data, session);
        A.saveSession(session);
        return true;
      });
    return refreshing;
  }

  /** An authenticated API call that refreshes the access token once on a 401. */
  function authed(method, path, body) {
    if (!session) return Promise.resolve({ status: 401, body: null });
    return A.request(method, path, body, session.access_token).then(function (res) {
      if (res.status !== 401) return res;
      return refreshTokens().then(function (ok) {
        if (!ok) {
          signOut('Your session has expired. Please sign in again.');
          return res;
        }
        return A.request(method, path, body, session.access_token);
      });
    });
  }

  function signIn(event) {
    event.preventDefault();
    var button = A.$('login');
    var error = A.$('login-error');
    button.disabled = true;
    error.textContent = '';
    A.request('POST', '/api/v1/auth/login', {
      email: A.$('email').value.trim(),
      password: A.$('password').value
    }).then(function (res) {
      button.disabled = false;
      if (res.status !== 200 || !res.body || !res.body.success) {
        error.textContent = A.errorMessage(res);
        return;
      }
      A.$('password').value = '';
      session = A.sessionFrom(res.body.data);
      A.saveSession(session);
      start();
    });
  }

  function stopEverything() {
    clearInterval(pollTimer);
    online.stop();
    users.cancelReload();
    pollTimer = null;
    if (client) {
      var c = client;
      client = null;
      c.close();
    }
  }

  function signOut(message) {
    if (signingOut) return;
    signingOut = true;
    var token = session && session.access_token;
    stopEverything();
    session = null;
    me = null;
    A.saveSession(null);
    if (token) A.request('POST', '/api/v1/auth/logout', {}, token);
    samples = [];
    apiKeys.forget(); // a key shown once is not left on the page for the next person
    A.clear(A.$('feed'));
    A.clear(A.$('my-feed'));
    show('login');
    if (message) A.$('login-error').textContent = message;
    signingOut = false;
  }

  // -- start-up -----------------------------------------------------------------------------

  function start() {
    authed('GET', '/api/v1/users/me').then(function (res) {
      if (!session) return;
      if (res.status !== 200 || !res.body || !res.body.success) {
        if (res.status !== 401) signOut(A.errorMessage(res));
        return;
      }
      setMe(res.body.data);
      openSocket();
    });
  }

  function setMe(user) {
    var wasAdmin = isAdmin(me);
    me = user;
    if (session) {
      session.user = user;
      A.saveSession(session);
    }
    renderMe();
    if (isAdmin(me)) {
      show('admin');
      if (!pollTimer) {
        pollStats();
        pollTimer = setInterval(pollStats, POLL_MS);
      }
      if (!wasAdmin) {
        users.load();
        apiKeys.load();
      }
      online.start();
    } else {
      clearInterval(pollTimer);
      pollTimer = null;
      online.stop();
      show('user');
    }
  }

  function reloadMe() {
    authed('GET', '/api/v1/users/me').then(function (res) {
      if (res.status === 200 && res.body && res.body.success) setMe(res.body.data);
    });
  }

  // -- the socket ---------------------------------------------------------------------------

  function openSocket() {
    if (!session) return;
    if (client) client.close();
    setSocketStatus('connecting', 'Connecting…');
    var welcomes = 0;
    var c = connect(location.origin, {
      token: session.access_token,
      baseDelay: 1000,
      maxDelay: 15000,
      backlog: 0, // the page listens with on(), it never iterates events()
      // Called before the token expires and after a refused handshake: the page refreshes its
      // session over REST (null signs out), and the client hands the new token to the socket.
      getToken: function () {
        return refreshTokens().then(function (ok) { return ok && session ? session.access_token : null; });
      }
    });
    client = c;
    c.on('frame', function (frame) {
      if (c === client && frame.message) handleEvent(frame.message);
    });
    c.on('connected', function () {
      welcomes += 1;
      if (c === client) setSocketStatus('connected', 'Live');
    });
    c.on('disconnected', function () {
      if (c === client) setSocketStatus('disconnected', 'Reconnecting…');
    });
    c.on('closed', function (end) {
      if (c !== client) return;
      client = null;
      if (end.error instanceof Revoked) signOut(A.explainClose(end.code, end.reason));
      else if (end.error instanceof AuthError) signOut('Your session has expired. Please sign in again.');
      else setSocketStatus('disconnected', 'Offline');
    });
    c.on('recovery', function (event) {
      if (c !== client || welcomes < 2) return; // the first connection had nothing to recover
      var streams = event.data.streams;
      var recovered = streams.every(function (s) { return s.recovered; });
      var missed = streams.reduce(function (sum, s) { return sum + s.missed; }, 0);
      var text = recovered ? 'reconnected, ' + missed + ' missed events recovered' :
        'could not recover, refreshed';
      A.$('ws-status').setAttribute('data-recovery', text);
      A.$('ws-status').title = 'Last reconnect: ' + text;
      if (recovered) {
        if (missed) A.toast('Reconnected, ' + missed + ' missed events recovered.', 'ok');
        return;
      }
      // Could not recover: what the page shows may be stale, so it is loaded again.
      A.toast('Reconnected; could not recover missed events, refreshed.', 'warn');
      reloadMe();
      if (isAdmin(me)) {
        users.load();
        online.refresh();
      }
    });
  }

  function handleEvent(event) {
    var data = event.data || {};
    window.EventFeed.add(event, names, isAdmin(me));
    switch (event.type) {
      case 'user.created':
      case 'user.deleted':
      case 'user.updated':
      case 'user.role.changed':
        if (isAdmin(me)) users.scheduleReload();
        if (me && data.user_id === me.id && event.type !== 'user.deleted') reloadMe();
        break;
      case 'profile.updated':
        reloadMe();
        break;
      case 'user.online':
      case 'user.offline':
        if (isAdmin(me)) online.handle(event);
        break;
      case 'system.alert':
        A.toast('System alert: ' + data.message, data.priority === 'critical' || data.priority === 'high' ? 'warn' : 'info');
        break;
      case 'health.status.changed':
        A.toast('Server health is now ' + data.status, data.status === 'ok' ? 'ok' : 'error');
        break;
      case 'password.changed':
        A.toast('Your password was changed; other sessions are signed out.', 'warn');
        break;
      default:
        break;
    }
  }

  // -- stats and the chart (stats.js, chart.js) ---------------------------------------------

  function pollStats() {
    authed('GET', '/ws/stats').then(function (res) {
      if (!isAdmin(me)) return;
      if (res.status === 403) { reloadMe(); return; }
      if (res.status !== 200 || !res.body) return;
      var stats = res.body;
      var now = Date.now();
      var delivery = stats.delivery || { latency_ms: {}, closes: {} };
      samples.push({ t: now, clients: stats.total_clients, delivered: stats.messages_delivered,
        p99: (delivery.latency_ms || {}).p99 || 0, dropped: stats.slow_consumers_dropped || 0,
        closes: delivery.closes || {} });
      while (samples.length && samples[0].t < now - WINDOW_MS - POLL_MS) samples.shift();
      window.StatsPanel.render(stats, samples);
      window.DeliveryPanel.render(stats, samples, WINDOW_MS, POLL_MS);
      renderChart();
    });
  }

  function renderChart() {
    window.ActivityChart.render(A.$('chart'), A.$('chart-window'), samples, WINDOW_MS, POLL_MS);
  }

  // -- wiring -------------------------------------------------------------------------------

  A.$('login-form').addEventListener('submit', signIn);
  A.$('logout').addEventListener('click', function () { signOut(''); });
  A.$('broadcast-form').addEventListener('submit', function (event) { window.BroadcastForm.send(event, authed); });
  A.$('feed-clear').addEventListener('click', function () { A.clear(A.$('feed')); window.EventFeed.updateEmpty(); });
  A.$('users-prev').addEventListener('click', users.prev);
  A.$('users-next').addEventListener('click', users.next);
  window.addEventListener('resize', function () { if (isAdmin(me) && samples.length) renderChart(); });

  if (session && session.access_token) {
    show('none');
    start();
  } else {
    show('login');
  }
  window.EventFeed.updateEmpty();
})();
