// pistatsd dashboard: live charts and current values from /ws/broadcast.
//
// Data flow: the WebSocket's "hello" carries recent history (slim snapshots,
// for the charts) and the latest full snapshot (every card filled at once),
// then every tick brings a full snapshot.  Without WebSockets (none in this
// browser, or several failed connects) the page polls /stats instead and
// keeps retrying the WebSocket with exponential backoff and jitter.
// Charts are drawn by uPlot (www/vendor/uplot, put there when the package is
// built); without it the numbers still work.
//
// For tests and the curious: window.pistatsd.stats() describes the state.
"use strict";

(() => {
  /** Seconds of history kept and drawn. */
  const WINDOW_S = 600;
  /** Hard cap on points per series, whatever the interval (600 s at 0.05 s). */
  const MAX_POINTS = 12001;
  /** Reconnect backoff: first delay and cap, in seconds (jittered by 50 %). */
  const BACKOFF_FIRST_S = 1;
  const BACKOFF_CAP_S = 30;
  /** Failed WebSocket connects in a row before polling /stats meanwhile. */
  const FAILURES_BEFORE_POLLING = 3;
  /** Polling never runs faster than this, whatever the broadcast interval. */
  const MIN_POLL_S = 0.5;
  /** A live socket silent for this many intervals (and at least 15 s) is dead. */
  const SILENT_INTERVALS = 5;
  const FETCH_TIMEOUT_MS = 5000;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- data

  /** Parallel arrays, oldest first; trimmed in place so charts keep references. */
  const series = { t: [], cpu: [], memory: [], temperature: [] };
  let interval = 1;
  let backfilled = 0;
  let livePoints = 0;
  let greetedWithLatest = false;

  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

  function capacity() {
    return Math.min(MAX_POINTS, Math.ceil(WINDOW_S / Math.max(interval, 0.05)) + 1);
  }

  /** Append one snapshot (full or slim); false if it is not newer than the last. */
  function addPoint(snap) {
    const t = num(snap && snap.timestamp);
    const ts = series.t;
    if (t === null || (ts.length && t <= ts[ts.length - 1])) return false;
    ts.push(t);
    series.cpu.push(num(snap.cpu && snap.cpu.percent));
    series.memory.push(num(snap.memory && snap.memory.percent));
    series.temperature.push(num(snap.temperature && snap.temperature.celsius));
    return true;
  }

  /** Drop points older than the window or beyond the cap. */
  function trim() {
    const ts = series.t;
    const n = ts.length;
    if (!n) return;
    const cutoff = ts[n - 1] - WINDOW_S;
    const cap = capacity();
    let drop = 0;
    while (drop < n && (ts[drop] < cutoff || n - drop > cap)) drop++;
    if (drop) for (const key in series) series[key].splice(0, drop);
  }

  function backfill(history) {
    if (!Array.isArray(history)) return;
    let added = 0;
    for (const snap of history) if (addPoint(snap)) added++;
    backfilled += added;
    trim();
    if (history.length) renderNow(history[history.length - 1]);
    scheduleDraw();
  }

  /** The hello's latest full snapshot: a chart point if it is newer, and every card now. */
  function greet(latest) {
    if (!latest || typeof latest !== "object") return;
    if (addPoint(latest)) {
      backfilled++;
      trim();
      scheduleDraw();
    }
    renderNow(latest);
    greetedWithLatest = true;
  }

  function ingest(snap) {
    if (addPoint(snap)) {
      livePoints++;
      trim();
      scheduleDraw();
    }
    renderNow(snap);
    // The trends (trends.js) continue their live tail from the same ticks.
    window.dispatchEvent(new CustomEvent("pistatsd:snapshot", { detail: snap }));
  }

  // -------------------------------------------------------------- charts

  const charts = [];
  let chartsReady = false;

  const METRICS = [
    { key: "cpu", el: "plot-cpu", label: "CPU", unit: " %", color: "--cpu", range: [0, 100] },
    { key: "memory", el: "plot-memory", label: "Memory", unit: " %", color: "--memory", range: [0, 100] },
    {
      key: "temperature", el: "plot-temperature", label: "Temperature", unit: " °C", color: "--temperature",
      range: (u, min, max) => (min === null || max === null ? [20, 80] : [Math.floor(min - 3), Math.ceil(max + 3)]),
    },
  ];

  /** X axis tick steps in seconds: every minute when it fits (uPlot jumps from 1 to 5). */
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function plotHeight(el) {
    return Math.max(120, Math.round(el.clientHeight || 180));
  }

  function makeChart(m) {
    const el = $(m.el);
    const color = cssVar(m.color);
    const axis = {
      stroke: cssVar("--muted"),
      grid: { stroke: cssVar("--grid"), width: 1 },
      ticks: { stroke: cssVar("--grid"), width: 1, size: 4 },
      font: "12px " + cssVar("--font-ui"),
    };
    const readout = $("readout-" + m.key);
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: plotHeight(el),
      padding: [10, 22, 0, 0],
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: { x: { time: true }, y: { range: m.range } },
      series: [
        {},
        {
          label: m.label,
          stroke: color,
          width: 2,
          fill: cssVar(m.color + "-fill"),
          points: { show: false },
        },
      ],
      hooks: { setCursor: [(u) => showReadout(u, m, readout)] },
      axes: [
        { ...axis, space: tickSpace, size: 30, incrs: TIME_STEPS, values: timeLabels },
        { ...axis, size: 46, space: 30, values: (u, vals) => vals.map((v) => v + (m.unit === " %" ? "%" : "°")) },
      ],
    };
    const u = new window.uPlot(opts, [series.t, series[m.key]], el);
    return { m, el, u, readout };
  }

  /** Pixels between time ticks: more when ticks under a minute apart need seconds in labels. */
  function tickSpace(u, axisIdx, min, max, dim) {
    return ((max - min) / dim) * 60 < 60 ? 90 : 60;
  }

  /** X axis labels: local wall-clock time, with seconds when ticks are closer than a minute. */
  function timeLabels(u, splits, axisIdx, space, incr) {
    const format = { hour: "numeric", minute: "2-digit", ...(incr < 60 ? { second: "2-digit" } : {}) };
    return splits.map((t) => new Date(t * 1000).toLocaleTimeString([], format));
  }

  const fmtValue = (m, v) => (v === null || v === undefined ? "–" : v.toFixed(1) + m.unit);

  /** The caption's readout: the hovered point, else the latest one. */
  function showReadout(u, m, el) {
    const values = series[m.key];
    const idx = u.cursor.idx;
    let text;
    if (idx !== null && idx !== undefined && idx < values.length) {
      const when = new Date(series.t[idx] * 1000).toLocaleTimeString();
      text = `${fmtValue(m, values[idx])} at ${when}`;
    } else {
      const last = values.length ? values[values.length - 1] : null;
      text = last === null ? "" : fmtValue(m, last);
    }
    if (el.textContent !== text) el.textContent = text;
  }

  function createCharts() {
    for (const c of charts.splice(0)) c.u.destroy();
    for (const m of METRICS) charts.push(makeChart(m));
  }

  function setupCharts() {
    if (typeof window.uPlot !== "function") {
      $("charts").hidden = true;
      $("charts-missing").hidden = false;
      $("charts-span").textContent = "";
      return;
    }
    createCharts();
    chartsReady = true;
    const resize = new ResizeObserver(() => {
      for (const c of charts) {
        const width = Math.max(200, c.el.clientWidth);
        const height = plotHeight(c.el);
        if (width !== c.u.width || height !== c.u.height) c.u.setSize({ width, height });
      }
    });
    for (const c of charts) resize.observe(c.el);
    // Canvas colours come from CSS variables: redraw when the scheme flips.
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      createCharts();
      scheduleDraw();
    });
  }

  let drawPending = false;

  /** Redraw on the next frame (coalesces bursts; pauses in background tabs). */
  function scheduleDraw() {
    if (!chartsReady || drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      const ts = series.t;
      const minutes = ts.length > 1 ? (ts[ts.length - 1] - ts[0]) / 60 : 0;
      const span =
        minutes >= 9.5 ? "last 10 minutes" : `last ${minutes < 1.5 ? "minute" : Math.round(minutes) + " minutes"}`;
      setText("charts-span", span);
      for (const c of charts) {
        const values = series[c.m.key];
        c.u.setData([ts, values]);
        showReadout(c.u, c.m, c.readout);
        // The canvas says nothing to a screen reader: its label does.
        c.el.setAttribute("aria-label", `${c.m.label}, ${span}; latest ${fmtValue(c.m, values[values.length - 1])}`);
      }
      const temps = series.temperature;
      $("temperature-empty").hidden = !temps.length || temps.some((v) => v !== null);
    });
  }

  // ------------------------------------------------------- current values

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function setBar(cardId, percent) {
    const bar = document.querySelector(`#${cardId} .bar > span`);
    if (!bar) return;
    const p = percent === null ? 0 : Math.max(0, Math.min(100, percent));
    bar.style.width = p + "%";
    bar.parentElement.dataset.level = p >= 90 ? "bad" : p >= 75 ? "warn" : "ok";
  }

  function bytes(n) {
    if (num(n) === null) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }

  function duration(seconds) {
    let s = Math.floor(seconds);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min`;
    return `${s} s`;
  }

  const pct = (v) => (v === null ? "–" : v.toFixed(1) + " %");

  const FLAG_NAMES = {
    under_voltage: "Under-voltage",
    freq_capped: "Frequency capped",
    throttled: "Throttled",
    soft_temp_limit: "Soft temperature limit",
  };

  function flagCell(value) {
    const td = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge " + (value === true ? "bad" : value === false ? "ok" : "unknown");
    badge.textContent = value === true ? "yes" : value === false ? "no" : "?";
    td.append(badge);
    return td;
  }

  function renderThrottled(th) {
    const section = $("throttle");
    if (!th || typeof th !== "object") {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const now = th.now || {};
    const boot = th.since_boot || {};
    const keys = [...new Set([...Object.keys(FLAG_NAMES), ...Object.keys(now), ...Object.keys(boot)])];
    const rows = keys.map((key) => {
      const tr = document.createElement("tr");
      const th2 = document.createElement("th");
      th2.scope = "row";
      th2.textContent = FLAG_NAMES[key] || key.replace(/_/g, " ");
      tr.append(th2, flagCell(now[key]), flagCell(boot[key]));
      return tr;
    });
    $("throttle-rows").replaceChildren(...rows);
    const raw = th.raw;
    setText("throttle-raw", raw === undefined || raw === null ? "" : `raw value ${typeof raw === "number" ? "0x" + raw.toString(16) : raw}`);
  }

  function renderSensors(sensors) {
    const section = $("sensors");
    const names = sensors && typeof sensors === "object" ? Object.keys(sensors).sort() : [];
    if (!names.length) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const rows = names.map((name) => {
      const s = sensors[name] || {};
      const tr = document.createElement("tr");
      const nameCell = document.createElement("th");
      nameCell.scope = "row";
      nameCell.textContent = name;
      const value = document.createElement("td");
      value.className = "num";
      const v = num(s.value);
      value.textContent = v === null ? "–" : `${+v.toFixed(3)}${s.unit ? " " + s.unit : ""}`;
      const status = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "badge " + (s.error ? "bad" : "ok");
      badge.textContent = s.error ? String(s.error) : "ok";
      status.append(badge);
      tr.append(nameCell, value, status);
      return tr;
    });
    $("sensor-rows").replaceChildren(...rows);
  }

  /** Show what a snapshot (full, or the slim kind from history) says. */
  function renderNow(s) {
    if (!s || typeof s !== "object") return;
    if (typeof s.hostname === "string" && s.hostname) {
      setText("hostname", s.hostname);
      document.title = `${s.hostname} · pistatsd`;
    }
    const cpu = s.cpu;
    if (cpu) {
      const p = num(cpu.percent);
      setText("cpu", p === null ? "warming up" : pct(p));
      setBar("card-cpu", p);
      const parts = [];
      if (num(cpu.count)) parts.push(`${cpu.count} ${cpu.count === 1 ? "core" : "cores"}`);
      if (Array.isArray(cpu.per_cpu) && cpu.per_cpu.length > 1 && cpu.per_cpu.every((v) => num(v) !== null)) {
        parts.push(cpu.per_cpu.map((v) => Math.round(v)).join(" · ") + " %");
      }
      if (parts.length) setText("cpu-detail", parts.join(": "));
      const load = Array.isArray(cpu.load) ? cpu.load.map(num) : [];
      if (load.length === 3 && load[0] !== null) {
        const fixed = (v) => (v === null ? "–" : v.toFixed(2));
        setText("load", fixed(load[0]));
        setText("load-detail", `5 min ${fixed(load[1])} · 15 min ${fixed(load[2])}`);
      }
    }
    const mem = s.memory;
    if (mem) {
      const p = num(mem.percent);
      setText("memory", pct(p));
      setBar("card-memory", p);
      if (num(mem.total)) setText("memory-detail", `${bytes(mem.used)} of ${bytes(mem.total)} used`);
    }
    const temp = s.temperature;
    if (temp) {
      const c = num(temp.celsius);
      setText("temperature", c === null ? "n/a" : c.toFixed(1) + " °C");
      $("card-temperature").dataset.level = c === null ? "" : c >= 80 ? "bad" : c >= 70 ? "warn" : "ok";
      if (temp.sensors && typeof temp.sensors === "object") {
        const names = Object.keys(temp.sensors);
        setText("temperature-detail", c === null ? "no sensor" : names.length ? names.join(", ") : "");
      }
    }
    const up = s.uptime;
    if (up && num(up.seconds) !== null) {
      setText("uptime", duration(up.seconds));
      if (num(up.boot_time)) {
        setText("uptime-detail", "booted " + new Date(up.boot_time * 1000).toLocaleString([], { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" }));
      }
    }
    const disk = s.disk;
    if (disk && num(disk.percent) !== null) {
      setText("disk", pct(disk.percent));
      setBar("card-disk", disk.percent);
      setText("disk-detail", `${bytes(disk.free)} free on ${disk.path || "/"}`);
    }
    if ("hostname" in s) {
      // Only full snapshots say whether these exist; slim history ones do not.
      renderThrottled(s.throttled);
      renderSensors(s.sensors);
    }
    const t = num(s.timestamp);
    if (t !== null) {
      lastUpdate = t;
      setText("updated", `updated ${new Date(t * 1000).toLocaleTimeString()} · every ${interval} s via ${transport()}`);
    }
  }

  // ---------------------------------------------------------- connection

  let state = "connecting";
  let ws = null;
  let failures = 0;
  let reconnects = 0;
  let retryTimer = 0;
  let retryAt = 0;
  let polling = false;
  let pollGeneration = 0;
  let pollTimer = 0;
  let pollError = "";
  let lastUpdate = 0;
  let socketUrl = "";
  /** Seconds of silence after which the live socket is given up (for tests). */
  let silenceLimit = 0;

  const hasWebSocket = () => typeof window.WebSocket === "function";
  const transport = () => (state === "live" ? "WebSocket" : polling ? "polling" : "–");

  function endpoint(path, scheme) {
    const url = new URL(path, document.baseURI);
    if (scheme) url.protocol = scheme;
    url.hash = "";
    url.search = "";
    return url.href;
  }

  function setState(next) {
    const changed = next !== state;
    state = next;
    const conn = $("conn");
    conn.dataset.state = next;
    let text = next;
    const wait = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    if (next === "reconnecting") text = `reconnecting in ${wait} s`;
    else if (next === "polling") {
      text = pollError ? "polling: server unreachable" : "polling";
      if (hasWebSocket() && retryTimer) text += ` · WebSocket retry in ${wait} s`;
    } else if (next === "connecting") text = "connecting…";
    setText("conn-text", text);
    if (changed) setText("conn-announce", `Connection ${next}`);
  }

  function backoffSeconds(n) {
    const base = Math.min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (n - 1));
    return base * (0.5 + Math.random() * 0.5);
  }

  function scheduleRetry() {
    clearTimeout(retryTimer);
    const delay = backoffSeconds(failures);
    retryAt = Date.now() + delay * 1000;
    retryTimer = setTimeout(() => {
      retryTimer = 0;
      connect();
    }, delay * 1000);
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (!hasWebSocket()) {
      startPolling();
      return;
    }
    if (ws) return;
    if (!polling) setState("connecting");
    socketUrl = endpoint("ws/broadcast", location.protocol === "https:" ? "wss:" : "ws:");
    let sock;
    try {
      sock = new WebSocket(socketUrl);
    } catch (e) {
      socketFailed(false);
      return;
    }
    ws = sock;
    let greeted = false;
    let silence = 0;
    const armWatchdog = () => {
      clearTimeout(silence);
      silenceLimit = Math.max(15, SILENT_INTERVALS * interval);
      silence = setTimeout(() => {
        // No tick for a long time (sleeping laptop, dead Wi-Fi): give up on it.
        if (ws !== sock) return;
        ws = null;
        sock.onclose = null;
        sock.close();
        socketFailed(greeted);
      }, silenceLimit * 1000);
    };
    armWatchdog();
    sock.onmessage = (event) => {
      if (ws !== sock) return;
      armWatchdog();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (msg.type === "hello") {
        greeted = true;
        failures = 0;
        const i = num(msg.interval);
        if (i !== null && i > 0) interval = i;
        // Armed above with the old interval: a slow broadcast (30 s) must not
        // look dead before its first tick.
        armWatchdog();
        stopPolling();
        setState("live");
        backfill(msg.history);
        greet(msg.latest);
      } else if (msg.type === "stats") {
        ingest(msg);
      }
    };
    sock.onclose = () => {
      clearTimeout(silence);
      if (ws !== sock) return;
      ws = null;
      socketFailed(greeted);
    };
  }

  function socketFailed(wasLive) {
    // A connection that was live starts the backoff afresh.
    failures = wasLive ? 1 : failures + 1;
    reconnects++;
    scheduleRetry();
    if (failures >= FAILURES_BEFORE_POLLING) startPolling();
    else setState(polling ? "polling" : "reconnecting");
  }

  function startPolling() {
    if (polling) {
      setState("polling");
      return;
    }
    polling = true;
    pollError = "";
    setState("polling");
    const generation = ++pollGeneration;
    const poll = async () => {
      if (!polling || generation !== pollGeneration) return;
      try {
        if (!series.t.length) {
          const history = await getJSON(endpoint("stats/history") + `?seconds=${WINDOW_S}`);
          if (generation !== pollGeneration) return;
          backfill(history && history.snapshots);
        }
        const snap = await getJSON(endpoint("stats"));
        if (generation !== pollGeneration) return;
        pollError = "";
        ingest(snap);
      } catch (e) {
        pollError = String(e && e.message ? e.message : e);
      }
      if (!polling || generation !== pollGeneration) return;
      setState("polling");
      pollTimer = setTimeout(poll, Math.max(interval, MIN_POLL_S) * 1000);
    };
    poll();
  }

  function stopPolling() {
    polling = false;
    pollGeneration++;
    clearTimeout(pollTimer);
  }

  async function getJSON(url) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch(url, { cache: "no-store", signal: abort.signal, headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Come back at once when the user does (tab shown again, network back). */
  function retryNow() {
    if (document.visibilityState === "visible" && retryTimer && !ws) connect();
  }

  // The countdown in the status pill.
  setInterval(() => {
    if (state === "reconnecting" || state === "polling") setState(state);
  }, 1000);

  document.addEventListener("visibilitychange", retryNow);
  window.addEventListener("online", retryNow);

  window.pistatsd = {
    /** What the page holds right now (used by tests). */
    stats: () => ({
      state,
      transport: transport(),
      url: socketUrl,
      interval,
      backfill: backfilled,
      live: livePoints,
      greeted: greetedWithLatest,
      silenceLimit,
      points: series.t.length,
      capacity: capacity(),
      charts: chartsReady,
      reconnects,
      lastUpdate,
    }),
    /** Render a snapshot's current values without touching the charts. */
    render: renderNow,
  };

  setupCharts();
  connect();
})();
