/* The admin dashboard's live numbers: the stat tiles and the connections-by-role bars. */
(function () {
  'use strict';

  var A = window.App;

  /** Formats a count with the locale's separators, or a dash when it is missing. */
  function fmt(n) {
    return typeof n === 'number' ? n.toLocaleString() : '–';
  }

  /** Shows one /ws/stats reply in the tiles and the by-role bars; samples give rate and peak. */
  function render(stats, samples) {
    A.$('total-clients').textContent = fmt(stats.total_clients);
    A.$('unique-users').textContent = fmt(stats.unique_users);
    A.$('messages-delivered').textContent = fmt(stats.messages_delivered);
    A.$('events-published').textContent = fmt(stats.events_published);
    A.$('slow-dropped').textContent = fmt(stats.slow_consumers_dropped || 0) + ' slow consumers dropped';
    var r = window.ActivityChart.rates(samples);
    var last = r.length ? r[r.length - 1].v : 0;
    A.$('delivery-rate').textContent = (Math.round(last * 10) / 10) + ' / s right now';
    A.$('stats-updated').textContent = 'Updated ' + A.clockTime(stats.timestamp).slice(0, 8);
    A.$('peak-clients').textContent = fmt(Math.max.apply(null, samples.map(function (s) { return s.clients; })));
    A.$('tabs-per-user').textContent = stats.unique_users ?
      (Math.round(10 * stats.total_clients / stats.unique_users) / 10).toFixed(1) : '–';

    renderNodes(stats.nodes || []);
    renderWebhooks(stats.webhooks);

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

  /** One row per node of the cluster (a single node without Redis): its own counts. */
  function renderNodes(nodes) {
    A.$('nodes-total').textContent = String(nodes.length);
    var body = A.$('nodes-body');
    A.clear(body);
    nodes.forEach(function (node) {
      var roles = Object.keys(node.by_role || {}).map(function (role) {
        return role + ' ' + fmt(node.by_role[role]);
      }).join(', ');
      body.appendChild(A.el('tr', { attrs: { 'data-node': node.node } },
        A.el('td', { className: 'mono', text: node.node }),
        A.el('td', { className: 'num right node-clients', text: fmt(node.total_clients) }),
        A.el('td', { className: 'num right', text: fmt(node.unique_users) }),
        A.el('td', { text: roles || '–' }),
        A.el('td', { className: 'num right', text: fmt(node.messages_delivered) }),
        A.el('td', { className: 'num right', text: fmt(node.events_published) }),
        A.el('td', { className: 'muted small', text: A.clockTime(node.timestamp).slice(0, 8) })));
    });
  }

  /** The webhook queue (shown only with --webhook-url): waiting rows and this node's attempts. */
  function renderWebhooks(w) {
    A.$('webhooks-panel').hidden = !(w && w.enabled);
    if (!w || !w.enabled) return;
    A.$('webhooks-queued').textContent = fmt(w.queued);
    A.$('webhooks-oldest').textContent = w.queued ? (Math.round(w.oldest_age_s * 10) / 10) + ' s' : '–';
    A.$('webhooks-delivered').textContent = fmt(w.delivered);
    A.$('webhooks-failed').textContent = fmt(w.failed);
    A.$('webhooks-dropped').textContent = fmt(w.dropped);
  }

  window.StatsPanel = { render: render };
})();
