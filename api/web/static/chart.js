// Charts of the course and thresholds pages: each <div data-chart="ID"> gets a uPlot chart of
// the JSON in <script type="application/json" id="ID"> (built by api/web/charts.py).
// Behind the line: the yellow and red zones of each period of thresholds (for a blood pressure,
// where two quantities share the chart, each one's limits as lines); on it: the readings behind
// alerts, a triangle for red and a circle for yellow (shape as well as colour). The table view
// under each chart holds the same readings for those who cannot see the chart. A series with
// `notes` (the NEWS2 scores' parts) shows the note of the point under the cursor in the legend.
(function () {
  "use strict";

  var ZONE = { yellow: "rgba(240, 180, 0, 0.20)", red: "rgba(179, 38, 30, 0.16)" };
  var EDGE = { yellow: "#9a6700", red: "#b3261e", compare: "#4b5563" };
  var SPREAD = ["rgba(11, 92, 173, 0.22)", "rgba(106, 44, 145, 0.22)"];
  var NB_NAMES = {
    MMMM: ["januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september", "oktober",
      "november", "desember"],
    MMM: ["jan", "feb", "mar", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "des"],
    WWWW: ["søndag", "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag"],
    WWW: ["søn", "man", "tir", "ons", "tor", "fre", "lør"],
  };
  var HEIGHT = 260;
  var DAY = 86400, HOUR = 3600, MINUTE = 60;
  // uPlot's time axis templates, as dates are written here: 2.11. / 2 Nov, 24-hour clock.
  var X_NB = [
    [DAY * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [DAY * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [DAY, "{D}.{M}.", "\n{YYYY}", null, null, null, null, null, 1],
    [HOUR, "{HH}:{mm}", "\n{D}.{M}.{YYYY}", null, "\n{D}.{M}.", null, null, null, 1],
    [MINUTE, "{HH}:{mm}", "\n{D}.{M}.{YYYY}", null, "\n{D}.{M}.", null, null, null, 1],
  ];
  var X_EN = [
    [DAY * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [DAY * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [DAY, "{D} {MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [HOUR, "{HH}:{mm}", "\n{D} {MMM} {YYYY}", null, "\n{D} {MMM}", null, null, null, 1],
    [MINUTE, "{HH}:{mm}", "\n{D} {MMM} {YYYY}", null, "\n{D} {MMM}", null, null, null, 1],
  ];

  function language() {
    return document.documentElement.lang === "en" ? "en" : "nb";
  }

  function finite(v) {
    return v !== null && v !== undefined && isFinite(v);
  }

  function number(v) {
    if (!finite(v)) return "–";
    return v.toLocaleString(language() === "nb" ? "nb-NO" : "en-GB", { maximumFractionDigits: 1 });
  }

  var formats = {};
  function when(ts, withTime) {
    if (!finite(ts)) return "–";
    var key = language() + withTime;
    if (!formats[key]) {
      var parts = { timeZone: "Europe/Oslo", day: "2-digit", month: "2-digit", year: "numeric" };
      if (withTime) { parts.hour = "2-digit"; parts.minute = "2-digit"; parts.hourCycle = "h23"; }
      formats[key] = new Intl.DateTimeFormat(language() === "nb" ? "nb-NO" : "en-GB", parts);
    }
    return formats[key].format(new Date(ts * 1e3));
  }

  // The y range: the readings, and the limits near them, so the zones show behind the line.
  function yRange(data) {
    var lo = Infinity, hi = -Infinity;
    function take(values) {
      (values || []).forEach(function (v) {
        if (finite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      });
    }
    data.series.forEach(function (s) { take(s.y); take(s.min); take(s.max); });
    data.marks.forEach(function (m) { take([m.y]); });
    if (!isFinite(lo)) return [0, 1];
    var near = Math.max(hi - lo, Math.abs(hi) * 0.1, 1);
    var low = lo, high = hi;
    data.series.forEach(function (s) {
      (s.bands || []).concat(s.compare || []).forEach(function (p) {
        [p.yellow, p.red].forEach(function (band) {
          if (finite(band.low) && band.low < lo && lo - band.low <= near) low = Math.min(low, band.low);
          if (finite(band.high) && band.high > hi && band.high - hi <= near) high = Math.max(high, band.high);
          if (finite(band.low) && band.low >= lo && band.low <= hi) low = Math.min(low, band.low);
          if (finite(band.high) && band.high >= lo && band.high <= hi) high = Math.max(high, band.high);
        });
      });
    });
    var pad = Math.max((high - low) * 0.08, 0.5);
    return [low - pad, high + pad];
  }

  function span(u, period) {
    var x0 = Math.max(period.from, u.scales.x.min), x1 = Math.min(period.to, u.scales.x.max);
    if (x1 <= x0) return null;
    return [u.valToPos(x0, "x", true), u.valToPos(x1, "x", true)];
  }

  function yPos(u, value, fallback) {
    return finite(value) ? u.valToPos(value, "y", true) : fallback;
  }

  function fillBetween(ctx, box, xs, yA, yB, colour) {
    var top = Math.max(box.top, Math.min(yA, yB)), bottom = Math.min(box.top + box.height, Math.max(yA, yB));
    if (bottom <= top) return;
    ctx.fillStyle = colour;
    ctx.fillRect(xs[0], top, xs[1] - xs[0], bottom - top);
  }

  function line(ctx, box, xs, value, u, colour, dash, width) {
    if (!finite(value)) return;
    var y = u.valToPos(value, "y", true);
    if (y < box.top || y > box.top + box.height) return;
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = width * devicePixelRatio;
    ctx.setLineDash(dash.map(function (d) { return d * devicePixelRatio; }));
    ctx.beginPath();
    ctx.moveTo(xs[0], y);
    ctx.lineTo(xs[1], y);
    ctx.stroke();
    ctx.restore();
  }

  // A limit's value at the right end of its line: above a high limit, below a low one (so a
  // systolic low and a diastolic high near each other do not overlap).
  function label(ctx, box, xs, value, u, text, colour, below) {
    if (!finite(value) || !text || xs[1] - xs[0] < 70 * devicePixelRatio) return;
    var y = u.valToPos(value, "y", true);
    if (y < box.top + 8 || y > box.top + box.height - 2) return;
    ctx.save();
    ctx.font = 11 * devicePixelRatio + "px system-ui, sans-serif";
    ctx.fillStyle = colour;
    ctx.textAlign = "right";
    ctx.fillText(text, xs[1] - 4 * devicePixelRatio, below ? y + 12 * devicePixelRatio : y - 3 * devicePixelRatio);
    ctx.restore();
  }

  // Zones for one quantity: yellow between its yellow and red limits, red beyond the red one.
  function drawZones(u, box, bands) {
    var ctx = u.ctx, top = box.top, bottom = box.top + box.height;
    bands.forEach(function (p) {
      var xs = span(u, p);
      if (!xs) return;
      var y = p.yellow, r = p.red;
      if (finite(y.high)) fillBetween(ctx, box, xs, yPos(u, y.high), yPos(u, r.high, top), ZONE.yellow);
      if (finite(r.high)) fillBetween(ctx, box, xs, yPos(u, r.high), top, ZONE.red);
      if (finite(y.low)) fillBetween(ctx, box, xs, yPos(u, y.low), yPos(u, r.low, bottom), ZONE.yellow);
      if (finite(r.low)) fillBetween(ctx, box, xs, yPos(u, r.low), bottom, ZONE.red);
      [y.low, y.high].forEach(function (v) { line(ctx, box, xs, v, u, EDGE.yellow, [6, 4], 1); });
      [r.low, r.high].forEach(function (v) { line(ctx, box, xs, v, u, EDGE.red, [], 1); });
    });
  }

  // Limits as lines, each named by its quantity (two quantities' zones would overlap); a value
  // is named where its line ends, not where the next period goes on with the same one.
  function drawEdges(u, box, bands, short) {
    var ctx = u.ctx;
    bands.forEach(function (p, n) {
      var xs = span(u, p);
      if (!xs) return;
      var next = bands[n + 1];
      [["yellow", "low"], ["yellow", "high"], ["red", "low"], ["red", "high"]].forEach(function (edge) {
        var v = p[edge[0]][edge[1]];
        var colour = EDGE[edge[0]];
        line(ctx, box, xs, v, u, colour, edge[0] === "yellow" ? [6, 4] : [], 1.5);
        var goesOn = next && span(u, next) && next[edge[0]][edge[1]] === v;
        if (!goesOn) label(ctx, box, xs, v, u, short + " " + number(v), colour, edge[1] === "low");
      });
    });
  }

  function drawCompare(u, box, bands) {
    bands.forEach(function (p) {
      var xs = span(u, p);
      if (!xs) return;
      [p.yellow.low, p.yellow.high, p.red.low, p.red.high].forEach(function (v) {
        line(u.ctx, box, xs, v, u, EDGE.compare, [2, 3], 1.5);
      });
    });
  }

  // A day's lowest to highest value as a band around its mean, broken where days have none.
  function drawSpread(u, xs, s, colour) {
    var ctx = u.ctx, run = [];
    function flush() {
      if (run.length) {
        ctx.beginPath();
        run.forEach(function (i, n) {
          var x = u.valToPos(xs[i], "x", true), y = u.valToPos(s.max[i], "y", true);
          if (n === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        });
        run.slice().reverse().forEach(function (i) {
          ctx.lineTo(u.valToPos(xs[i], "x", true), u.valToPos(s.min[i], "y", true));
        });
        ctx.closePath();
        ctx.fill();
      }
      run = [];
    }
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    ctx.fillStyle = colour;
    ctx.strokeStyle = colour;
    xs.forEach(function (x, i) {
      if (finite(s.min[i]) && finite(s.max[i])) run.push(i); else flush();
    });
    flush();
    ctx.restore();
  }

  function drawMarks(u, data) {
    var ctx = u.ctx, box = u.bbox, s = devicePixelRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top, box.width, box.height);
    ctx.clip();
    data.marks.forEach(function (m) {
      var x = u.valToPos(m.x, "x", true), y = u.valToPos(m.y, "y", true);
      ctx.beginPath();
      if (m.level === "red") {
        ctx.moveTo(x, y - 8 * s);
        ctx.lineTo(x + 7 * s, y + 5 * s);
        ctx.lineTo(x - 7 * s, y + 5 * s);
        ctx.closePath();
        ctx.fillStyle = "#b3261e";
        ctx.strokeStyle = "#ffffff";
      } else {
        ctx.arc(x, y, 5.5 * s, 0, 2 * Math.PI);
        ctx.fillStyle = "#f0b400";
        ctx.strokeStyle = "#4a3000";
      }
      ctx.lineWidth = 1.5 * s;
      ctx.fill();
      ctx.stroke();
    });
    ctx.restore();
  }

  function options(data, width) {
    var raw = data.bucket === "raw";
    var several = data.series.length > 1;
    var range = yRange(data);
    var series = [{ label: data.labels.time, value: function (u, ts) { return when(ts, raw); } }];
    data.series.forEach(function (s) {
      series.push({
        label: s.label,
        stroke: s.colour,
        width: 2,
        spanGaps: true,
        points: { show: raw, size: 5, fill: s.colour, stroke: s.colour },
        value: function (u, v, si, i) {
          var note = s.notes && finite(i) ? s.notes[i] : null;
          return note ? number(v) + " (" + note + ")" : number(v);
        },
      });
    });
    var opts = {
      width: width,
      height: HEIGHT,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Europe/Oslo"); },
      scales: {
        x: { time: true, range: function () { return [data.from, data.to]; } },
        y: { range: function () { return range; } },
      },
      axes: [
        { values: language() === "nb" ? X_NB : X_EN },
        { label: data.unit, size: 56, values: function (u, ticks) { return ticks.map(number); } },
      ],
      series: series,
      legend: { live: true },
      hooks: {
        drawClear: [function (u) {
          var box = u.bbox;
          data.series.forEach(function (s) {
            if (several) drawEdges(u, box, s.bands || [], s.short || s.label);
            else drawZones(u, box, s.bands || []);
            if (s.compare) drawCompare(u, box, s.compare);
          });
          data.series.forEach(function (s, i) {
            if (s.min) drawSpread(u, data.x, s, SPREAD[i % SPREAD.length]);
          });
        }],
        draw: [function (u) { drawMarks(u, data); }],
      },
    };
    if (language() === "nb") {
      opts.fmtDate = function (tpl) { return uPlot.fmtDate(tpl, NB_NAMES); };
    }
    return opts;
  }

  function columns(data) {
    var out = [data.x];
    data.series.forEach(function (s) { out.push(s.y); });
    return out;
  }

  function draw(el) {
    if (el.dataset.drawn || !window.uPlot) return;
    var source = document.getElementById(el.dataset.chart);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    el.dataset.drawn = "1";
    el.textContent = "";
    var plot = new uPlot(options(data, Math.max(el.clientWidth, 280)), columns(data), el);
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(function () {
        if (!document.body.contains(el)) {
          observer.disconnect();
          plot.destroy();
          return;
        }
        var width = Math.max(el.clientWidth, 280);
        if (Math.abs(width - plot.width) > 2) plot.setSize({ width: width, height: HEIGHT });
      });
      observer.observe(el);
    }
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  function announce(root) {
    var section = root && root.closest ? root.closest("[data-announce]") : null;
    var status = document.getElementById("range-status");
    if (section && status) status.textContent = section.dataset.announce;
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:load", function (event) {
    drawAll(event.detail.elt);
    if (event.detail.elt !== document.body) announce(event.detail.elt);
  });
  // htmx restores a page from its history with the charts' stale markup: draw them afresh.
  document.addEventListener("htmx:historyRestore", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      delete el.dataset.drawn;
    });
    drawAll(document);
  });
})();
