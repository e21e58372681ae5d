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
// Every name shown (interfaces, mount points, processes, sensors) comes from
// the machine: it is set as textContent, never parsed as HTML.
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
  const series = { t: [], cpu: [], memory: [], temperature: [], rx: [], tx: [], read: [], write: [] };
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
    // Rates: null in the first sample (a gap in the chart); the slim history carries them too.
    series.rx.push(num(snap.net && snap.net.rx_bytes_per_s));
    series.tx.push(num(snap.net && snap.net.tx_bytes_per_s));
    const io = diskTotals(snap.disk_io);
    series.read.push(io.read);
    series.write.push(io.write);
    return true;
  }

  /** Bytes per second read and written over every disk; null where no disk says. */
  function diskTotals(devices) {
    const total = { read: null, write: null };
    if (!devices || typeof devices !== "object") return total;
    for (const device of Object.values(devices)) {
      if (!device || typeof device !== "object") continue;
      const r = num(device.read_bytes_per_s);
      const w = num(device.write_bytes_per_s);
      if (r !== null) total.read = (total.read || 0) + r;
      if (w !== null) total.write = (total.write || 0) + w;
    }
    return total;
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

  const pct1 = (v) => v.toFixed(1) + " %";
  const rateRange = (u, min, max) => [0, max === null || max <= 0 ? 1024 : max * 1.15];

  /** The charts: each draws one or more series of the shared time axis. */
  const METRICS = [
    { key: "cpu", label: "CPU", lines: [{ key: "cpu", color: "--cpu" }], range: [0, 100], fmt: pct1, tick: (v) => v + "%" },
    { key: "memory", label: "Memory", lines: [{ key: "memory", color: "--memory" }], range: [0, 100], fmt: pct1, tick: (v) => v + "%" },
    {
      key: "temperature", label: "Temperature", lines: [{ key: "temperature", color: "--temperature" }],
      range: (u, min, max) => (min === null || max === null ? [20, 80] : [Math.floor(min - 3), Math.ceil(max + 3)]),
      fmt: (v) => v.toFixed(1) + " °C", tick: (v) => v + "°",
    },
    {
      key: "net", label: "Network", range: rateRange, fmt: (v) => rate(v), tick: shortBytes,
      lines: [{ key: "rx", label: "received", color: "--rx" }, { key: "tx", label: "sent", color: "--tx" }],
    },
    {
      key: "diskio", label: "Disk I/O", range: rateRange, fmt: (v) => rate(v), tick: shortBytes,
      lines: [{ key: "read", label: "read", color: "--read" }, { key: "write", label: "written", color: "--write" }],
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
    const el = $("plot-" + m.key);
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
        ...m.lines.map((line) => ({
          label: line.label || m.label,
          stroke: cssVar(line.color),
          width: 2,
          fill: m.lines.length === 1 ? cssVar(line.color + "-fill") : undefined,
          points: { show: false },
        })),
      ],
      hooks: {
        setCursor: [(u) => showReadout(u, m, readout)],
        // Alert periods (alerts.js), under the lines.
        drawClear: [(u) => window.pistatsdAlerts && window.pistatsdAlerts.shade(u)],
      },
      axes: [
        { ...axis, space: tickSpace, size: 30, incrs: TIME_STEPS, values: timeLabels },
        { ...axis, size: 52, space: 30, values: (u, vals) => vals.map(m.tick) },
      ],
    };
    const u = new window.uPlot(opts, chartData(m), el);
    return { m, el, u, readout };
  }

  const chartData = (m) => [series.t, ...m.lines.map((line) => series[line.key])];

  /** Pixels between time ticks: more when ticks under a minute apart need seconds in labels. */
  function tickSpace(u, axisIdx, min, max, dim) {
    return ((max - min) / dim) * 60 < 60 ? 90 : 60;
  }

  /** X axis labels: local wall-clock time, with seconds when ticks are closer than a minute. */
  function timeLabels(u, splits, axisIdx, space, incr) {
    const format = { hour: "numeric", minute: "2-digit", ...(incr < 60 ? { second: "2-digit" } : {}) };
    return splits.map((t) => new Date(t * 1000).toLocaleTimeString([], format));
  }

  const fmtOne = (m, v) => (v === null || v === undefined ? "–" : m.fmt(v));

  /** The values of chart C{m} at index C{idx}: one value, or "received 1.5 MiB/s · sent 2 KiB/s". */
  function fmtValues(m, idx) {
    const values = m.lines.map((line) => series[line.key][idx]);
    if (m.lines.length === 1) return fmtOne(m, values[0]);
    if (values.every((v) => v === null || v === undefined)) return "–";
    return m.lines.map((line, i) => `${line.label} ${fmtOne(m, values[i])}`).join(" · ");
  }

  /** The caption's readout: the hovered point, else the latest one. */
  function showReadout(u, m, el) {
    const n = series.t.length;
    const idx = u.cursor.idx;
    let text;
    if (idx !== null && idx !== undefined && idx < n) {
      const when = new Date(series.t[idx] * 1000).toLocaleTimeString();
      text = `${fmtValues(m, idx)} at ${when}`;
    } else {
      text = n ? fmtValues(m, n - 1) : "";
      if (text === "–") text = "";
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
        c.u.setData(chartData(c.m));
        showReadout(c.u, c.m, c.readout);
        // The canvas says nothing to a screen reader: its label does.
        c.el.setAttribute("aria-label", `${c.m.label}, ${span}; latest ${ts.length ? fmtValues(c.m, ts.length - 1) : "–"}`);
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

  /** Bytes per second, or "–" when unknown (the first sample). */
  function rate(n) {
    return num(n) === null ? "–" : bytes(n) + "/s";
  }

  /** Axis labels: "0", "512", "1.5K", "20M" (bytes, binary multiples). */
  function shortBytes(n) {
    const units = ["", "K", "M", "G", "T"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (Math.abs(n) >= 10 || Number.isInteger(n) ? n.toFixed(0) : n.toFixed(1)) + units[i];
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

  /** A table cell with text (never HTML) and an optional class. */
  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  /** A row header cell: the name of the thing, from the machine, as text. */
  function nameCell(text) {
    const th = document.createElement("th");
    th.scope = "row";
    th.className = "name";
    th.textContent = text;
    return th;
  }

  function badge(text, level) {
    const span = document.createElement("span");
    span.className = "badge " + level;
    span.textContent = text;
    return span;
  }

  function badgeCell(text, level, className) {
    const td = cell("", className);
    td.append(badge(text, level));
    return td;
  }

  function flagCell(value) {
    return badgeCell(value === true ? "yes" : value === false ? "no" : "?", value === true ? "bad" : value === false ? "ok" : "unknown");
  }

  /** A fill gauge and its percentage; warning colour from 90 %. */
  function meterCell(percent) {
    const td = cell("", "use");
    const meter = document.createElement("span");
    meter.className = "meter";
    const fill = document.createElement("span");
    const p = percent === null ? 0 : Math.max(0, Math.min(100, percent));
    fill.style.width = p + "%";
    meter.dataset.level = percent === null ? "" : p >= 90 ? "bad" : p >= 75 ? "warn" : "ok";
    meter.append(fill);
    const text = document.createElement("span");
    text.className = "pct";
    text.textContent = percent === null ? "–" : percent.toFixed(1) + " %";
    td.append(meter, text);
    return td;
  }

  /** Show a section with these rows, or hide it when there are none. */
  function fill(sectionId, bodyId, rows) {
    $(sectionId).hidden = !rows.length;
    $(bodyId).replaceChildren(...rows);
  }

  const when = (t) => (num(t) === null ? "–" : new Date(t * 1000).toLocaleString([], { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" }));

  function renderThrottled(th) {
    const section = $("throttle");
    if (!th || typeof th !== "object") {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const now = th.now || {};
    const boot = th.since_boot || {};
    const changed = th.changed && typeof th.changed === "object" ? th.changed : {};
    const keys = [...new Set([...Object.keys(FLAG_NAMES), ...Object.keys(now), ...Object.keys(boot)])];
    const rows = keys.map((key) => {
      const tr = document.createElement("tr");
      tr.append(nameCell(FLAG_NAMES[key] || key.replace(/_/g, " ")), flagCell(now[key]), flagCell(boot[key]), cell(when(changed[key]), "wide"));
      return tr;
    });
    $("throttle-rows").replaceChildren(...rows);
    const state = $("power-state");
    if (now.under_voltage === true) {
      state.className = "badge bad";
      state.textContent = "Under-voltage now: check the power supply";
    } else if (boot.under_voltage === true) {
      state.className = "badge warn";
      state.textContent = "Under-voltage since boot";
    } else if (Object.values(now).some((v) => v === true)) {
      state.className = "badge warn";
      state.textContent = "Throttled now";
    } else {
      state.className = "badge ok";
      state.textContent = "Power OK";
    }
    const volts = [["Core", th.core_volts], ["Input", th.input_volts]]
      .filter(([, v]) => num(v) !== null)
      .map(([name, v]) => `${name} ${v.toFixed(2)} V`);
    setText("power-volts", volts.join(" · "));
    const raw = th.raw;
    setText("throttle-raw", raw === undefined || raw === null ? "" : `raw value ${typeof raw === "number" ? "0x" + raw.toString(16) : raw}`);
  }

  function renderFilesystems(list) {
    const rows = (Array.isArray(list) ? list : [])
      .filter((fs) => fs && typeof fs === "object")
      .map((fs) => {
        const tr = document.createElement("tr");
        const name = nameCell(String(fs.mount ?? "?"));
        name.title = [fs.device, fs.fstype].filter((v) => typeof v === "string").join(" · ");
        if (fs.read_only === true) name.append(" ", badge("read-only", "unknown"));
        if (fs.error) {
          tr.dataset.error = String(fs.error);
          const error = badgeCell(String(fs.error), "bad");
          error.colSpan = 3;
          tr.append(name, error);
          return tr;
        }
        tr.append(name, meterCell(num(fs.percent)), cell(bytes(fs.free), "num"), cell(bytes(fs.total), "num wide"));
        return tr;
      });
    fill("filesystems", "fs-rows", rows);
  }

  function renderDisks(devices) {
    const entries = devices && typeof devices === "object" ? Object.entries(devices).sort(([a], [b]) => (a < b ? -1 : 1)) : [];
    const rows = entries
      .filter(([, d]) => d && typeof d === "object")
      .map(([name, d]) => {
        const tr = document.createElement("tr");
        const head = nameCell(name);
        const health = d.health && typeof d.health === "object" ? d.health : null;
        if (health && typeof health.pre_eol === "string") {
          const level = health.pre_eol === "normal" ? "ok" : health.pre_eol === "warning" ? "warn" : "bad";
          const life = Array.isArray(health.life_time_percent) ? health.life_time_percent.filter((v) => num(v) !== null) : [];
          head.append(" ", badge(`wear ${life.length ? Math.max(...life) + " %" : health.pre_eol}`, level));
        }
        const busy = num(d.busy_percent);
        tr.append(head, cell(rate(d.read_bytes_per_s), "num"), cell(rate(d.write_bytes_per_s), "num"), cell(busy === null ? "–" : busy.toFixed(1) + " %", "num"), cell(bytes(d.written_bytes), "num wide"));
        return tr;
      });
    fill("disks", "disk-rows", rows);
  }

  function renderInterfaces(net) {
    const interfaces = net && typeof net === "object" && net.interfaces && typeof net.interfaces === "object" ? net.interfaces : {};
    const rows = Object.keys(interfaces)
      .sort()
      .filter((name) => interfaces[name] && typeof interfaces[name] === "object")
      .map((name) => {
        const i = interfaces[name];
        const tr = document.createElement("tr");
        if (i.virtual === true) tr.className = "virtual";
        const head = nameCell(name);
        if (i.virtual === true) head.append(" ", badge("virtual", "unknown"));
        const link = [];
        if (num(i.speed_mbps) !== null && i.speed_mbps > 0) link.push(i.speed_mbps >= 1000 ? `${i.speed_mbps / 1000} Gb/s` : `${i.speed_mbps} Mb/s`);
        const wifi = i.wifi && typeof i.wifi === "object" ? i.wifi : null;
        if (wifi && num(wifi.signal_dbm) !== null) link.push(`Wi-Fi ${wifi.signal_dbm} dBm`);
        if (wifi && num(wifi.link_quality) !== null) link.push(`${Math.round(wifi.link_quality * 100)} %`);
        tr.append(head, badgeCell(i.up === true ? "up" : i.up === false ? "down" : "?", i.up === true ? "ok" : "unknown"), cell(rate(i.rx_bytes_per_s), "num"), cell(rate(i.tx_bytes_per_s), "num"), cell(link.join(" · ") || "–", "wide"));
        return tr;
      });
    fill("interfaces", "interface-rows", rows);
  }

  function processRows(list, memoryFirst) {
    return (Array.isArray(list) ? list : [])
      .filter((p) => p && typeof p === "object")
      .map((p) => {
        const tr = document.createElement("tr");
        const head = nameCell(String(p.name ?? "?"));
        if (num(p.pid) !== null) {
          const pid = document.createElement("span");
          pid.className = "muted pid";
          pid.textContent = ` ${p.pid}`;
          head.append(pid);
        }
        const cpu = cell(num(p.cpu_percent) === null ? "–" : p.cpu_percent.toFixed(1) + " %", "num");
        const rss = cell(bytes(p.rss), "num");
        tr.append(head, ...(memoryFirst ? [rss, cpu] : [cpu, rss]));
        return tr;
      });
  }

  /** A whole-width row saying why a list is empty (no CPU window yet, say). */
  function placeholderRow(text) {
    const tr = document.createElement("tr");
    const td = cell(text, "muted");
    td.colSpan = 3;
    tr.append(td);
    return tr;
  }

  function renderProcesses(p) {
    const section = $("processes");
    if (!p || typeof p !== "object") {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const counts = [];
    if (num(p.total) !== null) counts.push(`${p.total} in all`);
    if (num(p.running) !== null) counts.push(`${p.running} running`);
    if (num(p.zombie) !== null && p.zombie > 0) counts.push(`${p.zombie} ${p.zombie === 1 ? "zombie" : "zombies"}`);
    setText("process-counts", counts.join(" · "));
    // No list yet (the first scan has no CPU window): say so rather than show an empty table.
    const rowsOrWhy = (list, memoryFirst) => {
      const rows = processRows(list, memoryFirst);
      return rows.length ? rows : [placeholderRow(Array.isArray(list) ? "none" : "measuring…")];
    };
    $("top-cpu-rows").replaceChildren(...rowsOrWhy(p.top_cpu, false));
    $("top-memory-rows").replaceChildren(...rowsOrWhy(p.top_memory, true));
  }

  function renderFans(fans) {
    const names = fans && typeof fans === "object" ? Object.keys(fans).sort() : [];
    const rows = names
      .filter((name) => num(fans[name]) !== null)
      .map((name) => {
        const tr = document.createElement("tr");
        tr.append(nameCell(name), cell(`${Math.round(fans[name])} rpm`, "num"));
        return tr;
      });
    fill("fans", "fan-rows", rows);
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
      const head = [];
      if (num(cpu.count)) head.push(`${cpu.count} ${cpu.count === 1 ? "core" : "cores"}`);
      if (num(cpu.freq_mhz) !== null) head.push(`${Math.round(cpu.freq_mhz)} MHz`);
      const parts = head.length ? [head.join(" · ")] : [];
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
      renderFilesystems(s.filesystems);
      renderDisks(s.disk_io);
      renderInterfaces(s.net);
      renderProcesses(s.processes);
      renderFans(s.fans);
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

  const getJSON = (url) => window.pistatsdFetch.getJSON(url, FETCH_TIMEOUT_MS);

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
