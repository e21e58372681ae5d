// pistatsd dashboard, shared: fetching JSON with a deadline, for app.js,
// trends.js and alerts.js (loaded before them; each passes its own timeout).
// A refusal's JSON "error" (e.g. a 400 from /stats/series) is in the message;
// the error carries the HTTP status and, for a busy server's 503, the seconds
// its Retry-After asks to wait.
"use strict";

window.pistatsdFetch = {
  async getJSON(url, timeoutMs) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const response = await fetch(url, { cache: "no-store", signal: abort.signal, headers: { Accept: "application/json" } });
      let body = null;
      let unreadable = null;
      try {
        body = await response.json();
      } catch (e) {
        unreadable = e;
      }
      if (!response.ok) {
        const error = new Error(`HTTP ${response.status}${body && body.error ? ": " + body.error : ""}`);
        error.status = response.status;
        const wait = Number(response.headers.get("Retry-After"));
        error.retryAfter = Number.isFinite(wait) && wait >= 0 ? wait : null;
        throw error;
      }
      if (unreadable !== null) throw unreadable;
      return body;
    } finally {
      clearTimeout(timer);
    }
  },
};
