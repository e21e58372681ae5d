// pistatsd dashboard, "Trends": CPU, memory, temperature and load over a
// chosen range (15 min to a year) from GET /stats/series.
//
// Each point is the min, mean and max of the samples it covers: the mean is
// the line, and when a point covers several samples a band shows min to max.
// Drag across a chart to zoom (finer data is fetched for the zoomed range),
// double-click to go back to the whole range.  For a range that ends now the
// live broadcast keeps the tail moving (app.js sends each tick as a
// "pistatsd:snapshot" event).  The range is kept in the URL (#range=7d).
//
// For tests: window.pistatsdTrends.stats() describes the state.
"use strict";

(() => {
  /** The range buttons: label, URL name, seconds. */
  const RANGES = [
    { name: "15m", label: "15 min", seconds: 15 * 60 },
    { name: "1h", label: "1 h", seconds: 3600 },
    { name: "6h", label: "6 h", seconds: 6 * 3600 },
    { name: "24h", label: "24 h", seconds: 86400 },
    { name: "7d", label: "7 d", seconds: 7 * 86400 },
    { name: "30d", label: "30 d", seconds: 30 * 86400 },
    { name: "1y", label: "1 y", seconds: 365 * 86400 },
  ];
  const DEFAULT_RANGE = "1h";
  /** Points asked for: about one per pixel, within what the server allows. */
  const MIN_POINTS = 60;
  const MAX_POINTS = 1000;
  /** A zoom narrower than this is a click, not a drag. */
  const MIN_ZOOM_S = 10;
  const FETCH_TIMEOUT_MS = 15000;
  /** At most this many points on screen get a dot each. */
  const SPARSE_POINTS = 40;

  const TRENDS = [
    { name: "cpu.percent", key: "cpu", label: "CPU", unit: " %", color: "--cpu", range: [0, 100] },
    { name: "memory.percent", key: "memory", label: "Memory", unit: " %", color: "--memory", range: [0, 100] },
    { name: "temperature.celsius", key: "temperature", label: "Temperature", unit: " °C", color: "--temperature" },
    { name: "load.1", key: "load", label: "Load (1 min)", unit: "", color: "--load" },
  ];

  const $ = (id) => document.getElementById(id);
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

  // ---------------------------------------------------------------- state

  const state = {
    range: DEFAULT_RANGE,
    /** The view: what the x axis shows; the whole range unless zoomed. */
    from: 0,
    to: 0,
    zoomed: false,
    step: 0,
    /** Known series names, from the index. */
    names: null,
    fetches: 0,
    lastQuery: "",
    error: "",
    /** Busy answers (503) waited out for the current range, and retries left. */
    retries: 0,
    tailTicks: 0,
    interval: 1,
    loading: false,
  };
  /** The answer on screen: t and per name {min, avg, max}, plus sample counts for the tail. */
  let data = { t: [], values: {}, counts: [] };
  let generation = 0;
  const charts = [];
  let ready = false;

  function rangeOf(name) {
    return RANGES.find((r) => r.name === name) || null;
  }

  function rangeFromHash() {
    const match = /(?:^#|&)range=([^&]+)/.exec(location.hash);
    return match && rangeOf(decodeURIComponent(match[1])) ? decodeURIComponent(match[1]) : null;
  }

  // ---------------------------------------------------------------- fetching

  function endpoint(path) {
    const url = new URL(path, document.baseURI);
    url.hash = "";
    url.search = "";
    return url.href;
  }

  const getJSON = (url) => window.pistatsdFetch.getJSON(url, FETCH_TIMEOUT_MS);

  function pointsWanted() {
    const width = charts.length ? charts[0].u.width : 600;
    return Math.max(MIN_POINTS, Math.min(MAX_POINTS, Math.round(width)));
  }

  /** Fetch [from, to] (to omitted: up to the server's now) and show it. */
  /** A busy server (503, at most so many queries waiting) is asked again after its Retry-After. */
  const MAX_RETRIES = 5;

  async function load(from, to, retry = 0) {
    const mine = ++generation;
    state.loading = true;
    setStatus("loading…");
    try {
      if (state.names === null) {
        const index = await getJSON(endpoint("stats/series"));
        state.names = new Set(index && Array.isArray(index.series) ? index.series : []);
      }
      const names = TRENDS.map((m) => m.name).filter((n) => state.names.has(n));
      if (!names.length) {
        if (mine === generation) {
          state.loading = false;
          showAnswer({ from, to: to || from, step: 0, t: [], values: {} });
        }
        return;
      }
      const params = new URLSearchParams({ names: names.join(","), from: String(Math.floor(from)), points: String(pointsWanted()) });
      if (to !== undefined) params.set("to", String(Math.ceil(to)));
      const query = endpoint("stats/series") + "?" + params.toString();
      state.fetches++;
      state.lastQuery = query;
      const answer = await getJSON(query);
      if (mine !== generation) return;
      state.error = "";
      state.loading = false;
      showAnswer(answer);
    } catch (e) {
      if (mine !== generation) return;
      if (e && e.status === 503 && retry < MAX_RETRIES) {
        // Another range chosen meanwhile bumps the generation: this retry is dropped.
        const wait = 1000 * (e.retryAfter === null ? 1 : e.retryAfter) + Math.random() * 500;
        state.retries++;
        setStatus("the history is busy, asking again…");
        setTimeout(() => {
          if (mine === generation) load(from, to, retry + 1);
        }, wait);
        return;
      }
      state.loading = false;
      state.error = String(e && e.message ? e.message : e);
      setStatus(`could not load the history: ${state.error}`);
    }
  }

  function showAnswer(answer) {
    const t = Array.isArray(answer.t) ? answer.t : [];
    const step = num(answer.step) || 0;
    const values = {};
    for (const m of TRENDS) {
      const v = answer.values && answer.values[m.name];
      values[m.name] = {
        min: v && Array.isArray(v.min) ? v.min.slice() : t.map(() => null),
        avg: v && Array.isArray(v.avg) ? v.avg.slice() : t.map(() => null),
        max: v && Array.isArray(v.max) ? v.max.slice() : t.map(() => null),
      };
    }
    const to = num(answer.to) || state.to;
    // Samples behind each point so far: only the tail's last point needs it.
    const counts = t.map((start) => Math.max(1, Math.round((Math.min(to, start + step) - start) / state.interval)));
    data = { t, values, counts };
    state.step = step;
    if (!state.zoomed) {
      state.to = to;
      state.from = to - rangeOf(state.range).seconds;
    }
    draw();
    describe();
  }

  // ---------------------------------------------------------------- the live tail

  function tickValues(snap) {
    const load = snap.cpu && Array.isArray(snap.cpu.load) ? snap.cpu.load : [];
    return {
      "cpu.percent": num(snap.cpu && snap.cpu.percent),
      "memory.percent": num(snap.memory && snap.memory.percent),
      "temperature.celsius": num(snap.temperature && snap.temperature.celsius),
      "load.1": num(load[0]),
    };
  }

  /** A broadcast tick: into the last point (or a new one) when the range ends now. */
  function tail(snap) {
    const when = num(snap && snap.timestamp);
    if (when === null || state.zoomed || !state.step || !ready) return;
    const step = state.step;
    const t = data.t;
    const start = Math.floor(when / step) * step;
    const last = t.length ? t[t.length - 1] : null;
    if (last !== null && start < last) return; // older than what is shown
    // cpu.interval is the sampling window: how many samples a point covers.
    const sampled = num(snap.cpu && snap.cpu.interval);
    if (sampled !== null && sampled > 0) state.interval = sampled;
    const values = tickValues(snap);
    if (last === null || start > last) {
      t.push(start);
      data.counts.push(0);
      for (const m of TRENDS) {
        const v = data.values[m.name];
        v.min.push(null);
        v.avg.push(null);
        v.max.push(null);
      }
    }
    const i = t.length - 1;
    const n = data.counts[i];
    for (const m of TRENDS) {
      const value = values[m.name];
      const v = data.values[m.name];
      if (value === null || !state.names || !state.names.has(m.name)) continue;
      v.min[i] = v.min[i] === null ? value : Math.min(v.min[i], value);
      v.max[i] = v.max[i] === null ? value : Math.max(v.max[i], value);
      v.avg[i] = v.avg[i] === null ? value : (v.avg[i] * n + value) / (n + 1);
    }
    data.counts[i] = n + 1;
    state.tailTicks++;
    state.to = Math.max(state.to, when);
    state.from = state.to - rangeOf(state.range).seconds;
    // Points that scrolled out of the range go.
    let drop = 0;
    while (drop < t.length - 1 && t[drop] + step <= state.from) drop++;
    if (drop) {
      t.splice(0, drop);
      data.counts.splice(0, drop);
      for (const m of TRENDS) for (const field of ["min", "avg", "max"]) data.values[m.name][field].splice(0, drop);
    }
    scheduleDraw();
  }

  // ---------------------------------------------------------------- charts

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function plotHeight(el) {
    return Math.max(120, Math.round(el.clientHeight || 180));
  }

  const fmtValue = (m, v) => (v === null || v === undefined ? "–" : (m.unit ? v.toFixed(1) : v.toFixed(2)) + m.unit);

  function when(t) {
    const long = state.to - state.from > 86400;
    return new Date(t * 1000).toLocaleString([], long ? { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" } : { hour: "numeric", minute: "2-digit", second: "2-digit" });
  }

  function makeChart(m) {
    const el = $("trend-" + m.key);
    const color = cssVar(m.color) || cssVar("--cpu");
    const axis = {
      stroke: cssVar("--muted"),
      grid: { stroke: cssVar("--grid"), width: 1 },
      ticks: { stroke: cssVar("--grid"), width: 1, size: 4 },
      font: "12px " + cssVar("--font-ui"),
    };
    const readout = $("trend-readout-" + m.key);
    const edge = { stroke: "transparent", width: 0, points: { show: false } };
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: plotHeight(el),
      padding: [10, 22, 0, 0],
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 7 } },
      select: { show: true },
      scales: {
        x: { time: true, auto: false },
        y: { range: m.range || ((u, min, max) => (min === null || max === null ? [0, 1] : [Math.min(0, Math.floor(min)), Math.ceil(max * 1.1 + 0.01)])) },
      },
      series: [
        {},
        { label: m.label + " min", ...edge },
        { label: m.label, stroke: color, width: 2, points: { show: sparse, size: 5, fill: color } },
        { label: m.label + " max", ...edge },
      ],
      bands: [{ series: [3, 1], fill: cssVar(m.color + "-fill") || "rgba(128, 128, 128, 0.15)" }],
      hooks: {
        setCursor: [(u) => showReadout(u, m, readout)],
        setSelect: [(u) => zoomFrom(u)],
        // Alert periods (alerts.js), under the lines.
        drawClear: [(u) => window.pistatsdAlerts && window.pistatsdAlerts.shade(u)],
      },
      axes: [
        { ...axis, size: 44 },
        { ...axis, size: 46, space: 30, values: (u, vals) => vals.map((v) => (m.unit === " %" ? v + "%" : m.unit === " °C" ? v + "°" : v)) },
      ],
    };
    const u = new window.uPlot(opts, [[], [], [], []], el);
    u.over.addEventListener("dblclick", () => resetZoom());
    return { m, el, u, readout };
  }

  /** Dots where there are few points to show: a lone point draws no line. */
  function sparse(u, seriesIdx, idx0, idx1) {
    const values = u.data[seriesIdx] || [];
    let n = 0;
    for (let i = idx0; i <= idx1 && n <= SPARSE_POINTS; i++) if (values[i] !== null && values[i] !== undefined) n++;
    return n <= SPARSE_POINTS;
  }

  function showReadout(u, m, el) {
    const v = data.values[m.name];
    const idx = u.cursor.idx;
    let text = "";
    if (v && idx !== null && idx !== undefined && idx < data.t.length && v.avg[idx] !== null) {
      const band = banded() && v.min[idx] !== null ? ` (${fmtValue(m, v.min[idx])}–${fmtValue(m, v.max[idx])})` : "";
      text = `${fmtValue(m, v.avg[idx])}${band} at ${when(data.t[idx])}`;
    }
    if (el.textContent !== text) el.textContent = text;
  }

  /** A point covers several samples: show the min–max band. */
  function banded() {
    return state.step >= 2 * state.interval;
  }

  let drawPending = false;

  function scheduleDraw() {
    if (!ready || drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      draw();
    });
  }

  function draw() {
    if (!ready) return;
    const band = banded();
    for (const c of charts) {
      const v = data.values[c.m.name] || { min: [], avg: [], max: [] };
      const none = data.t.map(() => null);
      c.u.setData([data.t, band ? v.min : none, v.avg, band ? v.max : none], false);
      if (state.to > state.from) c.u.setScale("x", { min: state.from, max: state.to });
      const has = v.avg.some((x) => x !== null);
      $("trend-empty-" + c.m.key).hidden = has;
      c.el.setAttribute("aria-label", `${c.m.label}, ${spanText()}${has ? "" : ": no data"}`);
    }
  }

  function spanText() {
    if (state.zoomed) return `${when(state.from)} to ${when(state.to)}`;
    return "last " + rangeOf(state.range).label;
  }

  function setStatus(text) {
    const el = $("trends-status");
    if (el.textContent !== text) el.textContent = text;
  }

  function describe() {
    const step = state.step;
    const per = !step ? "" : step < 120 ? `${step} s per point` : step < 7200 ? `${Math.round(step / 60)} min per point` : `${+(step / 3600).toFixed(1)} h per point`;
    setStatus([spanText(), per].filter(Boolean).join(" · "));
    $("trends-reset").hidden = !state.zoomed;
  }

  // ---------------------------------------------------------------- choosing

  function select(name, fromHash) {
    const range = rangeOf(name);
    if (!range) return;
    state.range = name;
    state.zoomed = false;
    for (const button of document.querySelectorAll("#trends-ranges button")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === name));
    }
    if (!fromHash && rangeFromHash() !== name) history.replaceState(null, "", `#range=${name}`);
    const now = Math.max(state.to, Date.now() / 1000);
    state.to = now;
    state.from = now - range.seconds;
    load(state.from);
  }

  function zoomFrom(u) {
    const sel = u.select;
    if (!sel || sel.width < 2) return;
    const from = u.posToVal(sel.left, "x");
    const to = u.posToVal(sel.left + sel.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (!(to - from >= MIN_ZOOM_S)) return;
    state.zoomed = true;
    state.from = from;
    state.to = to;
    draw(); // the coarse points, stretched, at once; then the finer ones
    describe();
    load(from, to);
  }

  function resetZoom() {
    if (!state.zoomed) return;
    select(state.range, true);
  }

  function setup() {
    const section = $("trends");
    if (!section) return;
    if (typeof window.uPlot !== "function") {
      section.hidden = true;
      return;
    }
    const buttons = RANGES.map((r) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.dataset.range = r.name;
      b.textContent = r.label;
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", () => select(r.name, false));
      return b;
    });
    $("trends-ranges").replaceChildren(...buttons);
    $("trends-reset").addEventListener("click", () => resetZoom());
    for (const m of TRENDS) charts.push(makeChart(m));
    ready = true;
    const resize = new ResizeObserver(() => {
      for (const c of charts) {
        const width = Math.max(200, c.el.clientWidth);
        const height = plotHeight(c.el);
        if (width !== c.u.width || height !== c.u.height) c.u.setSize({ width, height });
      }
    });
    for (const c of charts) resize.observe(c.el);
    // Canvas colours come from CSS variables: remake the charts when the scheme flips.
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      for (const c of charts.splice(0)) {
        resize.unobserve(c.el);
        c.u.destroy();
      }
      for (const m of TRENDS) charts.push(makeChart(m));
      for (const c of charts) resize.observe(c.el);
      draw();
    });
    window.addEventListener("hashchange", () => {
      const name = rangeFromHash();
      if (name && name !== state.range) select(name, true);
    });
    window.addEventListener("pistatsd:snapshot", (event) => tail(event.detail));
    window.addEventListener("pistatsd:alerts", () => {
      for (const c of charts) c.u.redraw(false);
    });
    select(rangeFromHash() || DEFAULT_RANGE, true);
  }

  window.pistatsdTrends = {
    stats: () => ({
      range: state.range,
      from: state.from,
      to: state.to,
      zoomed: state.zoomed,
      loading: state.loading,
      step: state.step,
      points: data.t.length,
      banded: banded(),
      fetches: state.fetches,
      lastQuery: state.lastQuery,
      error: state.error,
      retries: state.retries,
      tailTicks: state.tailTicks,
      ready,
      values: Object.fromEntries(TRENDS.map((m) => [m.name, (data.values[m.name] || { avg: [] }).avg.filter((v) => v !== null).length])),
    }),
    /** Zoom as a drag across the first chart from fraction a to b of its width would. */
    zoom: (a, b) => {
      const u = charts[0].u;
      const width = u.over.clientWidth;
      u.setSelect({ left: a * width, top: 0, width: (b - a) * width, height: u.over.clientHeight });
    },
    reset: resetZoom,
    /** The points on screen: t and each series' means by short key (cpu, memory, ...). */
    data: () => ({ t: data.t.slice(), ...Object.fromEntries(TRENDS.map((m) => [m.key, (data.values[m.name] || { avg: [] }).avg.slice()])) }),
  };

  setup();
})();
