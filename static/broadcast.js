/* The admin dashboard's broadcast form: sends a system alert to every connected client. */
(function () {
  'use strict';

  var A = window.App;

  /** Sends the form's alert with authed and reports how many clients it reached. */
  function send(event, authed) {
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

  window.BroadcastForm = { send: send };
})();
