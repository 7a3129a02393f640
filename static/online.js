/*
 * The admin dashboard's "Online now" list and rooms table. Online users come from
 * GET /api/v1/presence and stay live through the user.online / user.offline events of the
 * dashboard's socket; both lists are also reloaded every few seconds (tab and subscriber
 * counts change without an event) and on demand.
 */
(function () {
  'use strict';

  var A = window.App;
  var REFRESH_MS = 5000;

  /** Builds the panels; authed(method, path) is the dashboard's authenticated REST call. */
  function create(authed, initials) {
    var online = {}; // user id -> {name, connections (null until the next reload)}
    var timer = null;
    var reloadSoon = null;

    function renderOnline() {
      var box = A.$('online-list');
      A.clear(box);
      var ids = Object.keys(online).sort(function (a, b) {
        return online[a].name.localeCompare(online[b].name);
      });
      var tabs = 0;
      ids.forEach(function (id) {
        var user = online[id];
        tabs += user.connections || 1;
        var count = user.connections === null ? 'online' :
          user.connections + (user.connections === 1 ? ' tab' : ' tabs');
        box.appendChild(A.el('li', { className: 'online-item', attrs: { 'data-user-id': id } },
          A.el('span', { className: 'avatar avatar-sm', text: initials(user.name), attrs: { 'aria-hidden': 'true' } }),
          A.el('span', { className: 'online-name', text: user.name }),
          A.el('span', { className: 'presence-dot', attrs: { 'aria-hidden': 'true' } }),
          A.el('span', { className: 'online-tabs muted small', text: count })));
      });
      A.$('online-users').textContent = String(ids.length);
      A.$('online-tabs').textContent = ids.length + (ids.length === 1 ? ' user · ' : ' users · ') +
        tabs + (tabs === 1 ? ' tab' : ' tabs');
      A.$('online-empty').hidden = ids.length > 0;
    }

    function loadOnline() {
      return authed('GET', '/api/v1/presence').then(function (res) {
        if (res.status !== 200 || !res.body || !res.body.success) return;
        online = {};
        res.body.data.online.forEach(function (u) {
          online[u.user_id] = { name: u.name, connections: u.connections };
        });
        renderOnline();
      });
    }

    function renderRooms(rooms) {
      var body = A.$('rooms-body');
      A.clear(body);
      rooms.forEach(function (room) {
        body.appendChild(A.el('tr', { attrs: { 'data-room': room.name } },
          A.el('td', null,
            A.el('div', { className: 'room-name', text: room.channel }),
            room.title ? A.el('div', { className: 'muted small', text: room.title }) : null),
          A.el('td', null, A.el('span', { className: 'pill ' + (room.private ? 'pill-high' : 'pill-low'),
            text: room.private ? 'private' : 'public' })),
          A.el('td', { className: 'right num room-subscribers', text: String(room.subscribers) }),
          A.el('td', { className: 'right num room-online', text: String(room.online) }),
          A.el('td', { className: 'muted', text: A.shortDate(room.created_at) })));
      });
      A.$('rooms-total').textContent = String(rooms.length);
      A.$('rooms-updated').textContent = 'updated ' + A.clockTime().slice(0, 8);
    }

    function loadRooms() {
      return authed('GET', '/api/v1/rooms').then(function (res) {
        if (res.status !== 200 || !res.body || !res.body.success) return;
        renderRooms(res.body.data.rooms);
      });
    }

    function refresh() {
      loadOnline();
      loadRooms();
    }

    /** Starts loading and the periodic refresh (admins only). */
    function start() {
      if (timer) return;
      refresh();
      timer = setInterval(refresh, REFRESH_MS);
    }

    function stop() {
      clearInterval(timer);
      clearTimeout(reloadSoon);
      timer = null;
      online = {};
    }

    /** Applies user.online / user.offline at once; the tab count follows from a reload. */
    function handle(event) {
      var data = event.data || {};
      if (event.type === 'user.online') {
        if (!online[data.user_id]) online[data.user_id] = { name: data.name, connections: null };
        clearTimeout(reloadSoon);
        reloadSoon = setTimeout(loadOnline, 300);
      } else if (event.type === 'user.offline') {
        delete online[data.user_id];
      } else {
        return;
      }
      renderOnline();
    }

    A.$('rooms-refresh').addEventListener('click', refresh);
    return { start: start, stop: stop, handle: handle, refresh: refresh };
  }

  window.OnlinePanel = { create: create };
})();
