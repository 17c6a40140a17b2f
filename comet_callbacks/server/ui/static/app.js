/* comet-callbacks web UI: charts (uPlot), tabs, table sorting and filters, live refresh.
   Served by the package; talks only to this server's /ui-api/. */
(function () {
  "use strict";
  var PALETTE = ["#3b6fd8", "#e8793a", "#2e9e6a", "#d94f70", "#8a63d2", "#c79a1c",
                 "#1f9bb4", "#7d8a99", "#b5508f", "#5d9e2e"];
  var body = document.body;
  var page = body.dataset.page;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) { throw new Error(url + ": " + r.status); }
        return r.json();
      });
  }
  function fmt(v) {
    if (v == null || isNaN(v)) { return "—"; }
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) { return v.toExponential(4); }
    return String(+v.toPrecision(6));
  }

  /* ---- login link: post the token without asking (the GET itself changes nothing) ---- */
  var loginForm = $("#login-form");
  if (loginForm && loginForm.dataset.auto === "1") { loginForm.submit(); }

  /* ---- tabs ---------------------------------------------------------------------------- */
  var shown = {};
  function showTab(name) {
    $all(".tab").forEach(function (t) { t.classList.toggle("active", t.dataset.tab === name); });
    $all(".panel").forEach(function (p) { p.hidden = p.dataset.panel !== name; });
    if (!shown[name]) { shown[name] = true; initCharts($('.panel[data-panel="' + name + '"]')); }
    if (history.replaceState) { history.replaceState(null, "", "#" + name); }
  }
  $all(".tab").forEach(function (t) {
    t.addEventListener("click", function () { showTab(t.dataset.tab); });
  });

  /* ---- sortable tables ------------------------------------------------------------------ */
  $all("table.sortable").forEach(function (table) {
    $all("thead th", table).forEach(function (th, col) {
      if (th.classList.contains("sel")) { return; }
      th.classList.add("sort-head");
      th.addEventListener("click", function () {
        var dir = th.dataset.dir === "asc" ? "desc" : "asc";
        $all("thead th", table).forEach(function (o) { delete o.dataset.dir; });
        th.dataset.dir = dir;
        var rows = $all("tbody tr", table);
        rows.sort(function (a, b) {
          var ca = a.children[col], cb = b.children[col];
          var va = ca.dataset.sort != null ? ca.dataset.sort : ca.textContent.trim();
          var vb = cb.dataset.sort != null ? cb.dataset.sort : cb.textContent.trim();
          var na = parseFloat(va), nb = parseFloat(vb);
          var c = (!isNaN(na) && !isNaN(nb)) ? na - nb : va.localeCompare(vb);
          return dir === "asc" ? c : -c;
        });
        var tb = $("tbody", table);
        rows.forEach(function (r) { tb.appendChild(r); });
      });
    });
  });

  /* ---- filters --------------------------------------------------------------------------- */
  $all(".table-filter").forEach(function (input) {
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      $all("#" + input.dataset.table + " tbody tr").forEach(function (tr) {
        tr.hidden = q !== "" && tr.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });
  var outFilter = $(".output-filter");
  if (outFilter) {
    outFilter.addEventListener("input", function () {
      var q = outFilter.value.toLowerCase();
      $all("#output .line").forEach(function (l) {
        l.hidden = q !== "" && l.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }
  var onlyDiff = $("#only-diff");
  if (onlyDiff) {
    onlyDiff.addEventListener("change", function () {
      $all("#compare-params tbody tr").forEach(function (tr) {
        tr.hidden = onlyDiff.checked && !tr.classList.contains("differs");
      });
    });
  }

  /* ---- model graph: unfold or fold every level at once -------------------------------------- */
  $all("[data-graph]").forEach(function (b) {
    b.addEventListener("click", function () {
      var open = b.dataset.graph === "open";
      $all(".graph-tree details").forEach(function (d) { d.open = open; });
    });
  });

  /* ---- experiments table: filter, select, compare --------------------------------------- */
  if (page === "project") {
    var nameFilter = $("#exp-filter"), statusFilter = $("#status-filter");
    var applyFilter = function () {
      var q = nameFilter.value.toLowerCase(), st = statusFilter.value;
      $all("#experiments tbody tr").forEach(function (tr) {
        var text = (tr.dataset.name + " " + tr.dataset.tags + " " + tr.dataset.key).toLowerCase();
        tr.hidden = (q !== "" && text.indexOf(q) < 0) || (st !== "" && tr.dataset.status !== st);
      });
    };
    nameFilter.addEventListener("input", applyFilter);
    statusFilter.addEventListener("change", applyFilter);
    var btn = $("#compare-btn");
    var picked = function () { return $all(".pick").filter(function (c) { return c.checked; }); };
    var update = function () {
      var n = picked().length;
      btn.disabled = n < 1;
      btn.textContent = n ? "Compare " + n + " selected" : "Compare selected";
    };
    $all(".pick").forEach(function (c) { c.addEventListener("change", update); });
    $("#select-all").addEventListener("change", function (ev) {
      $all("#experiments tbody tr").forEach(function (tr) {
        if (!tr.hidden) { $(".pick", tr).checked = ev.target.checked; }
      });
      update();
    });
    var apply = $("#apply-columns");
    if (apply) {
      apply.addEventListener("click", function () {
        var pick = function (kind) {
          return $all('.pick-col input[data-kind="' + kind + '"]')
            .filter(function (c) { return c.checked; })
            .map(function (c) { return encodeURIComponent(c.value); }).join(",");
        };
        location.href = location.pathname + "?metrics=" + pick("metrics") + "&params=" + pick("params");
      });
    }
    btn.addEventListener("click", function () {
      var keys = picked().map(function (c) { return c.value; });
      location.href = btn.dataset.base + "?experiments=" + encodeURIComponent(keys.join(","));
    });
  }

  /* ---- charts ------------------------------------------------------------------------------ */
  function controls(scope) {
    var panel = scope.closest(".panel") || document;
    var x = $(".x-axis", panel), s = $(".smoothing", panel), l = $(".log-scale", panel);
    return { x: x ? x.value : "step", smoothing: s ? +s.value : 0, log: l ? l.checked : false };
  }
  function ema(ys, a) {
    if (!a) { return ys; }
    var out = new Array(ys.length), last = 0, w = 0;
    for (var i = 0; i < ys.length; i++) {
      if (ys[i] == null) { out[i] = null; continue; }
      last = a * last + (1 - a) * ys[i]; w = a * w + (1 - a);
      out[i] = last / w;
    }
    return out;
  }
  function seriesUrl(key, name, x, lo, hi) {
    var url = "/ui-api/series?experimentKey=" + encodeURIComponent(key) +
      "&metricName=" + encodeURIComponent(name) + "&x=" + x;
    if (lo != null) { url += "&min=" + lo + "&max=" + hi; }
    return url;
  }
  function toX(res) {
    return res.x === "time" ? res.xs.map(function (t) { return t / 1000; }) : res.xs;
  }
  function axisOpts() {
    return [{ stroke: "#6b7380", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e3e6ea" } },
            { stroke: "#6b7380", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e3e6ea" },
              size: 60, values: function (u, vals) { return vals.map(fmt); } }];
  }
  function width(fig) { return Math.max(240, fig.clientWidth - 2); }

  function MetricChart(fig, color) {
    this.fig = fig; this.color = color; this.plot = null; this.zoomed = false;
    this.key = fig.dataset.key; this.name = fig.dataset.metric;
  }
  MetricChart.prototype.load = function (lo, hi, refresh) {
    var self = this, c = controls(this.fig);
    return getJSON(seriesUrl(this.key, this.name, c.x, lo, hi)).then(function (res) {
      self.render(res, c, lo != null, refresh);
    }).catch(function (err) {
      self.fig.classList.add("failed");
      $(".plot", self.fig).textContent = "could not load: " + err.message;
    });
  };
  function meta(res, zoomed) {  // the caption's note: how many points, and the last value
    var n = res.total, text = n.toLocaleString("en-US") + (n === 1 ? " point" : " points");
    if (zoomed) { text = "zoomed: " + text + " in range"; }
    if (!res.exact) { text += " · " + res.xs.length.toLocaleString("en-US") + " drawn"; }
    else if (n && !zoomed) { text += " · last " + fmt(res.ys[res.ys.length - 1]); }
    return text;
  }
  MetricChart.prototype.render = function (res, c, partial, refresh) {
    var self = this, xs = toX(res), ys = res.ys;
    if (c.log) { ys = ys.map(function (v) { return v > 0 ? v : null; }); }
    var note = $(".fig-meta", this.fig);
    if (note) { note.textContent = meta(res, partial); }
    this.fig.dataset.points = String(res.xs.length);
    this.fig.dataset.total = String(res.total);
    this.fig.dataset.exact = res.exact ? "1" : "";
    if (!partial) { this.fullExact = res.exact; }
    var data = [xs, ys];
    var series = [{ label: res.x === "time" ? "time" : res.x },
      { label: c.smoothing ? "raw" : this.name, stroke: c.smoothing ? this.color + "55" : this.color,
        width: 1.5, spanGaps: true, value: function (u, v) { return fmt(v); } }];
    if (c.smoothing) {
      data.push(ema(ys, c.smoothing));
      series.push({ label: "smoothed", stroke: this.color, width: 2, spanGaps: true,
                    value: function (u, v) { return fmt(v); } });
    }
    if (this.plot && (partial || refresh)) {  // new points in place: no flicker, hover kept
      this.busy = true; this.plot.setData(data, !partial); this.busy = false; return;
    }
    if (this.plot) { this.plot.destroy(); }
    var plotEl = $(".plot", this.fig);
    plotEl.textContent = "";
    this.plot = new uPlot({
      width: width(this.fig), height: 220, series: series, axes: axisOpts(),
      scales: { x: { time: res.x === "time" }, y: { distr: c.log ? 3 : 1 } },
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: { setScale: [function (u, key) { if (key === "x") { self.onZoom(u); } }] }
    }, data, plotEl);
    plotEl.addEventListener("dblclick", function () {
      if (self.zoomed) { self.zoomed = false; self.plot.destroy(); self.plot = null; self.load(); }
    });
  };
  MetricChart.prototype.onZoom = function (u) {
    var self = this;
    if (this.busy || !u.data || !u.data[0].length) { return; }
    var full = u.data[0], min = u.scales.x.min, max = u.scales.x.max;
    this.zoomed = min > full[0] || max < full[full.length - 1];
    if (!this.zoomed || this.fullExact) { return; }
    clearTimeout(this.timer);
    this.timer = setTimeout(function () {
      var k = controls(self.fig).x === "time" ? 1000 : 1;
      self.load(Math.floor(min * k), Math.ceil(max * k));
    }, 150);
  };

  var charts = [];
  function initCharts(panel) {
    if (!panel) { return; }
    $all("figure.chart[data-metric]", panel).forEach(function (fig, i) {
      var chart = new MetricChart(fig, PALETTE[i % PALETTE.length]);
      charts.push(chart);
      chart.load();
    });
    $all(".smoothing", panel).forEach(function (input) {
      var out = $(".smoothing-value", input.parentNode);
      input.addEventListener("input", function () { out.textContent = +input.value ? input.value : "off"; });
    });
    $all(".x-axis, .smoothing, .log-scale", panel).forEach(function (input) {
      input.addEventListener(input.type === "range" ? "input" : "change", function () {
        charts.forEach(function (ch) {
          if (panel.contains(ch.fig)) {
            if (ch.plot) { ch.plot.destroy(); ch.plot = null; }
            ch.zoomed = false; ch.load();
          }
        });
      });
    });
  }

  if (page === "experiment") {
    var first = (location.hash || "").slice(1);
    showTab($('.tab[data-tab="' + first + '"]') ? first : "charts");
    window.addEventListener("resize", function () {
      charts.forEach(function (ch) {
        if (ch.plot && ch.fig.clientWidth) { ch.plot.setSize({ width: width(ch.fig), height: 220 }); }
      });
    });
  }

  /* ---- a running experiment follows itself ------------------------------------------------ */
  if (page === "experiment" && body.dataset.running === "1") {
    var key = body.dataset.key;
    var known = { metrics: +body.dataset.metricCount, lines: +body.dataset.outputLines };
    setInterval(function () {
      getJSON("/ui-api/live?experimentKey=" + encodeURIComponent(key)).then(function (s) {
        if (s.status !== "running" || s.metricNames !== known.metrics || s.outputLines !== known.lines) {
          location.reload();
          return;
        }
        charts.forEach(function (ch) { if (ch.plot && !ch.zoomed) { ch.load(null, null, true); } });
      }).catch(function () { /* server restarting: try again next tick */ });
    }, 3000);
  }

  /* ---- compare: one metric across experiments ---------------------------------------------- */
  if (page === "compare") {
    var fig = $("#compare-chart"), select = $("#compare-metric");
    var keys = fig.dataset.keys.split(","), labels = JSON.parse(fig.dataset.labels);
    var cmp = { plot: null, fullExact: false, zoomed: false, busy: false, timer: null };
    var fetchAll = function (c, lo, hi) {
      return Promise.all(keys.map(function (k) {
        return getJSON(seriesUrl(k, select.value, c.x, lo, hi));
      }));
    };
    var joined = function (all, c) {
      return uPlot.join(all.map(function (res) {
        var ys = c.log ? res.ys.map(function (v) { return v > 0 ? v : null; }) : res.ys;
        return [toX(res), ys];
      }));
    };
    var mark = function (all, zoomed) {  // what the chart holds, for people and tests alike
      var n = all.reduce(function (a, r) { return a + r.total; }, 0);
      $("#compare-name").textContent = select.value;
      $(".fig-meta", fig).textContent = (zoomed ? "zoomed: " : "") + all.length + " experiments · " +
        n.toLocaleString("en-US") + " points" + (all.every(function (r) { return r.exact; }) ? "" :
        " · " + all.reduce(function (a, r) { return a + r.xs.length; }, 0).toLocaleString("en-US") + " drawn");
      fig.dataset.series = String(all.length);
      fig.dataset.points = all.map(function (r) { return r.xs.length; }).join(",");
      fig.dataset.totals = all.map(function (r) { return r.total; }).join(",");
      fig.dataset.exact = all.every(function (r) { return r.exact; }) ? "1" : "";
    };
    var onZoom = function (u, scale) {  // drag-zoom: fetch the visible range in full detail
      if (scale !== "x" || cmp.busy || !u.data || !u.data[0].length) { return; }
      var full = u.data[0], min = u.scales.x.min, max = u.scales.x.max;
      cmp.zoomed = min > full[0] || max < full[full.length - 1];
      if (!cmp.zoomed || cmp.fullExact) { return; }
      clearTimeout(cmp.timer);
      cmp.timer = setTimeout(function () {
        var c = controls(fig), k = c.x === "time" ? 1000 : 1;
        fetchAll(c, Math.floor(min * k), Math.ceil(max * k)).then(function (all) {
          if (u !== cmp.plot) { return; }  // redrawn meanwhile (another metric or axis)
          mark(all, true);
          cmp.busy = true; u.setData(joined(all, c), false); cmp.busy = false;
        });
      }, 150);
    };
    var draw = function () {
      if (!select.value) { return; }
      var c = controls(fig);
      fetchAll(c).then(function (all) {
        var series = [{ label: c.x }].concat(labels.map(function (l, i) {
          return { label: l, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
                   value: function (u, v) { return fmt(v); } };
        }));
        cmp.fullExact = all.every(function (r) { return r.exact; });
        cmp.zoomed = false;
        mark(all);
        if (cmp.plot) { cmp.plot.destroy(); }
        var el = $(".plot", fig);
        el.textContent = "";
        cmp.plot = new uPlot({ width: width(fig), height: 360, series: series, axes: axisOpts(),
          scales: { x: { time: all[0] && all[0].x === "time" }, y: { distr: c.log ? 3 : 1 } },
          cursor: { drag: { x: true, y: false } },
          hooks: { setScale: [onZoom] } }, joined(all, c), el);
      }).catch(function (err) {
        fig.classList.add("failed");
        $(".plot", fig).textContent = "could not load: " + err.message;
      });
    };
    $(".plot", fig).addEventListener("dblclick", function () { if (cmp.zoomed) { draw(); } });
    select.addEventListener("change", draw);
    $all(".x-axis, .log-scale").forEach(function (i) { i.addEventListener("change", draw); });
    window.addEventListener("resize", function () {
      if (cmp.plot && fig.clientWidth) { cmp.plot.setSize({ width: width(fig), height: 360 }); }
    });
    draw();
  }
})();
