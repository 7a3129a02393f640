/*
 * The admin's users table: one page at a time, with a role picker and a delete button per
 * row. create() takes what it shares with the dashboard: authed (an API call that refreshes
 * the token), me (returns the signed-in user), names (user id to name) and initials.
 */
(function () {
  'use strict';

  var A = window.App;
  var PER_PAGE = 10;

  /** Returns the users table of this page, wired to the dashboard's session through opts. */
  function create(opts) {
    var usersPage = 1;
    var usersReload = null;

    /** Reloads the current page soon, once for a burst of user events. */
    function scheduleUsersReload() {
      clearTimeout(usersReload);
      usersReload = setTimeout(loadUsers, 250);
    }

    /** Fetches the current page of users and renders it (the last page if it shrank). */
    function loadUsers() {
      opts.authed('GET', '/api/v1/users?page=' + usersPage + '&per_page=' + PER_PAGE).then(function (res) {
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

    /** Returns the role picker of one row; a change is saved at once. */
    function roleSelect(user) {
      var mine = user.id === opts.me().id;
      var superOnly = opts.me().role !== 'superadmin';
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
        opts.authed('PUT', '/api/v1/users/' + user.id + '/role', { role: next }).then(function (res) {
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

    /** Returns the delete button of one row; it deletes on a second click within 4 s. */
    function deleteButton(user) {
      var armed = null;
      var button = A.el('button', { className: 'btn btn-ghost btn-small btn-danger-ghost', type: 'button',
        text: 'Delete', attrs: { 'aria-label': 'Delete ' + user.name } });
      button.disabled = user.id === opts.me().id;
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
        opts.authed('DELETE', '/api/v1/users/' + user.id).then(function (res) {
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

    /** Fills the table body and the pager from one page of users. */
    function renderUsers(page) {
      var body = A.$('users-body');
      A.clear(body);
      page.users.forEach(function (user) {
        opts.names[user.id] = user.name;
        var nameCell = A.el('td', {}, A.el('div', { className: 'cell-name' },
          A.el('span', { className: 'avatar avatar-sm', text: opts.initials(user.name), attrs: { 'aria-hidden': 'true' } }),
          A.el('span', { className: 'user-name', text: user.name }),
          user.id === opts.me().id ? A.el('span', { className: 'you', text: 'you' }) : null));
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

    return {
      load: loadUsers,
      scheduleReload: scheduleUsersReload,
      cancelReload: function () { clearTimeout(usersReload); },
      prev: function () { usersPage = Math.max(1, usersPage - 1); loadUsers(); },
      next: function () { usersPage += 1; loadUsers(); }
    };
  }

  window.UsersTable = { create: create };
})();
