// pistatsd WebSocket test page: talk to /ws/echo, watch /ws/broadcast raw.
"use strict";

(() => {
  /** Entries kept per log: the page must not grow without bound. */
  const ECHO_KEEP = 200;
  const BROADCAST_KEEP = 20;
  /** Longer payloads are shown cut (the hello message carries history). */
  const SHOW_CHARS = 4000;

  const $ = (id) => document.getElementById(id);

  function socketUrl(path) {
    const url = new URL(path, document.baseURI);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    url.search = "";
    return url.href;
  }

  function hex(bytes) {
    return Array.from(bytes.slice(0, 256), (b) => b.toString(16).padStart(2, "0")).join(" ") + (bytes.length > 256 ? " …" : "");
  }

  function describe(data) {
    if (typeof data === "string") {
      return data.length > SHOW_CHARS ? `${data.slice(0, SHOW_CHARS)}… (${data.length} characters)` : data;
    }
    const bytes = new Uint8Array(data);
    let text = "";
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (e) {
      text = "";
    }
    return `[${bytes.length} bytes] ${hex(bytes)}${text ? `  "${text}"` : ""}`;
  }

  /** Prepend one entry (newest first) and drop the oldest beyond C{keep}. */
  function log(list, kind, label, payload, keep) {
    const li = document.createElement("li");
    li.className = kind;
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString();
    const tag = document.createElement("span");
    tag.className = "kind";
    tag.textContent = label;
    const body = document.createElement("pre");
    body.className = "payload";
    body.textContent = payload;
    li.append(time, tag, body);
    list.prepend(li);
    while (list.children.length > keep) list.lastElementChild.remove();
  }

  function setStatus(prefix, state, text) {
    $(prefix + "-status").dataset.state = state;
    $(prefix + "-status-text").textContent = text;
  }

  // ------------------------------------------------------------ echo

  const echoLog = $("echo-log");
  const echoUrl = socketUrl("ws/echo");
  let echo = null;
  $("echo-url").textContent = new URL(echoUrl).pathname;

  function echoConnect() {
    if (echo) return;
    setStatus("echo", "connecting", "connecting…");
    const sock = new WebSocket(echoUrl);
    sock.binaryType = "arraybuffer";
    echo = sock;
    $("echo-toggle").textContent = "Disconnect";
    sock.onopen = () => {
      setStatus("echo", "open", "open");
      log(echoLog, "info", "open", echoUrl, ECHO_KEEP);
    };
    sock.onmessage = (event) => log(echoLog, "recv", "echo", describe(event.data), ECHO_KEEP);
    sock.onclose = (event) => {
      if (echo === sock) echo = null;
      setStatus("echo", "closed", "closed");
      $("echo-toggle").textContent = "Connect";
      const reason = event.reason ? `: ${event.reason}` : "";
      log(echoLog, "info", "closed", `code ${event.code}${reason}`, ECHO_KEEP);
    };
  }

  $("echo-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("echo-text").value;
    if (!echo || echo.readyState !== WebSocket.OPEN) {
      log(echoLog, "info", "!", "not connected: press Connect first", ECHO_KEEP);
      return;
    }
    if ($("echo-binary").checked) {
      const bytes = new TextEncoder().encode(text);
      echo.send(bytes);
      log(echoLog, "sent", "sent", describe(bytes.buffer), ECHO_KEEP);
    } else {
      echo.send(text);
      log(echoLog, "sent", "sent", describe(text), ECHO_KEEP);
    }
  });

  $("echo-toggle").addEventListener("click", () => {
    if (echo) echo.close(1000, "closed by user");
    else echoConnect();
  });
  $("echo-clear").addEventListener("click", () => echoLog.replaceChildren());

  // ------------------------------------------------------- broadcast

  const bcLog = $("bc-log");
  const bcUrl = socketUrl("ws/broadcast");
  let bc = null;
  let bcCount = 0;
  $("bc-url").textContent = new URL(bcUrl).pathname;
  $("bc-keep").textContent = String(BROADCAST_KEEP);

  function bcButton(running) {
    const button = $("bc-toggle");
    button.textContent = running ? "Stop" : "Start";
    button.setAttribute("aria-pressed", String(running));
  }

  function bcStart() {
    if (bc) return;
    setStatus("bc", "connecting", "connecting…");
    const sock = new WebSocket(bcUrl);
    bc = sock;
    bcButton(true);
    sock.onopen = () => setStatus("bc", "open", "receiving");
    sock.onmessage = (event) => {
      bcCount++;
      $("bc-count").textContent = String(bcCount);
      let kind = "msg";
      try {
        kind = JSON.parse(event.data).type || kind;
      } catch (e) {
        kind = "raw";
      }
      log(bcLog, "recv", kind, describe(event.data), BROADCAST_KEEP);
    };
    sock.onclose = (event) => {
      if (bc === sock) bc = null;
      bcButton(false);
      setStatus("bc", "closed", "stopped");
      log(bcLog, "info", "closed", `code ${event.code}${event.reason ? ": " + event.reason : ""}`, BROADCAST_KEEP);
    };
  }

  $("bc-toggle").addEventListener("click", () => {
    if (bc) bc.close(1000, "stopped by user");
    else bcStart();
  });
  $("bc-clear").addEventListener("click", () => {
    bcLog.replaceChildren();
    bcCount = 0;
    $("bc-count").textContent = "0";
  });

  if (typeof window.WebSocket !== "function") {
    setStatus("echo", "error", "no WebSocket in this browser");
    setStatus("bc", "error", "no WebSocket in this browser");
    for (const id of ["echo-send", "echo-toggle", "bc-toggle"]) $(id).disabled = true;
    return;
  }
  echoConnect();
})();
