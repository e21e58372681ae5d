// pistatsd dashboard, alerts: a banner of what fires now (from GET /api/alerts,
// refreshed every few seconds; hidden when nothing fires), and the periods
// alerts fired (from GET /api/alerts/history) shaded on the time axis of every
// chart: app.js and trends.js call window.pistatsdAlerts.shade(u) from each
// uPlot's drawClear hook, so the band sits under the lines.
//
// For tests: window.pistatsdAlerts.stats() describes the state.
"use strict";

(() => {
  const POLL_MS = 5000;
  const HISTORY_EVERY = 6; // history at every 6th poll (30 s), and whenever the firing set changes
  const FETCH_TIMEOUT_MS = 10000;
  const FILLS = {
    critical: "rgba(220, 38, 38, 0.16)",
    warning: "rgba(217, 119, 6, 0.16)",
  };

  const $ = (id) => document.getElementById(id);
  const state = {
    firing: [],
    /** {name, severity, from, to}: to null while it still fires. */
    periods: [],
    polls: 0,
    historyFetches: 0,
    error: "",
    /** Bands drawn at the last draw of each chart, by its element id. */
    drawn: {},
  };
  const severities = new Map(); // alert name -> severity, from /api/alerts
  let firingKey = "";

  function endpoint(path) {
    const url = new URL(path, document.baseURI);
    url.hash = "";
    return url.href;
  }

  const getJSON = (url) => window.pistatsdFetch.getJSON(url, FETCH_TIMEOUT_MS);

  const fmt = (v) => (typeof v === "number" && Number.isFinite(v) ? +v.toPrecision(4) + "" : "–");

  function renderBanner() {
    const banner = $("alert-banner");
    if (!banner) return;
    const items = state.firing.map((a) => {
      const li = document.createElement("li");
      li.className = "alert-item sev-" + (a.severity === "critical" ? "critical" : "warning");
      const sev = document.createElement("span");
      sev.className = "alert-severity";
      sev.textContent = a.severity;
      const name = document.createElement("strong");
      name.textContent = a.name;
      const detail = document.createElement("span");
      detail.className = "alert-detail";
      detail.textContent = `${a.series} = ${fmt(a.value)} since ${new Date(a.since * 1000).toLocaleString()}`;
      li.append(sev, " ", name, " ", detail);
      return li;
    });
    $("alert-list").replaceChildren(...items);
    const critical = state.firing.some((a) => a.severity === "critical");
    banner.dataset.severity = critical ? "critical" : "warning";
    $("alert-title").textContent = state.firing.length === 1 ? "1 alert firing" : `${state.firing.length} alerts firing`;
    banner.hidden = state.firing.length === 0;
  }

  /** Tell screen readers once what started or stopped firing (not at every refresh). */
  function announce(before, after) {
    const was = new Set(before ? before.split("\n") : []);
    const now = new Set(after ? after.split("\n") : []);
    const started = [...now].filter((n) => !was.has(n));
    const ended = [...was].filter((n) => !now.has(n));
    const parts = [];
    if (started.length) parts.push(`Alert firing: ${started.join(", ")}.`);
    if (ended.length) parts.push(`Resolved: ${ended.join(", ")}.`);
    if (parts.length && $("alert-announce")) $("alert-announce").textContent = parts.join(" ");
  }

  /** Firing periods from the changes (newest first), plus what fires now. */
  function periodsOf(history, firing) {
    const open = new Map();
    const periods = [];
    for (const change of [...history].reverse()) {
      if (!change || typeof change.time !== "number") continue;
      const severity = severities.get(change.name) || "warning";
      if (change.state === "firing") {
        open.set(change.name, { name: change.name, severity, from: change.time, to: null });
      } else if (change.from === "firing") {
        const period = open.get(change.name) || { name: change.name, severity, from: -Infinity };
        open.delete(change.name);
        period.to = change.time;
        periods.push(period);
      }
    }
    for (const a of firing) {
      if (!open.has(a.name)) open.set(a.name, { name: a.name, severity: a.severity, from: a.since, to: null });
      else open.get(a.name).severity = a.severity;
    }
    for (const [name, period] of open) {
      // Open in the history but no longer firing (it changed after the history was read): leave it out.
      if (firing.some((a) => a.name === name)) periods.push(period);
    }
    return periods;
  }

  async function poll() {
    state.polls++;
    try {
      const answer = await getJSON(endpoint("api/alerts"));
      const alerts = answer && Array.isArray(answer.alerts) ? answer.alerts : [];
      for (const a of alerts) severities.set(a.name, a.severity);
      state.firing = alerts.filter((a) => a.state === "firing");
      renderBanner();
      const key = state.firing.map((a) => a.name).sort().join("\n");
      if (key !== firingKey) announce(firingKey, key);
      if (key !== firingKey || state.polls % HISTORY_EVERY === 1) {
        firingKey = key;
        const history = await getJSON(endpoint("api/alerts/history?limit=1000"));
        state.historyFetches++;
        state.periods = periodsOf(history && Array.isArray(history.history) ? history.history : [], state.firing);
        window.dispatchEvent(new CustomEvent("pistatsd:alerts", { detail: state.periods }));
      }
      state.error = "";
    } catch (e) {
      state.error = String(e && e.message ? e.message : e);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  /** uPlot drawClear hook: shade each firing period over the x range shown. */
  function shade(u) {
    const x = u.scales.x;
    let drawn = 0;
    if (x && x.min !== null && x.max !== null && x.max > x.min) {
      const now = Date.now() / 1000;
      const { top, height } = u.bbox;
      const ctx = u.ctx;
      for (const p of state.periods) {
        const from = Math.max(p.from, x.min);
        const to = Math.min(p.to === null ? now : p.to, x.max);
        if (!(to > from)) continue;
        const x0 = u.valToPos(from, "x", true);
        const x1 = u.valToPos(to, "x", true);
        ctx.save();
        ctx.fillStyle = FILLS[p.severity] || FILLS.warning;
        ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
        ctx.restore();
        drawn++;
      }
    }
    const id = u.root && u.root.parentElement ? u.root.parentElement.id : "";
    if (id) state.drawn[id] = drawn;
  }

  window.pistatsdAlerts = {
    shade,
    stats: () => ({
      firing: state.firing.map((a) => a.name),
      periods: state.periods.map((p) => ({ ...p })),
      polls: state.polls,
      historyFetches: state.historyFetches,
      error: state.error,
      bannerHidden: $("alert-banner") ? $("alert-banner").hidden : null,
      announced: $("alert-announce") ? $("alert-announce").textContent : null,
      drawn: { ...state.drawn },
    }),
  };

  poll();
})();
