/**
 * The dev backend dashboard's page: its HTML, style sheet and browser script (plain ES2020,
 * no build step, kept here as strings so `tsx` and the compiled `dist/` serve the same
 * bytes), and the chart library, uPlot, read from its npm package (`uplot`, a runtime
 * dependency) so the page works offline: nothing comes from a CDN.
 */
import { Effect } from "effect"
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { thrownMessage } from "../Errors.js"

/** A file the dashboard serves from the `uplot` npm package. */
export interface DashboardVendorAsset {
  readonly file: string
  readonly contentType: string
}

/** The vendored files, by the name they are served under (`/dashboard/vendor/{name}`). */
export const dashboardVendorAssets: Readonly<Record<string, DashboardVendorAsset>> = {
  "uPlot.iife.min.js": { file: "uplot/dist/uPlot.iife.min.js", contentType: "text/javascript; charset=utf-8" },
  "uPlot.min.css": { file: "uplot/dist/uPlot.min.css", contentType: "text/css; charset=utf-8" }
}

const requireFromHere = createRequire(import.meta.url)

/** Reads a vendored file from `node_modules` (resolved from this module, like an import). */
export const readDashboardVendorAsset = (asset: DashboardVendorAsset): Effect.Effect<Uint8Array, Error> =>
  Effect.tryPromise({
    try: () => readFile(requireFromHere.resolve(asset.file)),
    catch: (cause) =>
      new Error(`the dashboard's chart library is missing (${asset.file}): ${thrownMessage(cause)}`)
  })

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

/** The page at the dev backend's root; `callbackUrl` is shown as the `CALLBACK_URL` to use. */
export const dashboardHtml = (callbackUrl: string): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trainer-sdk dev backend</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/vendor/uPlot.min.css">
<link rel="stylesheet" href="/dashboard/app.css">
</head>
<body>
<header>
  <h1>trainer-sdk dev backend</h1>
  <span class="callback">CALLBACK_URL=<code>${escapeHtml(callbackUrl)}</code></span>
  <span id="connection" class="connection" data-state="connecting">connecting…</span>
</header>
<nav id="jobs" aria-label="jobs"></nav>
<main id="views"><p id="empty" class="empty">No job has reported yet. Point a trainer at the CALLBACK_URL above.</p></main>
<section id="all-rejections" class="card">
  <h2>Rejected requests <span id="rejection-count" class="count">0</span></h2>
  <p class="hint">What the platform backend would refuse: each request with the fields it would complain about.</p>
  <table class="rejections"><thead><tr><th>time</th><th>status</th><th>request</th><th>job</th><th>field</th><th>problem</th></tr></thead><tbody></tbody></table>
</section>
<script src="/dashboard/vendor/uPlot.iife.min.js"></script>
<script src="/dashboard/app.js"></script>
</body>
</html>
`

/** The dashboard's style sheet. */
export const dashboardCss = `
:root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #6b7385; --line: #e2e5ea; --accent: #2f6fde;
  --ok: #1f9d55; --bad: #d64545; --warn: #c77d00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; padding: 12px 20px; background: #1d2330; color: #fff; }
header h1 { font-size: 17px; margin: 0; }
header code { color: #cfe0ff; }
.connection { margin-left: auto; font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #555; }
.connection[data-state="live"] { background: var(--ok); }
.connection[data-state="lost"] { background: var(--bad); }
nav { display: flex; gap: 6px; padding: 10px 20px 0; flex-wrap: wrap; }
nav button { border: 1px solid var(--line); background: var(--card); border-radius: 6px 6px 0 0; padding: 6px 12px; cursor: pointer; font: inherit; }
nav button[aria-selected="true"] { border-color: var(--accent); box-shadow: inset 0 -3px 0 var(--accent); font-weight: 600; }
main, #all-rejections { margin: 0 20px 16px; }
.empty { color: var(--muted); padding: 24px 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-top: 12px; }
.card h2 { font-size: 15px; margin: 0 0 8px; }
.count { font-size: 12px; background: var(--line); border-radius: 9px; padding: 0 7px; }
.hint { color: var(--muted); margin: 0 0 8px; font-size: 12px; }
.summary { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 8px 16px; align-items: center; }
.summary .label { color: var(--muted); font-size: 12px; display: block; }
.summary .value { font-size: 16px; font-weight: 600; }
.status { display: inline-block; padding: 2px 10px; border-radius: 10px; color: #fff; background: var(--muted); }
.status[data-status="running"] { background: var(--accent); }
.status[data-status="completed"] { background: var(--ok); }
.status[data-status="failed"] { background: var(--bad); }
.bar { height: 10px; border-radius: 5px; background: var(--line); overflow: hidden; margin-top: 10px; }
.bar > div { height: 100%; background: var(--accent); transition: width .3s; }
.error { margin-top: 10px; padding: 8px 12px; border-left: 4px solid var(--bad); background: #fdf0f0; white-space: pre-wrap; }
.error pre { margin: 6px 0 0; font-size: 12px; max-height: 200px; overflow: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.chart { margin-top: 0; }
.chart h3 { font-size: 13px; margin: 0 0 4px; }
.chart .best { font-size: 12px; color: var(--ok); font-weight: 600; }
.chart .plot { width: 100%; min-height: 170px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 12px; }
.heatmap td { text-align: center; min-width: 34px; font-variant-numeric: tabular-nums; border: 1px solid #fff; }
.heatmap th { text-align: center; }
.filters { display: flex; gap: 12px; margin-bottom: 6px; font-size: 13px; }
.logs-wrap { max-height: 360px; overflow: auto; }
.logs td.message { white-space: pre-wrap; word-break: break-word; }
.logs tr.checkpoint td { background: #fff6d6; }
.logs tr.checkpoint td:first-child { box-shadow: inset 4px 0 0 var(--warn); }
.logs td.time { white-space: nowrap; }
.logs tr.out-of-order td.num::after { content: " late"; color: var(--bad); font-size: 10px; font-weight: 700; }
.late-note { color: var(--bad); }
.level { font-size: 11px; font-weight: 700; }
.level-ERROR { color: var(--bad); } .level-WARNING { color: var(--warn); } .level-DEBUG { color: var(--muted); }
.rejections td.status-code { color: var(--bad); font-weight: 700; }
.rejections code, .checkpoints code { font-size: 12px; word-break: break-all; }
`

/** The browser script: subscribes to `/dashboard/stream` and renders each state it receives. */
export const dashboardScript = String.raw`"use strict";
(function () {
  var palette = ["#2f6fde", "#d64545", "#1f9d55", "#c77d00", "#8e44ad", "#16a2b8", "#e0569b", "#6b7385"];
  var levels = ["DEBUG", "INFO", "WARNING", "ERROR"];
  var shownLevels = { DEBUG: true, INFO: true, WARNING: true, ERROR: true };
  var views = new Map();
  var selected = null;
  var latest = null;
  var clockOffset = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) for (var key in attrs) {
      if (attrs[key] === undefined || attrs[key] === null) continue;
      if (key === "text") node.textContent = String(attrs[key]);
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, String(attrs[key]));
    }
    if (children) children.forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function fmt(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }
  function duration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "–";
    var s = Math.max(0, Math.round(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h > 0 ? h + "h " : "") + (h > 0 || m > 0 ? m + "m " : "") + r + "s";
  }
  function clock(at) { return new Date(at).toLocaleTimeString(); }
  function isLearningRate(name) { return name === "lr" || name === "learning_rate"; }
  function metricTitle(name) { return isLearningRate(name) ? "learning rate (" + name + ")" : name; }
  function serverNow() { return Date.now() + clockOffset; }

  function chartWidth(container) { return Math.max(260, container.clientWidth || 320); }

  // One chart: a uPlot instance fed with [epochs, values]; data-points mirrors what it plots.
  function makeChart(card, title, color, markBest) {
    var plot = card.querySelector(".plot");
    var chart = { card: card, best: null, plot: plot };
    var plugins = [];
    if (markBest) plugins.push({ hooks: { draw: function (u) {
      if (!chart.best) return;
      var x = u.valToPos(chart.best.epoch, "x", true), y = u.valToPos(chart.best.value, "y", true);
      var ctx = u.ctx, r = 7 * devicePixelRatio;
      ctx.save();
      ctx.strokeStyle = "#1f9d55"; ctx.fillStyle = "#1f9d55"; ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.setLineDash([]);
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
      ctx.font = (11 * devicePixelRatio) + "px sans-serif";
      ctx.fillText("best", x + r + 3, y - r);
      ctx.restore();
    } } });
    chart.u = new uPlot({
      width: chartWidth(plot), height: 170, plugins: plugins,
      scales: { x: { time: false } },
      axes: [{ label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, { size: 60 }],
      series: [{ label: "epoch" }, { label: title, stroke: color, width: 2, points: { show: true, size: 6, fill: color } }],
      legend: { show: false }
    }, [[], []], plot);
    return chart;
  }
  function setChart(chart, xs, ys) {
    chart.u.setData([xs, ys]);
    chart.card.setAttribute("data-points", String(chart.u.data[0].length));
    chart.card.setAttribute("data-epochs", chart.u.data[0].join(","));
  }
  function chartCard(key, title, extraClass) {
    return el("div", { className: "card chart" + (extraClass ? " " + extraClass : ""), "data-metric": key }, [
      el("h3", { text: title }), el("div", { className: "best" }), el("div", { className: "plot" })
    ]);
  }

  function section(title, className) {
    var card = el("section", { className: "card " + className }, [el("h2", { text: title })]);
    return card;
  }

  function createView(jobId) {
    var root = el("section", { className: "job", "data-job-id": jobId });
    var view = {
      root: root, charts: new Map(),
      summary: section("Job", "summary-card"),
      chartsBox: el("div", { className: "charts" }),
      validation: section("Latest validation", "validation"),
      checkpoints: section("Checkpoints", "checkpoints"),
      result: section("Result", "result"),
      logs: section("Logs", "logs-card"),
      rejections: section("Rejected requests of this job", "job-rejections")
    };
    var filters = el("div", { className: "filters" });
    levels.forEach(function (level) {
      var box = el("input", { type: "checkbox", "data-level": level });
      box.checked = shownLevels[level];
      box.addEventListener("change", function () {
        shownLevels[level] = box.checked;
        document.querySelectorAll("input[data-level='" + level + "']").forEach(function (other) { other.checked = box.checked; });
        if (latest) render(latest);
      });
      filters.appendChild(el("label", null, [box, document.createTextNode(" " + level)]));
    });
    view.logs.appendChild(filters);
    view.logsNotes = el("div", { className: "logs-notes" });
    view.logsWrap = el("div", { className: "logs-wrap" });
    view.logs.appendChild(view.logsNotes);
    view.logs.appendChild(view.logsWrap);
    [view.summary, view.chartsBox, view.validation, view.checkpoints, view.result, view.logs, view.rejections]
      .forEach(function (part) { root.appendChild(part); });
    document.getElementById("views").appendChild(root);
    return view;
  }

  function body(card) {
    var existing = card.querySelector(":scope > .body");
    if (existing) { clear(existing); return existing; }
    var node = el("div", { className: "body" });
    card.appendChild(node);
    return node;
  }

  function stat(label, value, attrs) {
    var v = el("span", Object.assign({ className: "value" }, attrs || {}));
    if (value instanceof Node) v.appendChild(value); else v.textContent = value;
    return el("div", null, [el("span", { className: "label", text: label }), v]);
  }

  function renderSummary(view, job) {
    var b = body(view.summary);
    var grid = el("div", { className: "summary" });
    grid.appendChild(stat("kind", job.kind || "–", { "data-field": "kind" }));
    grid.appendChild(stat("job id", String(job.jobId), { "data-field": "job-id" }));
    grid.appendChild(stat("status", el("span", { className: "status", "data-status": job.status, text: job.status }), { "data-field": "status" }));
    var epochText = job.totalEpochs === null ? "–" : "epoch " + (job.currentEpoch === null ? 0 : job.currentEpoch) + " of " + job.totalEpochs;
    grid.appendChild(stat("epoch", epochText, { "data-field": "epoch" }));
    grid.appendChild(stat("progress", job.progressPercent === null ? "–" : fmt(job.progressPercent) + " %", { "data-field": "progress" }));
    grid.appendChild(stat("elapsed", "–", { "data-field": "elapsed" }));
    grid.appendChild(stat("ETA", "–", { "data-field": "eta" }));
    b.appendChild(grid);
    var pct = job.progressPercent === null ? (job.status === "completed" ? 100 : 0) : job.progressPercent;
    b.appendChild(el("div", { className: "bar", role: "progressbar", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100 },
      [el("div", { style: "width:" + pct + "%" })]));
    if (job.error) {
      var box = el("div", { className: "error", "data-field": "error" }, [
        el("strong", { text: job.error.type ? job.error.type + ": " : "failed: " }), document.createTextNode(job.error.message)
      ]);
      if (job.error.traceback) box.appendChild(el("pre", { text: job.error.traceback }));
      b.appendChild(box);
    }
    tick();
  }

  function renderCharts(view, job) {
    var wanted = [];
    job.metricNames.forEach(function (name, i) {
      var xs = [], ys = [];
      job.epochs.forEach(function (p) { if (typeof p.metrics[name] === "number") { xs.push(p.epoch); ys.push(p.metrics[name]); } });
      wanted.push({ key: "progress:" + name, title: metricTitle(name), color: palette[i % palette.length], xs: xs, ys: ys, best: null });
    });
    if (job.primaryMetricName !== null) {
      var xs = [], ys = [];
      job.validations.forEach(function (p) { if (p.value !== null) { xs.push(p.epoch); ys.push(p.value); } });
      wanted.push({ key: "validation:" + job.primaryMetricName, title: job.primaryMetricName + " (validation, primary)",
        color: "#1f9d55", xs: xs, ys: ys, best: job.bestEpoch, validation: true });
    }
    // Validation first, then loss, the other metrics and the learning rate.
    wanted.sort(function (a, b) { return (b.validation ? 1 : 0) - (a.validation ? 1 : 0); });
    wanted.forEach(function (w, index) {
      var chart = view.charts.get(w.key);
      if (!chart) {
        var card = chartCard(w.key, w.title, w.validation ? "primary" : "");
        view.chartsBox.appendChild(card);
        chart = makeChart(card, w.title, w.color, !!w.validation);
        view.charts.set(w.key, chart);
      }
      if (view.chartsBox.children[index] !== chart.card) view.chartsBox.insertBefore(chart.card, view.chartsBox.children[index]);
      if (w.validation) {
        chart.best = w.best;
        var label = chart.card.querySelector(".best");
        label.textContent = w.best ? "best: epoch " + w.best.epoch + " (" + fmt(w.best.value) + ")" : "";
        if (w.best) chart.card.setAttribute("data-best-epoch", String(w.best.epoch)); else chart.card.removeAttribute("data-best-epoch");
      }
      setChart(chart, w.xs, w.ys);
    });
  }

  function kvTable(record) {
    var t = el("table", { className: "kv" }), tb = el("tbody");
    Object.keys(record).forEach(function (k) { tb.appendChild(el("tr", null, [el("th", { text: k }), el("td", { className: "num", text: fmt(record[k]) })])); });
    t.appendChild(tb);
    return t;
  }

  function heatmap(matrix, names) {
    var max = 0;
    matrix.forEach(function (row) { row.forEach(function (v) { if (v > max) max = v; }); });
    var t = el("table", { className: "heatmap", "data-field": "confusion-matrix" });
    var head = el("tr", null, [el("th", { text: "true ↓  predicted →" })]);
    (matrix[0] || []).forEach(function (_, j) { head.appendChild(el("th", { text: names[j] !== undefined ? names[j] : String(j) })); });
    t.appendChild(el("thead", null, [head]));
    var tb = el("tbody");
    matrix.forEach(function (row, i) {
      var tr = el("tr", null, [el("th", { text: names[i] !== undefined ? names[i] : String(i) })]);
      row.forEach(function (v) {
        var a = max === 0 ? 0 : v / max;
        tr.appendChild(el("td", { text: String(v), style: "background: rgba(47,111,222," + (0.08 + 0.92 * a).toFixed(3) + "); color:" + (a > 0.55 ? "#fff" : "#1d2330") }));
      });
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    return t;
  }

  function renderValidation(view, job) {
    var v = job.latestValidation;
    view.validation.hidden = v === null;
    if (v === null) return;
    var b = body(view.validation);
    b.appendChild(el("p", { className: "hint", text: "epoch " + v.epoch + " · " + v.taskType + " · " + v.primaryMetricName + " = " + fmt(v.primaryMetricValue) +
      (v.overallLoss === null ? "" : " · loss " + fmt(v.overallLoss)) }));
    var grid = el("div", { className: "grid2" });
    grid.appendChild(el("div", null, [el("h3", { text: "metrics" }), kvTable(v.metrics)]));
    if (v.perClassMetrics.length > 0) {
      var names = [];
      v.perClassMetrics.forEach(function (c) { Object.keys(c.metrics).forEach(function (k) { if (names.indexOf(k) < 0) names.push(k); }); });
      var t = el("table", { className: "per-class", "data-field": "per-class" });
      t.appendChild(el("thead", null, [el("tr", null, [el("th", { text: "class" })].concat(names.map(function (n) { return el("th", { text: n }); })))]));
      var tb = el("tbody");
      v.perClassMetrics.forEach(function (c) {
        tb.appendChild(el("tr", null, [el("th", { text: c.className })].concat(names.map(function (n) { return el("td", { className: "num", text: fmt(c.metrics[n]) }); }))));
      });
      t.appendChild(tb);
      grid.appendChild(el("div", null, [el("h3", { text: "per class" }), t]));
    }
    if (v.confusionMatrix !== null) grid.appendChild(el("div", null, [el("h3", { text: "confusion matrix" }), heatmap(v.confusionMatrix, v.classNames)]));
    b.appendChild(grid);
  }

  function metricsText(metrics) {
    return Object.keys(metrics).map(function (k) { return k + "=" + fmt(metrics[k]); }).join("  ");
  }

  function renderCheckpoints(view, job) {
    view.checkpoints.hidden = job.checkpoints.length === 0;
    var b = body(view.checkpoints);
    var t = el("table", { className: "checkpoint-list" });
    t.appendChild(el("thead", null, [el("tr", null, ["time", "type", "URI", "metrics", "from"].map(function (h) { return el("th", { text: h }); }))]));
    var tb = el("tbody");
    job.checkpoints.forEach(function (c) {
      tb.appendChild(el("tr", { "data-type": c.type }, [el("td", { text: clock(c.at) }), el("td", { text: c.type }),
        el("td", null, [el("code", { text: c.uri })]), el("td", { text: metricsText(c.metrics) }), el("td", { text: c.source })]));
    });
    t.appendChild(tb);
    b.appendChild(t);
  }

  function renderResult(view, job) {
    view.result.hidden = job.result.length === 0;
    var b = body(view.result);
    var t = el("table", { className: "kv" }), tb = el("tbody");
    job.result.forEach(function (r) { tb.appendChild(el("tr", null, [el("th", { text: r.label }), el("td", { text: r.value })])); });
    t.appendChild(tb);
    b.appendChild(t);
  }

  function renderLogs(view, job) {
    var wrap = view.logsWrap;
    var atBottom = wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 4;
    clear(wrap);
    clear(view.logsNotes);
    if (job.logsDropped > 0) view.logsNotes.appendChild(el("p", { className: "hint", text: job.logsDropped + " older rows not shown (the platform keeps about 2,000 per job)" }));
    var late = job.logs.filter(function (log) { return log.outOfOrder; }).length;
    if (late > 0) view.logsNotes.appendChild(el("p", { className: "hint late-note", "data-field": "late-logs",
      text: late + (late === 1 ? " row" : " rows") + " arrived after a row logged later (marked late): the platform shows rows in arrival order" }));
    var t = el("table", { className: "logs" });
    t.appendChild(el("thead", null, [el("tr", null, ["#", "time", "level", "type", "message"].map(function (h) { return el("th", { text: h }); }))]));
    var tb = el("tbody");
    job.logs.forEach(function (log) {
      if (!shownLevels[log.level]) return;
      var data = Object.keys(log.data).length > 0 ? "  " + JSON.stringify(log.data) : "";
      var classes = (log.checkpoint ? "checkpoint" : "") + (log.outOfOrder ? " out-of-order" : "");
      tb.appendChild(el("tr", { className: classes, "data-sequence": log.sequence, "data-level": log.level }, [
        el("td", { className: "num", text: log.sequence }), el("td", { className: "time", text: clock(log.at), title: "received " + new Date(log.at).toISOString() + ", logged " + log.timestamp }),
        el("td", { className: "level level-" + log.level, text: log.level }), el("td", { text: log.eventType }),
        el("td", { className: "message", text: log.message + data })
      ]));
    });
    t.appendChild(tb);
    wrap.appendChild(t);
    view.logs.querySelector("h2").textContent = "Logs (" + job.logs.length + ")";
    if (atBottom) wrap.scrollTop = wrap.scrollHeight;
  }

  function rejectionRows(tbody, rejections, withJob) {
    clear(tbody);
    rejections.forEach(function (r) {
      var issues = r.issues.length > 0 ? r.issues : [{ field: "", problem: r.status === 404 ? "no such endpoint" : "" }];
      issues.forEach(function (issue, i) {
        var cells = [el("td", { text: i === 0 ? clock(r.at) : "" }), el("td", { className: "status-code", text: i === 0 ? r.status : "" }),
          el("td", null, i === 0 ? [el("code", { text: r.method + " " + r.path })] : [])];
        if (withJob) cells.push(el("td", { text: i === 0 && r.jobId !== null ? r.jobId : "" }));
        cells.push(el("td", { className: "field" }, [el("code", { text: issue.field === "" ? "(body)" : issue.field })]));
        cells.push(el("td", { text: issue.problem }));
        tbody.appendChild(el("tr", { "data-status": r.status, "data-field": issue.field }, cells));
      });
    });
  }

  function renderJobRejections(view, job) {
    view.rejections.hidden = job.rejections.length === 0;
    var b = body(view.rejections);
    var t = el("table", { className: "rejections" });
    t.appendChild(el("thead", null, [el("tr", null, ["time", "status", "request", "field", "problem"].map(function (h) { return el("th", { text: h }); }))]));
    var tb = el("tbody");
    rejectionRows(tb, job.rejections, false);
    t.appendChild(tb);
    b.appendChild(t);
  }

  function renderNav(state) {
    var nav = document.getElementById("jobs");
    clear(nav);
    state.jobs.forEach(function (job) {
      var button = el("button", { type: "button", role: "tab", "data-job-id": job.jobId, "aria-selected": job.jobId === selected ? "true" : "false" }, [
        document.createTextNode("job " + job.jobId + " · " + (job.kind || "?") + " · "),
        el("span", { className: "status", "data-status": job.status, text: job.status })
      ]);
      button.addEventListener("click", function () { selected = job.jobId; render(latest); });
      nav.appendChild(button);
    });
  }

  function tick() {
    if (!latest) return;
    var now = serverNow();
    latest.jobs.forEach(function (job) {
      var view = views.get(job.jobId);
      if (!view) return;
      var elapsed = view.summary.querySelector("[data-field='elapsed']");
      var eta = view.summary.querySelector("[data-field='eta']");
      if (elapsed) elapsed.textContent = duration((job.endedAt !== null ? job.endedAt : now) - job.startedAt);
      if (eta) eta.textContent = job.etaAt === null ? (job.status === "completed" ? "done" : "–") : duration(job.etaAt - now);
    });
  }

  function render(state) {
    latest = state;
    if (selected === null || !state.jobs.some(function (j) { return j.jobId === selected; })) selected = state.jobs.length > 0 ? state.jobs[0].jobId : null;
    document.getElementById("empty").hidden = state.jobs.length > 0;
    renderNav(state);
    state.jobs.forEach(function (job) {
      var view = views.get(job.jobId);
      if (!view) { view = createView(job.jobId); views.set(job.jobId, view); }
      view.root.hidden = job.jobId !== selected;
      view.root.setAttribute("data-status", job.status);
      renderSummary(view, job);
      if (!view.root.hidden) renderCharts(view, job); else view.stale = true;
      renderValidation(view, job);
      renderCheckpoints(view, job);
      renderResult(view, job);
      renderLogs(view, job);
      renderJobRejections(view, job);
    });
    document.getElementById("rejection-count").textContent = String(state.rejections.length);
    rejectionRows(document.querySelector("#all-rejections tbody"), state.rejections, true);
    document.body.setAttribute("data-accepted", String(state.accepted));
    tick();
  }

  function connect() {
    var indicator = document.getElementById("connection");
    var source = new EventSource("/dashboard/stream");
    source.addEventListener("state", function (event) {
      var state = JSON.parse(event.data);
      clockOffset = state.now - Date.now();
      indicator.dataset.state = "live"; indicator.textContent = "live";
      render(state);
    });
    source.onerror = function () { indicator.dataset.state = "lost"; indicator.textContent = "disconnected, retrying…"; };
  }

  window.addEventListener("resize", function () {
    views.forEach(function (view) { view.charts.forEach(function (chart) { chart.u.setSize({ width: chartWidth(chart.plot), height: 170 }); }); });
  });
  setInterval(tick, 1000);
  connect();
})();
`
