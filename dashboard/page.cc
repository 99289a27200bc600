#include "dashboard/page.h"

namespace fanout {
namespace {

constexpr std::string_view kPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fanout</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 8px; }
h2 { font-size: 15px; margin: 16px 0 6px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; }
.bar { height: 14px; background: #eee; border-radius: 7px; overflow: hidden; margin: 6px 0; }
.bar > div { height: 100%; background: #2a7; width: 0; }
.nums span { margin-right: 18px; }
.state { font-weight: 600; padding: 1px 8px; border-radius: 8px; background: #eee; }
.state.running { background: #cfe8ff; } .state.succeeded { background: #c8f0d0; }
.state.failed, .state.interrupted { background: #f8c8c8; } .state.partial { background: #f8e8b0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.lost td { color: #b00; } tr.left td { color: #888; }
canvas { width: 100%; background: #fff; border: 1px solid #ddd; border-radius: 6px; }
.legend span { margin-right: 14px; } .ok { color: #2a7; } .bad { color: #d22; } .run { color: #8ac; }
#error { color: #d22; }
</style>
</head>
<body>
<h1>fanout <span id="job-task"></span> <span id="job-state" class="state">connecting</span></h1>
<div class="card">
  <div class="bar"><div id="job-bar"></div></div>
  <div class="nums">
    <span>chunks <b id="job-done">0</b> / <b id="job-total">0</b></span>
    <span>progress <b id="job-progress">0%</b></span>
    <span>in flight <b id="job-running">0</b></span>
    <span>failed attempts <b id="job-failed">0</b></span>
    <span>in <b id="job-in">0 B</b></span>
    <span>out <b id="job-out">0 B</b></span>
    <span>elapsed <b id="job-elapsed">0s</b></span>
    <span>ETA <b id="job-eta">-</b></span>
    <span>mode <b id="job-mode"></b></span>
  </div>
  <div id="error"></div>
</div>
<h2>Workers</h2>
<div class="card">
<table>
<thead><tr><th>worker</th><th>host</th><th>state</th><th class="num">slots busy</th>
<th class="num">chunks</th><th class="num">failures</th><th class="num">last heard</th></tr></thead>
<tbody id="workers"></tbody>
</table>
</div>
<h2>Task stream <span class="legend"><span class="ok">&#9632; ok</span><span class="bad">&#9632; failed</span><span class="run">&#9632; in flight</span></span></h2>
<canvas id="stream" width="1100" height="160"></canvas>
<h2>Throughput (chunks/s)</h2>
<canvas id="throughput" width="1100" height="120"></canvas>
<p><small>polls: <span id="polls">0</span> &middot; <a id="metrics" href="metrics">/metrics</a></small></p>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const q = token ? "token=" + encodeURIComponent(token) : "";
const url = (path, extra) => {
  const parts = [extra, q].filter(Boolean).join("&");
  return path + (parts ? "?" + parts : "");
};
document.getElementById("metrics").href = url("metrics");
const $ = (id) => document.getElementById(id);
let lastSeq = 0, polls = 0, events = [], running = [], workers = [], job = null, now = 0;
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function secs(s) {
  if (s === null || s === undefined) return "-";
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60);
  return m < 60 ? m + "m" + Math.round(s % 60) + "s" : Math.floor(m / 60) + "h" + (m % 60) + "m";
}
function text(id, value) { $(id).textContent = value; }
function showJob(j) {
  job = j;
  text("job-task", j.task);
  const st = $("job-state");
  st.textContent = j.state;
  st.className = "state " + j.state;
  text("job-done", j.chunks_done);
  text("job-total", j.chunks_total);
  text("job-progress", (100 * j.progress).toFixed(1) + "%");
  $("job-bar").style.width = (100 * j.progress) + "%";
  text("job-running", j.chunks_running);
  text("job-failed", j.attempts_failed);
  text("job-in", bytes(j.bytes_in));
  text("job-out", bytes(j.bytes_out));
  text("job-elapsed", secs(j.elapsed_seconds));
  text("job-eta", j.state === "running" ? secs(j.eta_seconds) : "-");
  text("job-mode", j.mode);
}
function showWorkers(w) {
  workers = w.workers;
  const body = $("workers");
  body.textContent = "";
  for (const r of workers) {
    const tr = document.createElement("tr");
    tr.className = "worker " + r.state;
    const cells = [r.name, r.host, r.state, r.slots_busy + " / " + r.slots, r.chunks, r.failures,
                   r.last_seen_seconds_ago === null ? "-" : secs(r.last_seen_seconds_ago) + " ago"];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      if (i >= 3) td.className = "num";
      td.textContent = c;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
}
function drawStream() {
  const c = $("stream"), g = c.getContext("2d");
  const lanes = [];
  for (const w of workers) for (let s = 0; s < Math.max(1, w.slots); s++) lanes.push([w.index, s, w.name]);
  const rowH = Math.max(6, Math.min(24, Math.floor(140 / Math.max(1, lanes.length))));
  c.height = Math.max(60, lanes.length * rowH + 20);
  g.clearRect(0, 0, c.width, c.height);
  const left = 110, span = Math.min(60, Math.max(10, Math.ceil(now))), t1 = Math.max(now, 1), t0 = t1 - span;
  const x = (t) => left + (c.width - left - 4) * (Math.max(t, t0) - t0) / span;
  g.font = "11px sans-serif";
  lanes.forEach(([wi, s, name], i) => {
    g.fillStyle = "#555";
    if (s === 0) g.fillText(name, 4, i * rowH + rowH - 2);
    g.fillStyle = i % 2 ? "#f6f6f6" : "#fff";
    g.fillRect(left, i * rowH, c.width - left, rowH);
  });
  for (const e of events) {
    if (e.end < t0) continue;
    const i = lanes.findIndex(([wi, s]) => wi === e.worker && s === e.slot);
    if (i < 0) continue;
    g.fillStyle = e.ok ? "#2a7" : "#d22";
    g.fillRect(x(e.start), i * rowH + 1, Math.max(1, x(e.end) - x(e.start) - 1), rowH - 2);
  }
  // In flight: one bar per slot from its dispatch to now (queued ones beyond the slots
  // are not drawn).
  const used = {};
  for (const r of running) {
    const n = used[r.worker] = (used[r.worker] || 0) + 1;
    const i = lanes.findIndex(([wi, s]) => wi === r.worker && s === n - 1);
    if (i < 0) continue;
    g.fillStyle = "#8ac";
    g.fillRect(x(r.since), i * rowH + 1, Math.max(1, x(t1) - x(r.since)), rowH - 2);
  }
  g.fillStyle = "#888";
  g.fillText("-" + span + "s", left, c.height - 4);
  g.fillText("now", c.width - 30, c.height - 4);
}
function drawThroughput() {
  const c = $("throughput"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const h = (job && job.history) || [];
  const rates = [];
  for (let i = 1; i < h.length; i++) {
    const dt = h[i][0] - h[i - 1][0];
    if (dt > 0) rates.push([h[i][0], (h[i][1] - h[i - 1][1]) / dt]);
  }
  if (!rates.length) return;
  const max = Math.max(...rates.map((r) => r[1]), 1e-9);
  const t0 = rates[0][0], t1 = Math.max(rates[rates.length - 1][0], t0 + 1);
  g.strokeStyle = "#27c";
  g.lineWidth = 2;
  g.beginPath();
  rates.forEach(([t, r], i) => {
    const px = 40 + (c.width - 44) * (t - t0) / (t1 - t0), py = c.height - 6 - (c.height - 20) * r / max;
    i ? g.lineTo(px, py) : g.moveTo(px, py);
  });
  g.stroke();
  g.fillStyle = "#555";
  g.font = "11px sans-serif";
  g.fillText(max.toFixed(max < 10 ? 2 : 0) + "/s", 2, 14);
}
async function poll() {
  try {
    const [j, w, t] = await Promise.all([
      fetch(url("api/job")), fetch(url("api/workers")), fetch(url("api/tasks", "since=" + lastSeq))]);
    if (!j.ok || !w.ok || !t.ok) throw new Error("HTTP " + [j.status, w.status, t.status].join(" "));
    showJob(await j.json());
    showWorkers(await w.json());
    const tasks = await t.json();
    now = tasks.now;
    events = events.concat(tasks.events).slice(-2000);
    running = tasks.running;
    lastSeq = tasks.last_seq;
    drawStream();
    drawThroughput();
    text("polls", ++polls);
    text("error", "");
  } catch (err) {
    text("error", "dashboard unreachable: " + err.message + " (the job may have ended)");
  }
  setTimeout(poll, 500);
}
poll();
</script>
</body>
</html>
)PAGE";

}  // namespace

std::string_view DashboardPage() { return kPage; }

}  // namespace fanout
