/*
 * The dashboard's live event feed: one line per event, newest first. names maps user ids to
 * the names the page has seen; events carry only ids.
 */
(function () {
  'use strict';

  var A = window.App;
  var FEED_MAX = 60;

  /** Returns a user's known name with their id, or just the id. */
  function who(names, id) {
    return names[id] ? names[id] + ' (#' + id + ')' : 'user #' + id;
  }

  /** Returns one line that says what event means; learns names from user.created. */
  function summary(event, names) {
    var d = event.data || {};
    switch (event.type) {
      case 'connection.established':
        return 'This dashboard connected as ' + d.role + ' · client ' + String(d.client_id).slice(0, 8);
      case 'user.created':
        if (d.user_id !== undefined) names[d.user_id] = d.name;
        return d.name + ' <' + d.email + '> registered';
      case 'user.updated':
        return who(names, d.user_id) + ' changed ' + (d.changes || []).join(', ');
      case 'profile.updated':
        return 'Profile updated: ' + (d.changes || []).join(', ');
      case 'user.deleted':
        return who(names, d.user_id) + ' <' + d.email + '> was deleted';
      case 'user.role.changed':
        return who(names, d.user_id) + ': ' + d.old_role + ' → ' + d.new_role;
      case 'password.changed':
        return 'Password changed';
      case 'system.alert':
        return '[' + d.priority + '] ' + d.message;
      case 'health.status.changed':
        return 'Health ' + d.previous_status + ' → ' + d.status;
      case 'auth.refreshed':
        return 'Access token refreshed on the open connection';
      case 'user.online':
        if (d.user_id !== undefined) names[d.user_id] = d.name;
        return d.name + ' (#' + d.user_id + ') came online';
      case 'user.offline':
        return d.name + ' (#' + d.user_id + ') went offline';
      case 'error':
        return (d.code || 'error') + ': ' + (d.message || '');
      default:
        return JSON.stringify(d);
    }
  }

  /** Puts event at the top of the admin feed or the user's own feed; keeps FEED_MAX items. */
  function add(event, names, admin) {
    var list = admin ? A.$('feed') : A.$('my-feed');
    var item = A.el('li', { className: 'feed-item ' + A.eventClass(event.type) },
      A.el('time', { className: 'feed-time', text: A.clockTime(event.timestamp).slice(0, 8),
        attrs: { datetime: event.timestamp || '', title: event.timestamp || '' } }),
      A.el('span', { className: 'feed-type', text: event.type }),
      A.el('span', { className: 'feed-text', text: summary(event, names) }));
    list.insertBefore(item, list.firstChild);
    while (list.childElementCount > FEED_MAX) list.removeChild(list.lastChild);
    updateEmpty();
  }

  /** Shows the empty-feed hints of the feeds that have no items. */
  function updateEmpty() {
    A.$('feed-empty').hidden = A.$('feed').childElementCount > 0;
    A.$('my-feed-empty').hidden = A.$('my-feed').childElementCount > 0;
  }

  window.EventFeed = { add: add, updateEmpty: updateEmpty };
})();
