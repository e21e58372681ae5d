"""The groups of bench/run.py that the shared harness has no scenario for.

    influx      GET /sum throughput with InfluxDB reporting on vs off
    tls         TLS handshakes/s and HTTPS keep-alive GET /sum, pistatsd vs Tornado+TLS
    dashboards  server CPU with 0 / 1 / 50 /ws/broadcast clients at the default 1 s interval

Each phase takes ``R`` (the run.py module: Daemon, helpers) and returns a
JSON-able dict that run.py stores in ``extra`` and turns into table rows.
Loads: wrk or ``../shared/bench/loadclient.py`` on core 1, servers on core 0,
loopback only, every subprocess with a timeout, stopped by PID.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SUM_PATH = "/sum?a=3&b=3"


def shared_run(a):
    """The shared run.py as a module (its run_wrk, CpuMeter), loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "shared_bench_run", os.path.join(a.shared, "run.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def wrk(a, url, pid, headers=(), conns=50, duration=None, warmup=1):
    """The shared harness's wrk command (``-s wrk_report.lua``), plus extra -H headers;
    server CPU from psutil on `pid`, client CPU from rusage."""
    import psutil

    duration = duration or a.duration
    lua = os.path.join(a.shared, "wrk_report.lua")
    hdr = [x for h in headers for x in ("-H", h)]

    def cmd(d):
        return [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{d}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            lua,
            *hdr,
            url,
        ]

    if warmup:
        subprocess.run(cmd(warmup), capture_output=True, timeout=warmup + 30)
    proc = psutil.Process(pid)
    c0 = sum(proc.cpu_times()[:2])
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(cmd(duration), capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - t0
    srv = (sum(proc.cpu_times()[:2]) - c0) / wall * 100
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall * 100
    m = re.search(r"^WRKJSON (\{.*\})$", r.stdout, re.M)
    if not m:
        return {"error": "wrk: " + (r.stderr or r.stdout)[-200:]}
    d = json.loads(m.group(1))
    secs = d["duration_us"] / 1e6
    errs = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return {
        "rate": round(d["requests"] / secs, 1),
        "requests": d["requests"],
        "p50_ms": d["p50_us"] / 1e3,
        "p99_ms": d["p99_us"] / 1e3,
        "errors": errs,
        "err_detail": {k: d[k] for k in ("connect", "read", "write", "status", "timeout")},
        "server_cpu": round(srv, 1),
        "client_cpu": round(gen, 1),
    }


def median_of(runs):
    import statistics

    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[-1].get("error") if runs else "no runs", "n": 0}
    out = {}
    for k in ("rate", "p50_ms", "p99_ms", "server_cpu", "client_cpu"):
        vals = [r[k] for r in good if isinstance(r.get(k), (int, float))]
        if vals:
            out[k] = round(statistics.median(vals), 2)
    rates = [r["rate"] for r in good]
    out["reps"] = rates
    out["errors"] = sum(r.get("errors", 0) for r in good)
    out["n"] = len(good)
    if len(rates) > 1 and out.get("rate"):
        out["spread_pct"] = round((max(rates) - min(rates)) / out["rate"] * 100, 1)
    return out


# ------------------------------------------------------------------ influx
INFLUXD_HELPER = r"""
import shutil, sys, tempfile
sys.path.insert(0, sys.argv[1])
from tests.influxd import Influxd
root = tempfile.mkdtemp(prefix="pistatsd-bench-influxd-")
i = Influxd(root).start()
print("INFLUXD", i.url, i.proc.pid, flush=True)
try:
    sys.stdin.read()      # runs until run.py closes our stdin
finally:
    i.stop()
    shutil.rmtree(root, ignore_errors=True)
"""


class InfluxdHelper:
    """A throwaway influxd from the project's tests/influxd.py, on core 1 (load side)."""

    def __init__(self, py, logdir):
        self.py, self.logdir = py, logdir

    def __enter__(self):
        self.errf = open(os.path.join(self.logdir, "influxd-helper.log"), "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", self.py, "-c", INFLUXD_HELPER, os.path.dirname(HERE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errf,
            text=True,
        )
        line = [None]
        th = threading.Thread(
            target=lambda: line.__setitem__(0, self.proc.stdout.readline()), daemon=True
        )
        th.start()
        th.join(60)
        if not line[0] or not line[0].startswith("INFLUXD "):
            self.__exit__()
            raise RuntimeError("influxd did not start (see logs/influxd-helper.log)")
        _, self.url, pid = line[0].split()
        self.pid = int(pid)
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            with contextlib.suppress(OSError, AttributeError):
                os.kill(self.pid, signal.SIGKILL)  # the influxd it started, by PID
        self.errf.close()

    def query(self, q, db="math_server"):
        url = self.url + "/query?" + urllib.parse.urlencode({"db": db, "q": q})
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())


def influx_phase(a, R, py):
    """GET /sum with reporting off vs on (real influxd, 1 s reports): both daemons run
    side by side on core 0 (the idle one costs ~0.2% of a core), wrk loads one at a
    time in ABBA order (off,on / on,off / ...) so slow drift of the host cancels out;
    then the `requests` points are read back from influxd."""
    pairs = 1 if a.quick else max(4, a.reps + 2)
    order = []
    for i in range(pairs):
        order += [("off", "on"), ("on", "off")][i % 2]
    out = {"pairs": pairs, "runs": {"off": [], "on": []}, "order": order}
    with InfluxdHelper(py, a.logdir) as influx:
        out["influx_url"] = influx.url
        args = ["--influx", influx.url, "--report-interval", "1", "--influx-create-db"]
        daemons = {}
        try:
            daemons["off"] = R.Daemon(py, a.www, a.logdir, "pistatsd-influx-off").start()
            daemons["on"] = R.Daemon(
                py, a.www, a.logdir, "pistatsd-influx-on", extra_args=args
            ).start()
            out["cmd_on"] = " ".join(daemons["on"].cmd)
            time.sleep(2.0)  # first report (and CREATE DATABASE) before measuring
            on_requests = 0
            for mode in order:
                d = daemons[mode]
                r = wrk(a, d.url + SUM_PATH, d.proc.pid)
                if mode == "on":
                    on_requests += r.get("requests", 0)
                out["runs"][mode].append(r)
                R.log(f"influx {mode} rep: {json.dumps(r)[:160]}")
                time.sleep(1.0)
            out["wrk_requests_on"] = on_requests  # measured windows only (not warm-ups)
            time.sleep(2.5)  # let the last 1 s report go out
        finally:
            out["stop"] = {k: d.stop() for k, d in daemons.items()}
        try:
            res = influx.query("SELECT sum(requests_number) FROM requests")
            series = res["results"][0].get("series") or []
            out["influx_requests_sum"] = series[0]["values"][0][1] if series else 0
            res2 = influx.query("SELECT count(requests_number) FROM requests")
            s2 = res2["results"][0].get("series") or []
            out["influx_points"] = s2[0]["values"][0][1] if s2 else 0
        except Exception as e:
            out["influx_query_error"] = repr(e)[:200]
    out["off"] = median_of(out["runs"]["off"])
    out["on"] = median_of(out["runs"]["on"])
    ons = [r.get("rate") for r in out["runs"]["on"]]
    offs = [r.get("rate") for r in out["runs"]["off"]]
    out["pair_ratios"] = [round(x / y, 3) for x, y in zip(ons, offs, strict=False) if x and y]
    return out


# --------------------------------------------------------------------- tls
def tls_phase(a, R, py, bpy):
    """pistatsd --tls vs the shared Tornado app with TLS (bench/peers_tls.py), same cert."""
    out = {"servers": {}}
    state = tempfile.mkdtemp(prefix="pistatsd-bench-tls-")
    reps = 1 if a.quick else a.reps
    try:
        d = R.Daemon(py, a.www, a.logdir, "pistatsd-tls", tls_state=state).start()
        try:
            cert = os.path.join(state, "tls", "cert.pem")
            key = os.path.join(state, "tls", "key.pem")
            out["cert"] = cert if os.path.exists(cert) else "missing: " + cert
            tls_runs = {"pistatsd": [], "tornado-tls": []}
            ka_runs = {"pistatsd": [], "tornado-tls": []}
            tport = R.free_port()
            env = dict(os.environ, BENCH_WWW=a.www)
            tlog = open(os.path.join(a.logdir, "tornado-tls.log"), "w")  # noqa: SIM115
            tp = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "0",
                    bpy,
                    os.path.join(HERE, "peers_tls.py"),
                    str(tport),
                    cert,
                    key,
                    os.path.join(a.shared, "peers"),
                ],
                stdout=tlog,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                if not R.wait_port(tport, 30):
                    raise RuntimeError("tornado TLS peer did not start (logs/tornado-tls.log)")
                servers = {
                    "pistatsd": (f"https://127.0.0.1:{d.tls_port}", d.proc.pid),
                    "tornado-tls": (f"https://127.0.0.1:{tport}", tp.pid),
                }
                for name, (base, _) in servers.items():
                    out["servers"][name] = check_https(base)
                for _ in range(reps):
                    for name, (base, pid) in servers.items():
                        r = wrk(a, base + SUM_PATH, pid, headers=("Connection: close",))
                        tls_runs[name].append(r)
                        R.log(f"tls handshake {name}: {json.dumps(r)[:160]}")
                        time.sleep(1.0)
                        r = wrk(a, base + SUM_PATH, pid)
                        ka_runs[name].append(r)
                        R.log(f"https keep-alive {name}: {json.dumps(r)[:160]}")
                        time.sleep(1.0)
            finally:
                tp.send_signal(signal.SIGTERM)
                try:
                    tp.wait(15)
                except subprocess.TimeoutExpired:
                    tp.kill()
                    tp.wait(10)
                tlog.close()
        finally:
            out["stop"] = d.stop()
        out["handshake"] = {k: median_of(v) for k, v in tls_runs.items()}
        out["keepalive"] = {k: median_of(v) for k, v in ka_runs.items()}
        out["runs"] = {"handshake": tls_runs, "keepalive": ka_runs}
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return out


def check_https(base):
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(base + SUM_PATH, timeout=10, context=ctx) as r:
            body = r.read()
            return {
                "ok": r.status == 200 and body.strip() == b"Sum: 6",
                "answer": body[:40].decode(),
            }
    except Exception as e:
        return {"ok": False, "answer": repr(e)[:100]}


# -------------------------------------------------------------- dashboards
def dashboards_phase(a, R, py, bpy):
    """Server CPU over `a.dash_seconds`: idle, 1 and 50 /ws/broadcast clients, 1 s interval."""
    import psutil

    secs = a.dash_seconds
    out = {"seconds": secs, "interval": 1.0}
    d = R.Daemon(py, a.www, a.logdir, "pistatsd-dashboards", bcast_interval=1.0).start()
    try:
        proc = psutil.Process(d.proc.pid)
        time.sleep(3.0)
        c0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(secs)
        out["idle"] = {
            "server_cpu": round((sum(proc.cpu_times()[:2]) - c0) / (time.monotonic() - t0) * 100, 2)
        }
        R.log(f"dashboards idle: {out['idle']}")
        for n in (1, 50):
            cmd = [
                "taskset",
                "-c",
                "1",
                bpy,
                os.path.join(a.shared, "loadclient.py"),
                "bcast",
                d.url.replace("http://", "ws://") + "/ws/broadcast",
                "--clients",
                str(n),
                "--duration",
                str(secs),
                "--warmup",
                "2",
                "--interval",
                "1",
                "--ts-key",
                "sent",
                "--pids",
                str(d.proc.pid),
            ]
            try:
                r = R.run(cmd, secs + 120)
                m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
                res = json.loads(m.group(1)) if m else {"error": (r.stderr or r.stdout)[-300:]}
            except subprocess.TimeoutExpired:
                res = {"error": "loadclient timed out"}
            out[f"c{n}"] = res
            R.log(f"dashboards {n} clients: {json.dumps(res)[:200]}")
            time.sleep(1.0)
    finally:
        out["stop"] = d.stop()
    return out


# ------------------------------------------------------------------ rows
def _rate(s, unit="req/s"):
    if not s or "error" in s or not s.get("rate"):
        return "FAIL" if s else "-"
    extra = f", {s['errors']} errors" if s.get("errors") else ""
    return "{:.0f} {} (p99 {:.1f} ms, srv CPU {:.0f}%, wrk CPU {:.0f}%{})".format(
        s["rate"],
        unit,
        s.get("p99_ms") or 0,
        s.get("server_cpu") or 0,
        s.get("client_cpu") or 0,
        extra,
    )


def influx_rows(R, extra):
    x = extra.get("influx")
    name = "influx: GET /sum, reporting on vs off"
    need = ">= 0.97x"
    if not x:
        return [R.Row(name, "-", "-", "-", need, "n/a", "not run")]
    if "error" in x:
        return [R.Row(name, "-", "-", "-", need, "n/a", x["error"])]
    on, off = x["on"], x["off"]
    if not on.get("rate") or not off.get("rate"):
        return [R.Row(name, _rate(on), _rate(off), "-", need, "n/a", "a side failed")]
    r = on["rate"] / off["rate"]
    got = x.get("influx_requests_sum")
    delivered = isinstance(got, (int, float)) and got > 0
    ok = r >= 0.97 and delivered and not on.get("errors") and not off.get("errors")
    note = (
        "per-pair on/off {}; reps on {} / off {} req/s; "
        "influxd has sum(requests_number) = {} in {} points "
        "(wrk counted {} in the measured windows of the 'on' runs, plus warm-ups)".format(
            "/".join(f"{v:.2f}" for v in x.get("pair_ratios", [])) or "-",
            "/".join(f"{v:.0f}" for v in on["reps"]),
            "/".join(f"{v:.0f}" for v in off["reps"]),
            got,
            x.get("influx_points"),
            x.get("wrk_requests_on"),
        )
    )
    if not delivered:
        note += "; NO points delivered " + x.get("influx_query_error", "")
    return [R.Row(name, _rate(on), _rate(off), f"{r:.3f}x", need, "pass" if ok else "MISS", note)]


def tls_rows(R, extra):
    x = extra.get("tls")
    rows = []
    for key, label in (
        ("handshake", "TLS handshakes/s (wrk -c50, Connection: close, GET /sum)"),
        ("keepalive", "HTTPS GET /sum keep-alive (wrk -c50)"),
    ):
        if not x or "error" in x:
            rows.append(
                R.Row(label, "-", "-", "-", "info", "n/a", (x or {}).get("error", "not run"))
            )
            continue
        p, t = x[key].get("pistatsd", {}), x[key].get("tornado-tls", {})
        unit = "hs/s" if key == "handshake" else "req/s"
        ratio = "%.2fx" % (p["rate"] / t["rate"]) if p.get("rate") and t.get("rate") else "-"
        note = "tornado = shared tornado_peer app + ssl_options, same EC P-256 cert"
        if max(p.get("client_cpu") or 0, t.get("client_cpu") or 0) > 90:
            note += (
                "; wrk used >90% of core 1: client-bound (the client's half of a handshake "
                "costs about as much as the server's), compare 'per CPU-s'"
            )
        per_cpu = "-"
        if p.get("rate") and t.get("rate") and p.get("server_cpu") and t.get("server_cpu"):
            per_cpu = "%.2fx" % ((p["rate"] / p["server_cpu"]) / (t["rate"] / t["server_cpu"]))
        rows.append(
            R.Row(
                label + " vs tornado-tls",
                _rate(p, unit),
                _rate(t, unit),
                ratio,
                "info",
                "info",
                note,
                per_cpu,
            )
        )
    return rows


def dashboards_rows(R, extra):
    x = extra.get("dashboards")
    if not x or "error" in x:
        return [
            R.Row("dashboards", "-", "-", "-", "info", "n/a", (x or {}).get("error", "not run"))
        ]
    rows = [
        R.Row(
            f"dashboards: idle ({x['seconds']} s)",
            "srv CPU {:.2f}%".format(x["idle"]["server_cpu"]),
            "-",
            "-",
            "info",
            "info",
            "no clients, sampler 1 s, --broadcast-interval 1",
        )
    ]
    for n in (1, 50):
        s = x.get(f"c{n}") or {}
        if "error" in s:
            rows.append(
                R.Row(
                    f"dashboards: {n} x /ws/broadcast",
                    "FAIL",
                    "-",
                    "-",
                    "info",
                    "n/a",
                    str(s["error"])[:80],
                )
            )
            continue
        rows.append(
            R.Row(
                f"dashboards: {n} x /ws/broadcast (1 s interval)",
                "srv CPU {:.2f}%".format(s.get("server_cpu") or 0),
                "-",
                "-",
                "info",
                "info",
                "{:.1f} msg/s received of {:.0f} expected; lag p50/p99 {} / {} ms".format(
                    s.get("rate", 0), s.get("expected_rate", 0), s.get("p50_ms"), s.get("p99_ms")
                ),
            )
        )
    return rows


def phase_error(fn):
    """Run a phase; an exception becomes {'error': ...} instead of ending the run."""
    try:
        return fn()
    except Exception as e:
        import traceback

        traceback.print_exc()
        return {"error": repr(e)[:300]}


if __name__ == "__main__":
    sys.exit("used by bench/run.py")
