/*
 * The dashboard's activity chart: connected clients as a line and delivered messages per
 * second as bars, drawn as SVG from the admin poll's samples ({ t, clients, delivered }).
 */
(function () {
  'use strict';

  var A = window.App;
  var SVG = 'http://www.w3.org/2000/svg';

  /** Returns delivered messages per second between consecutive samples. */
  function rates(samples) {
    var out = [];
    for (var i = 1; i < samples.length; i += 1) {
      var dt = (samples[i].t - samples[i - 1].t) / 1000;
      var dm = samples[i].delivered - samples[i - 1].delivered;
      out.push({ t: samples[i].t, v: dt > 0 && dm >= 0 ? dm / dt : 0 });
    }
    return out;
  }

  /** Creates an SVG element with the given attributes. */
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  /** Returns a round axis maximum of at least value and minimum (1, 2, 4, 6, 8 or 10 x 10^n). */
  function niceMax(value, minimum) {
    var v = Math.max(value, minimum);
    var steps = [1, 2, 4, 6, 8, 10];
    var mag = Math.pow(10, Math.floor(Math.log10(v)));
    for (var i = 0; i < steps.length; i += 1) {
      if (steps[i] * mag >= v) return steps[i] * mag;
    }
    return 10 * mag;
  }

  /** Formats an axis value: one decimal, thousands as k. */
  function axisLabel(v) {
    if (v >= 1000) return Math.round(v / 100) / 10 + 'k';
    return String(Math.round(v * 10) / 10);
  }

  /** Formats a time back from now: -30s, -2 min, -1m 30s. */
  function spanLabel(ms) {
    var secs = Math.round(ms / 1000);
    if (secs < 60) return '−' + secs + 's';
    var m = Math.floor(secs / 60);
    var rest = secs % 60;
    return '−' + m + (rest ? 'm ' + rest + 's' : ' min');
  }

  /** Draws the connections line and delivery-rate bars of samples into box; labels the window. */
  function render(box, windowLabel, samples, windowMs, pollMs) {
    var width = Math.max(320, box.clientWidth || 600);
    var height = 230;
    var pad = { l: 40, r: 44, t: 14, b: 26 };
    var w = width - pad.l - pad.r;
    var h = height - pad.t - pad.b;
    var now = Date.now();
    // The window grows with the data: at least one minute, at most windowMs.
    var span = samples.length ? Math.min(windowMs, Math.max(60000, now - samples[0].t)) : 60000;
    span = Math.ceil(span / 15000) * 15000;
    var x0 = now - span;
    var rate = rates(samples);
    var maxC = niceMax(Math.max.apply(null, samples.map(function (s) { return s.clients; }).concat([0])), 4);
    var maxR = niceMax(Math.max.apply(null, rate.map(function (s) { return s.v; }).concat([0])), 4);
    function x(t) { return pad.l + w * Math.max(0, (t - x0)) / span; }
    function yC(v) { return pad.t + h - h * v / maxC; }
    function yR(v) { return pad.t + h - h * v / maxR; }
    windowLabel.textContent = span >= 120000 ? 'last ' + Math.round(span / 60000) + ' minutes'
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
      var pts = samples.filter(function (s) { return s.t >= x0 - pollMs; });
      var line = pts.map(function (s, k) {
        return (k ? 'L' : 'M') + x(s.t).toFixed(1) + ',' + yC(s.clients).toFixed(1);
      }).join(' ');
      var area = line + ' L' + x(pts[pts.length - 1].t).toFixed(1) + ',' + (pad.t + h) +
        ' L' + x(pts[0].t).toFixed(1) + ',' + (pad.t + h) + ' Z';
      root.appendChild(svg('path', { d: area, 'class': 'area-conn' }));
      root.appendChild(svg('path', { d: line, 'class': 'line-conn' }));
      // Delivered messages per second as bars, one per poll interval, behind the line.
      var barW = Math.max(2, w * pollMs / span - 2);
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

  window.ActivityChart = { rates: rates, render: render };
})();
