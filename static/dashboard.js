/*
 * The live dashboard at /. Signs in over the REST API, keeps tokens in sessionStorage, and
 * updates itself from its own WebSocket plus a 2 s poll of /ws/stats (admins).
 * Data from the server is rendered with textContent only.
 */
(function () {
  'use strict';

  var A = window.App;
  var SVG = 'http://www.w3.org/2000/svg';
  var POLL_MS = 2000;
  var WINDOW_MS = 5 * 60 * 1000;
  var FEED_MAX = 60;
  var PER_PAGE = 10;

  var session = A.loadSession();
  var me = null;
  var socket = null;
  var reconnectTimer = null;
  var reconnectAttempt = 0;
  var pollTimer = null;
  var refreshTimer = null;
  var refreshing = null;
  var signingOut = false;
  var samples = [];
  var usersPage = 1;
  var usersReload = null;
  var names = {};

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
        scheduleRefresh();
        // Swap the fresh token into the open socket instead of reconnecting.
        if (socket && socket.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify({ type: 'auth.refresh', data: { token: session.access_token } }));
        }
        return true;
      });
    return refreshing;
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!session) return;
    // Refresh a minute early, or after about three quarters of a short-lived token's life
    // (plus a second: the token's exp is counted in whole seconds from its issue time).
    var lead = Math.min(60000, (session.ttl || 900000) / 4) + 1000;
    var wait = Math.max(1000, session.expires_at - Date.now() - lead);
    refreshTimer = setTimeout(refreshTokens, wait);
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
    clearTimeout(reconnectTimer);
    clearTimeout(refreshTimer);
    clearInterval(pollTimer);
    clearTimeout(usersReload);
    pollTimer = null;
    if (socket) {
      var s = socket;
      socket = null;
      s.close(1000, 'signed out');
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
      scheduleRefresh();
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
      if (!wasAdmin) loadUsers();
    } else {
      clearInterval(pollTimer);
      pollTimer = null;
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
    clearTimeout(reconnectTimer);
    setSocketStatus('connecting', 'Connecting…');
    var opened = false;
    var ws = new WebSocket(A.socketUrl() + '?token=' + encodeURIComponent(session.access_token));
    socket = ws;
    ws.onopen = function () {
      if (socket !== ws) return;
      opened = true;
      reconnectAttempt = 0;
      setSocketStatus('connected', 'Live');
    };
    ws.onmessage = function (msg) {
      if (socket !== ws) return;
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; }
      handleEvent(event);
    };
    ws.onclose = function (close) {
      if (socket !== ws) return;
      socket = null;
      if (close.code === 1008 && (close.reason === 'account deleted' || close.reason === 'session revoked')) {
        signOut(A.explainClose(close.code, close.reason));
        return;
      }
      setSocketStatus('disconnected', 'Reconnecting…');
      var needsToken = !opened || close.reason === 'token expired' ||
        (close.reason || '').indexOf('refresh rejected') === 0;
      var delay = Math.min(15000, 1000 * Math.pow(2, reconnectAttempt));
      reconnectAttempt += 1;
      reconnectTimer = setTimeout(function () {
        if (!session) return;
        if (!needsToken) { openSocket(); return; }
        // A refused upgrade is most often an expired token: check it over REST first.
        authed('GET', '/api/v1/users/me').then(function (res) {
          if (session && res.status === 200) openSocket();
          else if (session && res.status !== 401) reconnectTimer = setTimeout(openSocket, delay);
        });
      }, delay);
    };
  }

  function handleEvent(event) {
    var data = event.data || {};
    addFeedItem(event);
    switch (event.type) {
      case 'user.created':
      case 'user.deleted':
      case 'user.updated':
      case 'user.role.changed':
        if (isAdmin(me)) scheduleUsersReload();
        if (me && data.user_id === me.id && event.type !== 'user.deleted') reloadMe();
        break;
      case 'profile.updated':
        reloadMe();
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

  // -- the feed -----------------------------------------------------------------------------

  function who(id) {
    return names[id] ? names[id] + ' (#' + id + ')' : 'user #' + id;
  }

  function summary(event) {
    var d = event.data || {};
    switch (event.type) {
      case 'connection.established':
        return 'This dashboard connected as ' + d.role + ' · client ' + String(d.client_id).slice(0, 8);
      case 'user.created':
        if (d.user_id !== undefined) names[d.user_id] = d.name;
        return d.name + ' <' + d.email + '> registered';
      case 'user.updated':
        return who(d.user_id) + ' changed ' + (d.changes || []).join(', ');
      case 'profile.updated':
        return 'Profile updated: ' + (d.changes || []).join(', ');
      case 'user.deleted':
        return who(d.user_id) + ' <' + d.email + '> was deleted';
      case 'user.role.changed':
        return who(d.user_id) + ': ' + d.old_role + ' → ' + d.new_role;
      case 'password.changed':
        return 'Password changed';
      case 'system.alert':
        return '[' + d.priority + '] ' + d.message;
      case 'health.status.changed':
        return 'Health ' + d.previous_status + ' → ' + d.status;
      case 'auth.refreshed':
        return 'Access token refreshed on the open connection';
      case 'error':
        return (d.code || 'error') + ': ' + (d.message || '');
      default:
        return JSON.stringify(d);
    }
  }

  function addFeedItem(event) {
    var list = isAdmin(me) ? A.$('feed') : A.$('my-feed');
    var item = A.el('li', { className: 'feed-item ' + A.eventClass(event.type) },
      A.el('time', { className: 'feed-time', text: A.clockTime(event.timestamp).slice(0, 8),
        attrs: { datetime: event.timestamp || '', title: event.timestamp || '' } }),
      A.el('span', { className: 'feed-type', text: event.type }),
      A.el('span', { className: 'feed-text', text: summary(event) }));
    list.insertBefore(item, list.firstChild);
    while (list.childElementCount > FEED_MAX) list.removeChild(list.lastChild);
    updateFeedEmpty();
  }

  function updateFeedEmpty() {
    A.$('feed-empty').hidden = A.$('feed').childElementCount > 0;
    A.$('my-feed-empty').hidden = A.$('my-feed').childElementCount > 0;
  }

  // -- stats and the chart ------------------------------------------------------------------

  function pollStats() {
    authed('GET', '/ws/stats').then(function (res) {
      if (!isAdmin(me)) return;
      if (res.status === 403) { reloadMe(); return; }
      if (res.status !== 200 || !res.body) return;
      var stats = res.body;
      var now = Date.now();
      samples.push({ t: now, clients: stats.total_clients, delivered: stats.messages_delivered });
      while (samples.length && samples[0].t < now - WINDOW_MS - POLL_MS) samples.shift();
      renderStats(stats);
      renderChart();
    });
  }

  function fmt(n) {
    return typeof n === 'number' ? n.toLocaleString() : '–';
  }

  function rates() {
    var out = [];
    for (var i = 1; i < samples.length; i += 1) {
      var dt = (samples[i].t - samples[i - 1].t) / 1000;
      var dm = samples[i].delivered - samples[i - 1].delivered;
      out.push({ t: samples[i].t, v: dt > 0 && dm >= 0 ? dm / dt : 0 });
    }
    return out;
  }

  function renderStats(stats) {
    A.$('total-clients').textContent = fmt(stats.total_clients);
    A.$('unique-users').textContent = fmt(stats.unique_users);
    A.$('messages-delivered').textContent = fmt(stats.messages_delivered);
    A.$('events-published').textContent = fmt(stats.events_published);
    A.$('slow-dropped').textContent = fmt(stats.slow_consumers_dropped || 0) + ' slow consumers dropped';
    var r = rates();
    var last = r.length ? r[r.length - 1].v : 0;
    A.$('delivery-rate').textContent = (Math.round(last * 10) / 10) + ' / s right now';
    A.$('stats-updated').textContent = 'Updated ' + A.clockTime(stats.timestamp).slice(0, 8);
    A.$('peak-clients').textContent = fmt(Math.max.apply(null, samples.map(function (s) { return s.clients; })));
    A.$('tabs-per-user').textContent = stats.unique_users ?
      (Math.round(10 * stats.total_clients / stats.unique_users) / 10).toFixed(1) : '–';

    var list = A.$('by-role');
    A.clear(list);
    var roles = Object.keys(stats.by_role || {});
    if (!roles.length) {
      list.appendChild(A.el('li', { className: 'empty', text: 'No connections' }));
      return;
    }
    var total = stats.total_clients || 1;
    roles.forEach(function (role) {
      var count = stats.by_role[role];
      var bar = A.el('span', { className: 'bar-fill role-fill-' + role.replace(/[^a-z]/g, '') });
      bar.style.width = Math.max(3, Math.round(100 * count / total)) + '%';
      list.appendChild(A.el('li', { className: 'by-role-item', attrs: { 'data-role': role } },
        A.el('div', { className: 'by-role-line' },
          A.el('span', { className: 'role-badge role-' + role.replace(/[^a-z]/g, ''), text: role }),
          A.el('span', { className: 'by-role-count', text: fmt(count) })),
        A.el('span', { className: 'bar' }, bar)));
    });
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function niceMax(value, minimum) {
    var v = Math.max(value, minimum);
    var steps = [1, 2, 4, 6, 8, 10];
    var mag = Math.pow(10, Math.floor(Math.log10(v)));
    for (var i = 0; i < steps.length; i += 1) {
      if (steps[i] * mag >= v) return steps[i] * mag;
    }
    return 10 * mag;
  }

  function axisLabel(v) {
    if (v >= 1000) return Math.round(v / 100) / 10 + 'k';
    return String(Math.round(v * 10) / 10);
  }

  function spanLabel(ms) {
    var secs = Math.round(ms / 1000);
    if (secs < 60) return '−' + secs + 's';
    var m = Math.floor(secs / 60);
    var rest = secs % 60;
    return '−' + m + (rest ? 'm ' + rest + 's' : ' min');
  }

  function renderChart() {
    var box = A.$('chart');
    var width = Math.max(320, box.clientWidth || 600);
    var height = 230;
    var pad = { l: 40, r: 44, t: 14, b: 26 };
    var w = width - pad.l - pad.r;
    var h = height - pad.t - pad.b;
    var now = Date.now();
    // The window grows with the data: at least one minute, at most WINDOW_MS.
    var span = samples.length ? Math.min(WINDOW_MS, Math.max(60000, now - samples[0].t)) : 60000;
    span = Math.ceil(span / 15000) * 15000;
    var x0 = now - span;
    var rate = rates();
    var maxC = niceMax(Math.max.apply(null, samples.map(function (s) { return s.clients; }).concat([0])), 4);
    var maxR = niceMax(Math.max.apply(null, rate.map(function (s) { return s.v; }).concat([0])), 4);
    function x(t) { return pad.l + w * Math.max(0, (t - x0)) / span; }
    function yC(v) { return pad.t + h - h * v / maxC; }
    function yR(v) { return pad.t + h - h * v / maxR; }
    A.$('chart-window').textContent = span >= 120000 ? 'last ' + Math.round(span / 60000) + ' minutes'
      : 'last ' + Math.round(span / 1000) + ' seconds';

    var root = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, width: width, height: height,
      'class': 'chart-svg' });
    var defs = svg('defs');
    var grad = svg('linearGradient', { id: 'conn-fill', x1: 0, y1: 0, x2: 0, y2: 1 });
    grad.appendChild(svg('stop', { offset: '0%', 'stop-color': '#4f46e5', 'stop-opacity': '0.28' }));
    grad.appendChild(svg('stop', { offset: '100%', 'stop-color': '#4f46e5', 'stop-opacity': '0.02' }));
    defs.appendChild(grad);
    root.appendChild(defs);

    for (var i = 0; i <= 4; i += 1) {
      var gy = pad.t + h * i / 4;
      root.appendChild(svg('line', { x1: pad.l, x2: pad.l + w, y1: gy, y2: gy, 'class': 'grid' }));
      var left = svg('text', { x: pad.l - 8, y: gy + 4, 'text-anchor': 'end', 'class': 'axis axis-conn' });
      left.textContent = axisLabel(maxC * (4 - i) / 4);
      root.appendChild(left);
      var right = svg('text', { x: pad.l + w + 8, y: gy + 4, 'text-anchor': 'start', 'class': 'axis axis-msg' });
      right.textContent = axisLabel(maxR * (4 - i) / 4);
      root.appendChild(right);
    }
    // Time ticks on round steps back from "now".
    var step = [15000, 30000, 60000].filter(function (st) { return span / st <= 6; })[0] || 60000;
    for (var back = 0; back <= span; back += step) {
      var tx = x(now - back);
      var label = svg('text', { x: tx, y: height - 6,
        'text-anchor': back === 0 ? 'end' : back + step > span ? 'start' : 'middle', 'class': 'axis' });
      label.textContent = back === 0 ? 'now' : spanLabel(back);
      root.appendChild(label);
    }

    if (samples.length >= 2) {
      var pts = samples.filter(function (s) { return s.t >= x0 - POLL_MS; });
      var line = pts.map(function (s, k) {
        return (k ? 'L' : 'M') + x(s.t).toFixed(1) + ',' + yC(s.clients).toFixed(1);
      }).join(' ');
      var area = line + ' L' + x(pts[pts.length - 1].t).toFixed(1) + ',' + (pad.t + h) +
        ' L' + x(pts[0].t).toFixed(1) + ',' + (pad.t + h) + ' Z';
      root.appendChild(svg('path', { d: area, 'class': 'area-conn' }));
      root.appendChild(svg('path', { d: line, 'class': 'line-conn' }));
      // Delivered messages per second as bars, one per poll interval, behind the line.
      var barW = Math.max(2, w * POLL_MS / span - 2);
      rate.filter(function (r) { return r.t >= x0 && r.v > 0; }).forEach(function (r) {
        var top = yR(r.v);
        root.insertBefore(svg('rect', { x: (x(r.t) - barW).toFixed(1), y: top.toFixed(1),
          width: barW.toFixed(1), height: (pad.t + h - top).toFixed(1), rx: 1.5, 'class': 'bar-msg' }),
        root.querySelector('.area-conn'));
      });
      var last = pts[pts.length - 1];
      root.appendChild(svg('circle', { cx: x(last.t), cy: yC(last.clients), r: 4, 'class': 'dot-conn' }));
    } else {
      var wait = svg('text', { x: pad.l + w / 2, y: pad.t + h / 2, 'text-anchor': 'middle', 'class': 'axis' });
      wait.textContent = 'Collecting data…';
      root.appendChild(wait);
    }
    A.clear(box);
    box.appendChild(root);
  }

  // -- users --------------------------------------------------------------------------------

  function scheduleUsersReload() {
    clearTimeout(usersReload);
    usersReload = setTimeout(loadUsers, 250);
  }

  function loadUsers() {
    authed('GET', '/api/v1/users?page=' + usersPage + '&per_page=' + PER_PAGE).then(function (res) {
      if (res.status !== 200 || !res.body || !res.body.success) return;
      var page = res.body.data;
      if (page.pages && usersPage > page.pages) {
        usersPage = page.pages;
        loadUsers();
        return;
      }
      renderUsers(page);
    });
  }

  function roleSelect(user) {
    var mine = user.id === me.id;
    var superOnly = me.role !== 'superadmin';
    var select = A.el('select', { className: 'role-select', attrs: { 'aria-label': 'Role of ' + user.name } });
    ['user', 'admin', 'superadmin'].forEach(function (role) {
      var option = A.el('option', { value: role, text: role });
      if (role === 'superadmin' && superOnly) option.disabled = true;
      select.appendChild(option);
    });
    select.value = user.role;
    select.disabled = mine || (user.role === 'superadmin' && superOnly);
    select.addEventListener('change', function () {
      var next = select.value;
      select.disabled = true;
      authed('PUT', '/api/v1/users/' + user.id + '/role', { role: next }).then(function (res) {
        select.disabled = false;
        if (res.status === 200) {
          A.toast(user.name + ' is now ' + next + '.', 'ok');
        } else {
          select.value = user.role;
          A.toast(A.errorMessage(res), 'error');
        }
      });
    });
    return select;
  }

  function deleteButton(user) {
    var armed = null;
    var button = A.el('button', { className: 'btn btn-ghost btn-small btn-danger-ghost', type: 'button',
      text: 'Delete', attrs: { 'aria-label': 'Delete ' + user.name } });
    button.disabled = user.id === me.id;
    button.addEventListener('click', function () {
      if (!armed) {
        button.textContent = 'Confirm';
        button.classList.add('btn-danger');
        armed = setTimeout(function () {
          armed = null;
          button.textContent = 'Delete';
          button.classList.remove('btn-danger');
        }, 4000);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      authed('DELETE', '/api/v1/users/' + user.id).then(function (res) {
        if (res.status === 200) {
          A.toast(user.name + ' was deleted.', 'ok');
          scheduleUsersReload();
        } else {
          button.disabled = false;
          A.toast(A.errorMessage(res), 'error');
        }
      });
    });
    return button;
  }

  function renderUsers(page) {
    var body = A.$('users-body');
    A.clear(body);
    page.users.forEach(function (user) {
      names[user.id] = user.name;
      var nameCell = A.el('td', {}, A.el('div', { className: 'cell-name' },
        A.el('span', { className: 'avatar avatar-sm', text: initials(user.name), attrs: { 'aria-hidden': 'true' } }),
        A.el('span', { className: 'user-name', text: user.name }),
        user.id === me.id ? A.el('span', { className: 'you', text: 'you' }) : null));
      body.appendChild(A.el('tr', { attrs: { 'data-user-id': String(user.id) } },
        A.el('td', { className: 'muted mono', text: '#' + user.id }),
        nameCell,
        A.el('td', { className: 'cell-email', text: user.email }),
        A.el('td', {}, roleSelect(user)),
        A.el('td', { className: 'muted', text: A.shortDate(user.created_at) }),
        A.el('td', { className: 'right' }, deleteButton(user))));
    });
    if (!page.users.length) {
      body.appendChild(A.el('tr', {}, A.el('td', { className: 'empty', text: 'No users', attrs: { colspan: '6' } })));
    }
    A.$('users-total').textContent = String(page.total);
    A.$('users-page').textContent = 'Page ' + page.page + ' of ' + Math.max(1, page.pages);
    A.$('users-prev').disabled = page.page <= 1;
    A.$('users-next').disabled = page.page >= page.pages;
  }

  // -- broadcast ----------------------------------------------------------------------------

  function broadcast(event) {
    event.preventDefault();
    var button = A.$('broadcast-send');
    var result = A.$('broadcast-result');
    var message = A.$('broadcast-message').value.trim();
    if (!message) return;
    button.disabled = true;
    result.className = 'hint';
    result.textContent = 'Sending…';
    authed('POST', '/ws/broadcast', {
      message: message,
      priority: A.$('broadcast-priority').value,
      metadata: { source: 'dashboard' }
    }).then(function (res) {
      button.disabled = false;
      if (res.status === 200 && res.body && res.body.success) {
        var n = res.body.recipients;
        result.className = 'hint hint-ok';
        result.textContent = 'Delivered to ' + n + (n === 1 ? ' recipient' : ' recipients') + '.';
        A.$('broadcast-message').value = '';
      } else {
        result.className = 'hint hint-error';
        result.textContent = A.errorMessage(res);
      }
    });
  }

  // -- wiring -------------------------------------------------------------------------------

  A.$('login-form').addEventListener('submit', signIn);
  A.$('logout').addEventListener('click', function () { signOut(''); });
  A.$('broadcast-form').addEventListener('submit', broadcast);
  A.$('feed-clear').addEventListener('click', function () { A.clear(A.$('feed')); updateFeedEmpty(); });
  A.$('users-prev').addEventListener('click', function () { usersPage = Math.max(1, usersPage - 1); loadUsers(); });
  A.$('users-next').addEventListener('click', function () { usersPage += 1; loadUsers(); });
  window.addEventListener('resize', function () { if (isAdmin(me) && samples.length) renderChart(); });

  if (session && session.access_token) {
    show('none');
    start();
  } else {
    show('login');
  }
  updateFeedEmpty();
})();
