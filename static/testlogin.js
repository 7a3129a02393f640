/*
 * The /test page's "Get a token" card: logs in over REST and fills the token box (and this
 * tab's stored token) with the access token. Loaded before test.js.
 */
(function () {
  'use strict';

  var A = window.App;
  var TOKEN_KEY = 'events.test.token'; // the key test.js restores the token from

  A.$('login-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var result = A.$('login-result');
    var button = A.$('login-submit');
    button.disabled = true;
    result.className = 'hint';
    result.textContent = 'Logging in…';
    A.request('POST', '/api/v1/auth/login', {
      email: A.$('login-email').value.trim(),
      password: A.$('login-password').value
    }).then(function (res) {
      button.disabled = false;
      if (res.status !== 200 || !res.body || !res.body.success) {
        result.className = 'hint hint-error';
        result.textContent = A.errorMessage(res);
        return;
      }
      var data = res.body.data;
      A.$('login-password').value = '';
      A.$('token').value = data.access_token;
      sessionStorage.setItem(TOKEN_KEY, data.access_token);
      result.className = 'hint hint-ok';
      result.textContent = 'Token for ' + data.user.name + ' (' + data.user.role + '), valid ' +
        Math.round(data.expires_in / 60) + ' min. Press Connect.';
    });
  });
})();
