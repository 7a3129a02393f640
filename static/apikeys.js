/*
 * The admin dashboard's API keys panel: the keys of the server API (name, scopes, created,
 * last used), a form that creates one and shows it this once with a copy button, and a revoke
 * button per key that asks for a second click. The server keeps only a key's hash, so a key
 * that was not copied is gone: revoke it and create another.
 */
(function () {
  'use strict';

  var A = window.App;
  var CONFIRM_MS = 4000; // how long a first click on Revoke waits for the second

  /** Builds the panel; authed(method, path, body) is the dashboard's authenticated REST call. */
  function create(authed) {
    var form = A.$('api-key-form');
    var errorEl = A.$('api-key-error');

    function when(value) {
      if (!value) return 'never';
      var d = new Date(value);
      return isNaN(d.getTime()) ? String(value) :
        d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    }

    function load() {
      authed('GET', '/api/v1/admin/api-keys').then(function (res) {
        if (res.status !== 200 || !res.body || !res.body.success) {
          if (res.status !== 401) errorEl.textContent = A.errorMessage(res);
          return;
        }
        render(res.body.data);
      });
    }

    function render(keys) {
      var body = A.$('api-keys-body');
      A.clear(body);
      keys.forEach(function (key) {
        body.appendChild(A.el('tr', { attrs: { 'data-key-id': String(key.id) } },
          A.el('td', { className: 'key-name', text: key.name }),
          A.el('td', {}, scopeList(key.scopes)),
          A.el('td', { className: 'muted', text: when(key.created_at) }),
          A.el('td', { className: 'muted key-used', text: when(key.last_used_at) }),
          A.el('td', { className: 'right' }, revokeButton(key))));
      });
      if (!keys.length) {
        body.appendChild(A.el('tr', {}, A.el('td', { className: 'empty', attrs: { colspan: '5' },
          text: 'No API keys yet. Create one for each service that calls the server API.' })));
      }
      A.$('api-keys-total').textContent = String(keys.length);
    }

    function scopeList(scopes) {
      var list = A.el('span', { className: 'scope-list' });
      scopes.forEach(function (scope) {
        list.appendChild(A.el('span', { className: 'scope', text: scope }));
      });
      return list;
    }

    /** Returns one key's revoke button: the first click arms it, a second within 4 s revokes. */
    function revokeButton(key) {
      var armed = null;
      var button = A.el('button', { className: 'btn btn-ghost btn-small btn-danger-ghost', type: 'button',
        text: 'Revoke', attrs: { 'aria-label': 'Revoke the key ' + key.name } });
      button.addEventListener('click', function () {
        if (!armed) {
          button.textContent = 'Confirm revoke';
          button.classList.add('btn-danger');
          armed = setTimeout(function () {
            armed = null;
            button.textContent = 'Revoke';
            button.classList.remove('btn-danger');
          }, CONFIRM_MS);
          return;
        }
        clearTimeout(armed);
        button.disabled = true;
        authed('DELETE', '/api/v1/admin/api-keys/' + key.id).then(function (res) {
          if (res.status === 200) {
            A.toast('The key ' + key.name + ' was revoked: it is refused from now on.', 'ok');
            if (A.$('api-key-new').getAttribute('data-key-id') === String(key.id)) hideNewKey();
          } else {
            A.toast(A.errorMessage(res), 'error');
          }
          load();
        });
      });
      return button;
    }

    function checkedScopes() {
      return Array.prototype.slice.call(form.querySelectorAll('input[name="scope"]:checked'))
        .map(function (box) { return box.value; });
    }

    function submit(event) {
      event.preventDefault();
      var name = A.$('api-key-name').value.trim();
      var scopes = checkedScopes();
      errorEl.textContent = '';
      if (!name) { errorEl.textContent = 'Give the key a name (the service that will use it).'; return; }
      if (!scopes.length) { errorEl.textContent = 'Pick at least one scope.'; return; }
      var button = A.$('api-key-create');
      button.disabled = true;
      authed('POST', '/api/v1/admin/api-keys', { name: name, scopes: scopes }).then(function (res) {
        button.disabled = false;
        if (res.status !== 201 || !res.body || !res.body.success) {
          errorEl.textContent = A.errorMessage(res);
          return;
        }
        A.$('api-key-name').value = '';
        showNewKey(res.body.data);
        load();
      });
    }

    /** Shows a new key, the only time the server hands it out. */
    function showNewKey(created) {
      var box = A.$('api-key-new');
      box.setAttribute('data-key-id', String(created.id));
      A.$('api-key-new-name').textContent = created.name;
      A.$('api-key-value').value = created.key;
      A.$('api-key-copied').textContent = '';
      box.hidden = false;
      A.$('api-key-value').select();
    }

    /** Forgets the shown key: from now on it is nowhere on the page. */
    function hideNewKey() {
      var box = A.$('api-key-new');
      box.hidden = true;
      box.removeAttribute('data-key-id');
      A.$('api-key-value').value = '';
      A.$('api-key-new-name').textContent = '';
    }

    function copy() {
      var input = A.$('api-key-value');
      var said = A.$('api-key-copied');
      function copied() { said.textContent = 'Copied to the clipboard.'; }
      function fallback() {
        // navigator.clipboard exists only on secure origins (https, localhost): select and copy.
        input.select();
        var ok = false;
        try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
        if (ok) copied(); else said.textContent = 'Select the key and copy it (Ctrl+C).';
      }
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(input.value).then(copied, fallback);
      } else {
        fallback();
      }
    }

    form.addEventListener('submit', submit);
    A.$('api-key-copy').addEventListener('click', copy);
    A.$('api-key-done').addEventListener('click', hideNewKey);

    return { load: load, forget: hideNewKey };
  }

  window.ApiKeysPanel = { create: create };
})();
