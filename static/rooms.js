/*
 * The Rooms panel of /test: pick or create a room, subscribe, chat, load earlier messages, see
 * who is online and who is typing. test.js owns the socket, a client of the events-server-client
 * library (/clients/js/index.js), and hands each new one to attach(): requests go through it as
 * promises, it re-subscribes the room after a reconnect with its position, and a reconnect that
 * could not recover everything makes the panel refetch what it shows. Over SSE (sse.js) the
 * same calls reopen the stream with the new rooms and publish over REST. Data from the server
 * is rendered with textContent only.
 */
(function () {
  'use strict';

  var A = window.App;
  var HISTORY_PAGE = 20;
  var TYPING_EVERY_MS = 1000; // at most one `typing: true` per second while the user types
  var TYPING_HIDE_MS = 6000; // others' indicators go away after 6 s without a refresh

  /** Builds the panel. token() returns the access token for REST calls. */
  function create(token) {
    var client = null; // the library client of the current connection
    var myId = null;
    var online = false;
    var joined = null; // the subscribed channel
    var shown = null; // the channel whose messages are on screen
    var oldest = null; // id of the oldest message shown: the `before` of "load earlier"
    var members = {}; // user id -> {name, connections}
    var typists = {}; // user id -> {name, timer}
    var typingSentAt = 0;
    var typingOn = false;

    var select = A.$('room-select');
    var joinBtn = A.$('room-join');
    var leaveBtn = A.$('room-leave');
    var earlierBtn = A.$('room-earlier');
    var list = A.$('room-messages');
    var input = A.$('room-input');
    var sendBtn = A.$('room-send');
    var errorEl = A.$('room-error');

    function showError(text) { errorEl.textContent = text || ''; }

    /**
     * Runs call(client) (a promise of a reply's data) and ok(data) on success; an error reply
     * is shown with its code. A request cut by a disconnect is dropped: the reconnect takes over,
     * and one the transport cannot make (SSE: presence, typing) is left out.
     */
    function request(type, channel, call, ok) {
      var c = client;
      if (!c || c.state !== 'connected') {
        showError('Not connected: press Connect first.');
        return;
      }
      call(c).then(function (data) {
        if (c === client) ok(data);
      }, function (err) {
        if (c !== client || ['disconnected', 'closed', 'unsupported'].indexOf(err.code) >= 0) return;
        showError(type + (channel ? ' ' + channel : '') + ' failed · ' + err.code + ': ' + err.message);
        if (type === 'history') earlierBtn.disabled = false;
      });
    }

    // -- rendering ----------------------------------------------------------------------------

    function render() {
      joinBtn.disabled = !online || !select.value || select.value === joined;
      leaveBtn.disabled = !online || !joined;
      input.disabled = !joined;
      sendBtn.disabled = !joined;
      A.$('room-current').textContent = joined ? joined + ' · subscribed' : 'not in a room';
      A.$('rooms-hint').textContent = !online ? 'Connect, pick a room and subscribe.' :
        joined ? 'Type below; others in the room see it live.' : 'Pick a room and subscribe.';
      A.$('room-empty').hidden = list.childElementCount > 0;
      A.$('room-empty').textContent = joined ? 'No messages in ' + joined + ' yet. Say hello!' :
        'Subscribe to a room to chat. Messages arrive live.';
    }

    function renderMembers() {
      var box = A.$('room-members');
      A.clear(box);
      var ids = Object.keys(members).sort(function (a, b) {
        return members[a].name.localeCompare(members[b].name);
      });
      ids.forEach(function (id) {
        var m = members[id];
        var tabs = m.connections > 1 ? m.connections + ' tabs' : '';
        box.appendChild(A.el('li', { className: 'member', attrs: { 'data-user-id': id } },
          A.el('span', { className: 'presence-dot', attrs: { 'aria-hidden': 'true' } }),
          A.el('span', { className: 'member-name', text: m.name }),
          Number(id) === myId ? A.el('span', { className: 'you', text: 'you' }) : null,
          tabs ? A.el('span', { className: 'muted small', text: tabs }) : null));
      });
      A.$('room-online-count').textContent = String(ids.length);
      A.$('room-members-empty').hidden = ids.length > 0;
    }

    function renderTyping() {
      var names = Object.keys(typists).map(function (id) { return typists[id].name; }).sort();
      var text = '';
      if (names.length === 1) text = names[0] + ' is typing…';
      else if (names.length === 2) text = names[0] + ' and ' + names[1] + ' are typing…';
      else if (names.length > 2) text = names.length + ' people are typing…';
      A.$('room-typing').textContent = text;
    }

    function bodyText(body) {
      if (body && typeof body.text === 'string') return body.text;
      try { return JSON.stringify(body); } catch (e) { return String(body); }
    }

    /** Puts one message in id order (ids sort by time); a message already shown is skipped. */
    function addMessage(m) {
      if (!m || typeof m.id !== 'string' || list.querySelector('[data-id="' + CSS.escape(m.id) + '"]')) return;
      var from = m.from || {};
      var mine = from.user_id === myId;
      var item = A.el('li', { className: 'room-msg' + (mine ? ' room-msg-mine' : ''), attrs: { 'data-id': m.id } },
        A.el('div', { className: 'room-msg-head' },
          A.el('span', { className: 'avatar avatar-sm', text: initials(from.name), attrs: { 'aria-hidden': 'true' } }),
          A.el('span', { className: 'room-msg-from', text: from.name || 'user #' + from.user_id }),
          A.el('time', { className: 'msg-time', text: A.clockTime(m.sent_at).slice(0, 8),
            attrs: { datetime: m.sent_at || '', title: m.sent_at || '' } })),
        A.el('div', { className: 'room-msg-body', text: bodyText(m.body) }));
      var before = null;
      for (var node = list.lastElementChild; node; node = node.previousElementSibling) {
        if (node.getAttribute('data-id') < m.id) break;
        before = node;
      }
      var atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
      list.insertBefore(item, before);
      if (oldest === null || m.id < oldest) oldest = m.id;
      if (!before && atBottom) list.scrollTop = list.scrollHeight;
    }

    function initials(name) {
      var parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
      return (parts.slice(0, 2).map(function (p) { return p.charAt(0); }).join('') || '?').toUpperCase();
    }

    // -- room list and creation (REST) --------------------------------------------------------

    function restError(res) {
      var err = res.body && res.body.error;
      if (err) return 'HTTP ' + res.status + ' · ' + err.code + ': ' + err.message;
      return A.errorMessage(res);
    }

    /** Loads GET /api/v1/rooms into the picker; selects `wanted` (a channel) if given. */
    function loadRooms(wanted) {
      var tok = token();
      if (!tok) { showError('Paste or fetch an access token first.'); return Promise.resolve(false); }
      return A.request('GET', '/api/v1/rooms', undefined, tok).then(function (res) {
        if (res.status !== 200 || !res.body || !res.body.success) { showError(restError(res)); return false; }
        var keep = wanted || select.value || joined || 'room:lobby';
        A.clear(select);
        res.body.data.rooms.forEach(function (room) {
          var label = room.name + (room.private ? ' 🔒' : '') + ' · ' + room.online + ' online';
          select.appendChild(A.el('option', { value: room.channel, text: label }));
        });
        if (select.querySelector('option[value="' + CSS.escape(keep) + '"]')) select.value = keep;
        render();
        return true;
      });
    }

    function createRoom(event) {
      event.preventDefault();
      var name = A.$('room-name').value.trim();
      if (!name) { showError('Give the room a name.'); return; }
      var button = A.$('room-create');
      button.disabled = true;
      A.request('POST', '/api/v1/rooms', { name: name, private: A.$('room-private').checked }, token())
        .then(function (res) {
          button.disabled = false;
          if (res.status !== 201 || !res.body || !res.body.success) { showError(restError(res)); return; }
          showError('');
          A.$('room-name').value = '';
          A.toast('Room ' + res.body.data.channel + ' created.', 'ok');
          var channel = res.body.data.channel;
          loadRooms(channel).then(function () { if (online) subscribe(channel); });
        });
    }

    // -- verbs --------------------------------------------------------------------------------

    function subscribe(channel) {
      if (!channel) return;
      if (joined && joined !== channel) unsubscribe();
      showError('');
      request('subscribe', channel, function (c) { return c.subscribe(channel); }, function () {
        joined = channel;
        if (shown !== channel) {
          A.clear(list);
          oldest = null;
          shown = channel;
        }
        members = {};
        clearTypists();
        renderMembers();
        render();
        loadPresence(channel);
        loadHistory(null);
        loadRooms(); // the picker's online counts now include this user
        input.focus();
      });
    }

    function loadPresence(channel) {
      request('presence', channel, function (c) { return c.presence(channel); }, function (present) {
        if (joined !== channel) return;
        members = {};
        present.forEach(function (m) { members[m.user_id] = { name: m.name, connections: m.connections }; });
        renderMembers();
      });
    }

    function unsubscribe() {
      var channel = joined;
      if (!channel) return;
      stopTyping();
      request('unsubscribe', channel, function (c) { return c.unsubscribe(channel); },
        function () { loadRooms(); });
      left();
    }

    /** Forgets the joined room's live state (after unsubscribe, removal or a closed socket). */
    function left() {
      joined = null;
      members = {};
      clearTypists();
      renderMembers();
      earlierBtn.hidden = true;
      render();
    }

    function loadHistory(before) {
      var channel = joined;
      var data = { channel: channel, limit: HISTORY_PAGE };
      if (before) data.before = before;
      earlierBtn.disabled = true;
      request('history', channel, function (c) { return c.history(channel, data); }, function (messages) {
        showHistory(channel, messages, before);
      });
    }

    function showHistory(channel, messages, before) {
      if (joined !== channel) return;
      var keepFrom = list.scrollHeight - list.scrollTop;
      messages.forEach(addMessage);
      if (before) list.scrollTop = list.scrollHeight - keepFrom;
      else list.scrollTop = list.scrollHeight;
      earlierBtn.disabled = false;
      earlierBtn.hidden = messages.length < HISTORY_PAGE;
      render();
    }

    /**
     * After a reconnect that could not recover everything: the room's messages are reloaded
     * over REST (the stored history), so what is shown is the truth again.
     */
    function refetch() {
      var channel = joined;
      loadRooms();
      if (!channel) return Promise.resolve(true);
      var path = '/api/v1/rooms/' + encodeURIComponent(channel.slice('room:'.length)) +
        '/messages?limit=' + HISTORY_PAGE;
      return A.request('GET', path, undefined, token()).then(function (res) {
        if (joined !== channel) return false;
        if (res.status !== 200 || !res.body || !res.body.success) { showError(restError(res)); return false; }
        A.clear(list);
        oldest = null;
        showHistory(channel, res.body.data.messages, null);
        return true;
      });
    }

    function publish(event) {
      event.preventDefault();
      var text = input.value;
      if (!joined || !text.trim()) return;
      stopTyping();
      var channel = joined;
      request('publish', channel, function (c) { return c.publish(channel, { text: text }); },
        function () {});
      input.value = '';
    }

    // -- typing -------------------------------------------------------------------------------

    function onInput() {
      if (!joined) return;
      if (!input.value) { stopTyping(); return; }
      var now = Date.now();
      if (now - typingSentAt < TYPING_EVERY_MS) return;
      typingSentAt = now;
      typingOn = true;
      sendTyping(joined, true);
    }

    function stopTyping() {
      if (!typingOn) return;
      typingOn = false;
      if (joined) sendTyping(joined, false);
    }

    function sendTyping(channel, active) {
      if (client && client.state === 'connected') client.typing(channel, active).catch(function () {});
    }

    function clearTypists() {
      Object.keys(typists).forEach(function (id) { clearTimeout(typists[id].timer); });
      typists = {};
      renderTyping();
    }

    function dropTypist(id) {
      if (!typists[id]) return;
      clearTimeout(typists[id].timer);
      delete typists[id];
      renderTyping();
    }

    function onTyping(data) {
      if (data.user_id === myId) return;
      dropTypist(data.user_id);
      if (!data.active) return;
      typists[data.user_id] = {
        name: data.name,
        timer: setTimeout(function () { dropTypist(data.user_id); }, TYPING_HIDE_MS)
      };
      renderTyping();
    }

    // -- what test.js calls -------------------------------------------------------------------

    /** Takes one event from the socket (everything but replies to the panel's requests). */
    function handle(message) {
      if (!message || typeof message.type !== 'string') return;
      var data = message.data || {};
      if (!joined || message.channel !== joined) return;
      switch (message.type) {
        case 'channel.message':
          dropTypist(data.from && data.from.user_id);
          addMessage(data);
          render();
          break;
        case 'presence.joined':
          if (!members[data.user_id]) members[data.user_id] = { name: data.name, connections: 1 };
          renderMembers();
          break;
        case 'presence.left':
          delete members[data.user_id];
          dropTypist(data.user_id);
          renderMembers();
          break;
        case 'typing':
          onTyping(data);
          break;
        case 'channel.unsubscribed':
          showError('Unsubscribed from ' + joined + ' by the server: ' + (data.reason || 'no reason given'));
          left();
          loadRooms();
          break;
        default:
          break;
      }
    }

    /** Follows a new client (one per press of Connect; null when disconnected). */
    function attach(next) {
      client = next;
      online = false;
      typingOn = false;
      left();
      A.$('room-members-empty').textContent = next && next.transport === 'sse' ?
        'Over SSE, who joins or leaves from now on shows here.' : 'Nobody to show yet.';
      if (!client) return;
      var c = client;
      c.on('connected', function (data) {
        if (c !== client) return;
        myId = data.user_id;
        online = true;
        loadRooms();
        render();
      });
      c.on('disconnected', function () {
        if (c !== client) return;
        online = false;
        typingOn = false;
        clearTypists();
        render();
      });
      c.on('closed', function () { if (c === client) left(); }); // no reconnect follows
      c.on('*', function (event) { if (c === client) handle(event); });
      // A room refused on a re-subscribe (removed meanwhile, say) is forgotten by the client.
      c.on('recovery', function (event) {
        if (c !== client) return;
        event.data.streams.forEach(function (stream) {
          if (!stream.error || stream.channel !== joined) return;
          showError('subscribe ' + stream.channel + ' failed · ' + stream.error);
          left();
        });
      });
    }

    /** After a reconnect: who is online may have changed; a failed recovery refetches. */
    function resumed(summary) {
      if (joined) loadPresence(joined);
      if (summary.recovered) return Promise.resolve(true);
      return refetch();
    }

    A.$('room-pick-form').addEventListener('submit', function (e) { e.preventDefault(); subscribe(select.value); });
    select.addEventListener('change', render);
    leaveBtn.addEventListener('click', unsubscribe);
    A.$('rooms-reload').addEventListener('click', function () { showError(''); loadRooms(); });
    A.$('room-create-form').addEventListener('submit', createRoom);
    earlierBtn.addEventListener('click', function () { if (joined) loadHistory(oldest); });
    A.$('room-send-form').addEventListener('submit', publish);
    input.addEventListener('input', onInput);
    input.addEventListener('blur', stopTyping);

    renderMembers();
    render();
    return { attach: attach, resumed: resumed };
  }

  window.RoomsPanel = { create: create };
})();
