/*
 * The admin dashboard's Delivery panel: publish-to-write latency percentiles, messages per
 * second, slow-consumer drops and close codes over the chart's window. Fed by the `delivery`
 * object of /ws/stats, the same numbers /metrics exposes (docs/operations.md).
 */
(function () {
  'use strict';

  var A = window.App;

  /** Formats milliseconds: three significant digits, "–" when missing. */
  function ms(v) {
    if (typeof v !== 'number') return '–';
    if (v >= 100) return Math.round(v) + ' ms';
    if (v >= 1) return (Math.round(v * 10) / 10) + ' ms';
    return (Math.round(v * 1000) / 1000) + ' ms';
  }

  /** Returns the sample at the start of the window (the oldest one not older than it). */
  function first(samples, windowMs) {
    var horizon = Date.now() - windowMs;
    for (var i = 0; i < samples.length; i += 1) {
      if (samples[i].t >= horizon) return samples[i];
    }
    return samples[samples.length - 1];
  }

  /** Returns {code: closes} that happened between two samples, busiest first. */
  function closesBetween(a, b) {
    var out = [];
    Object.keys(b.closes || {}).forEach(function (code) {
      var n = b.closes[code] - ((a.closes || {})[code] || 0);
      if (n > 0) out.push({ code: code, n: n });
    });
    return out.sort(function (x, y) { return y.n - x.n; });
  }

  /** Shows one /ws/stats reply's delivery numbers; samples give rates and window deltas. */
  function render(stats, samples, windowMs, pollMs) {
    var d = stats.delivery || { latency_ms: {}, closes: {} };
    var lat = d.latency_ms || {};
    A.$('lat-p50').textContent = ms(lat.p50);
    A.$('lat-p95').textContent = ms(lat.p95);
    A.$('lat-p99').textContent = ms(lat.p99);
    A.$('lat-publishes').textContent = (d.publishes || 0).toLocaleString() + ' publishes in the last ' +
      Math.round((d.window_seconds || 300) / 60) + ' min';
    var rates = window.ActivityChart.rates(samples);
    var rate = rates.length ? rates[rates.length - 1].v : 0;
    A.$('delivery-msgs').textContent = (Math.round(rate * 10) / 10).toLocaleString();
    var last = samples[samples.length - 1];
    var start = first(samples, windowMs);
    A.$('delivery-drops').textContent = String(last && start ? last.dropped - start.dropped : 0);
    var list = A.$('delivery-closes');
    A.clear(list);
    var closes = last && start ? closesBetween(start, last) : [];
    if (!closes.length) {
      list.appendChild(A.el('li', { className: 'empty', text: 'No connections closed' }));
    }
    closes.forEach(function (c) {
      list.appendChild(A.el('li', { className: 'close-item', attrs: { 'data-code': c.code } },
        A.el('span', { className: 'close-code', text: c.code }),
        A.el('span', { className: 'close-count', text: c.n.toLocaleString() })));
    });
    var points = samples.map(function (s) { return { t: s.t, clients: s.p99, delivered: s.delivered }; });
    window.ActivityChart.render(A.$('delivery-chart'), A.$('delivery-window'), points, windowMs, pollMs);
  }

  window.DeliveryPanel = { render: render };
})();
