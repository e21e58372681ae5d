"""Group ``footprint`` of bench/run.py: pistatsd beside node_exporter, Glances and Netdata.

Runs the shared ``../shared/bench/footprint.py`` (never copied) several times:

    peers     ``--only node_exporter,glances -w,netdata``, once
    defaults  ``--only pistatsd`` through a generated wrapper script that runs
              the project's ``pistatsd`` command (bench/run.py's daemon_cmd: as
              the README and the systemd unit run it) with footprint.py's own
              options (``--port``, ``--state-dir``; history on, as by default)
    all-on    the same, the wrapper appending
              ``--tls ssl:PORT:interface=127.0.0.1`` (self-signed certificate made
              in the state dir), ``--influx URL --influx-create-db --report-interval
              R`` (a throwaway influxd, started as in the ``influx`` group), ``--history-db
              FILE`` and, when ``pistatsd --help`` lists it, ``--mqtt
              mqtt://127.0.0.1:PORT`` to a throwaway mosquitto

and, with ``--cpu-quota F``, defaults and all-on again with the wrapper first
putting itself into a cgroup limited to F of a core (bench/cpu_quota.py), then
exec-ing the daemon: the "Pi Zero 2-like" rows.  footprint.py builds the pistatsd
command line itself and measures the process tree of what it started; the
wrapper ends in ``exec``, so that tree is the daemon's.

Each footprint.py run gets its own TMPDIR; the monitors' logs are copied to
``DIR/logs/footprint-<run>/`` and the rest is removed.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from cpu_quota import CpuQuota, throttle_note

PEERS = ("node_exporter", "glances -w", "netdata")
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
NETDATA = "/usr/sbin/netdata"
DEFAULT_GLANCES = "/tmp/glances-venv/bin/glances"
PSS_DEFAULTS_MIB = 40.0
PSS_ALL_ON_MIB = 50.0
CPU_VS_NODE_EXPORTER = 1.0
CPU_VS_GLANCES = 0.5


# ------------------------------------------------------------------ peers
def ensure_peers(a, R):
    """The peers' programs: Debian packages via apt, Glances in its own venv."""
    notes = []
    missing = [
        pkg
        for prog, pkg in ((NODE_EXPORTER, "prometheus-node-exporter"), (NETDATA, "netdata"))
        if not os.path.exists(prog)
    ]
    if missing:
        R.log("apt-get install -y " + " ".join(missing))
        r = R.run(["apt-get", "install", "-y", *missing], 1200)
        notes.append("apt-get install {}: exit {}".format(" ".join(missing), r.returncode))
    if not os.path.exists(a.glances):
        venv = os.path.dirname(os.path.dirname(a.glances))
        R.log(f"creating {venv} with glances[web]")
        r = R.run([sys.executable, "-m", "venv", venv], 300)
        if r.returncode == 0:
            r = R.run([os.path.join(venv, "bin", "pip"), "install", "-q", "glances[web]"], 1200)
        notes.append(f"glances[web] into {venv}: exit {r.returncode}")
    return notes


# --------------------------------------------------------------- services
MOSQUITTO_CONF = "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"


class Mosquitto:
    """A throwaway mosquitto on a free loopback port (for --mqtt, when it exists)."""

    def __init__(self, R, logdir):
        self.R, self.logdir = R, logdir

    def __enter__(self):
        if not shutil.which("mosquitto") and not os.path.exists("/usr/sbin/mosquitto"):
            self.R.log("apt-get install -y mosquitto")
            self.R.run(["apt-get", "install", "-y", "mosquitto"], 1200)
        self.dir = tempfile.mkdtemp(prefix="pistatsd-bench-mosquitto-")
        self.port = self.R.free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(MOSQUITTO_CONF.format(port=self.port))
        self.logf = open(os.path.join(self.logdir, "mosquitto.log"), "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", conf],
            stdout=self.logf,
            stderr=subprocess.STDOUT,
        )
        if not self.R.wait_port(self.port, 20):
            self.__exit__()
            raise RuntimeError("mosquitto did not start (see logs/mosquitto.log)")
        self.url = f"mqtt://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def help_text(R, py):
    r = R.run([*R.daemon_cmd(py), "--help"], 60)
    return r.stdout + r.stderr


# ----------------------------------------------------------------- wrapper
def write_wrapper(path, daemon, args, quota=None):
    """A /bin/sh script: (join the quota's cgroup,) exec the daemon's command
    (run.daemon_cmd) with footprint.py's pistatsd options followed by `args`.

    footprint.py calls its --twistd program with ``-n --pidfile= pistatsd``
    first; the ``pistatsd`` command implies them, so they are dropped."""
    lines = [
        "#!/bin/sh",
        "# Made by bench/run.py (group footprint): footprint.py's pistatsd command line,",
        "# plus the options below.",
        'if [ "$1 $2 $3" = "-n --pidfile= pistatsd" ]; then shift 3; fi',
    ]
    if quota is not None:
        lines.append(quota.shell_line())
    lines.append(
        'exec {} "$@" {}'.format(
            " ".join(map(shlex.quote, daemon)), " ".join(map(shlex.quote, args))
        )
    )
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o755)
    return path


class TlsProbe(threading.Thread):
    """One HTTPS GET /alive once the TLS port answers (within footprint.py's 15 s of
    settling, before anything is measured): proof that the TLS listener is up."""

    def __init__(self, port, limit=40.0):
        super().__init__(daemon=True)
        self.port, self.limit, self.result = port, limit, {"ok": False, "answer": "not tried"}

    def run(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        end = time.monotonic() + self.limit
        while time.monotonic() < end:
            try:
                url = f"https://127.0.0.1:{self.port}/alive"
                with urllib.request.urlopen(url, timeout=3, context=ctx) as r:
                    self.result = {"ok": r.status == 200, "answer": f"{r.status} over TLS"}
                    return
            except Exception as e:
                self.result = {"ok": False, "answer": repr(e)[:100]}
                time.sleep(0.5)


# ------------------------------------------------------------------- runs
def run_footprint(a, R, name, only, twistd):
    """footprint.py --only ONLY once; its JSON line, plus where its logs went."""
    tmp = tempfile.mkdtemp(prefix=f"pistatsd-bench-fp-{name}-")
    cmd = [
        sys.executable,
        os.path.join(a.shared, "footprint.py"),
        "--seconds",
        f"{a.fp_seconds:g}",
        "--only",
        ",".join(only),
        "--twistd",
        twistd,
        "--glances",
        a.glances,
    ]
    R.log("$ " + " ".join(map(shlex.quote, cmd)))
    limit = len(only) * (2 * a.fp_seconds + 150)
    try:
        r = R.run(cmd, limit, env=dict(os.environ, TMPDIR=tmp))
        out = r.stdout
        err = r.stderr
    except subprocess.TimeoutExpired:
        out, err = "", f"footprint.py timed out after {limit:.0f} s"
    logs = os.path.join(a.logdir, f"footprint-{name}")
    os.makedirs(logs, exist_ok=True)
    for f in glob.glob(os.path.join(tmp, "footprint-*", "*.log")):
        shutil.copy(f, logs)
    for f in glob.glob(os.path.join(tmp, "footprint-*", "netdata", "log", "*.log")):
        shutil.copy(f, os.path.join(logs, "netdata-" + os.path.basename(f)))
    with open(os.path.join(logs, "footprint.txt"), "w") as f:
        f.write("$ {}\n{}\n{}".format(" ".join(map(shlex.quote, cmd)), out, err))
    history = glob.glob(os.path.join(tmp, "footprint-*", "**", "*.sqlite3"), recursive=True)
    sizes = {os.path.basename(p): os.path.getsize(p) for p in history}
    shutil.rmtree(tmp, ignore_errors=True)
    print(out, flush=True)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": "no JSON line from footprint.py: " + (err or out)[-200:]}
    res = json.loads(lines[-1])
    res["_history_files"] = sizes
    return res


def pistatsd_run(a, R, py, name, features, quota_fraction=None):
    """One pistatsd footprint: `features` 'defaults' or 'all'; under a cgroup quota
    when quota_fraction is given."""
    daemon = R.daemon_cmd(py)
    out = {"features": features}
    with contextlib.ExitStack() as stack:
        quota = None
        if quota_fraction:
            quota = stack.enter_context(CpuQuota(quota_fraction, name))
            out["quota"] = quota.describe()
        args, probe = [], None
        if features == "all":
            state = stack.enter_context(tempfile.TemporaryDirectory(prefix="pistatsd-bench-hist-"))
            import groups

            influx = stack.enter_context(groups.InfluxdHelper(py, a.logdir))
            tls_port = R.free_port()
            args += [
                "--tls",
                f"ssl:{tls_port}:interface=127.0.0.1",
                "--influx",
                influx.url,
                "--influx-create-db",
                "--report-interval",
                f"{a.fp_report_interval:g}",
                "--history-db",
                os.path.join(state, "history.sqlite3"),
            ]
            if "--mqtt" in help_text(R, py):
                mq = stack.enter_context(Mosquitto(R, a.logdir))
                args += ["--mqtt", mq.url]
                out["mqtt"] = mq.url
            else:
                out["mqtt"] = "MQTT not available (no --mqtt in pistatsd --help)"
            probe = TlsProbe(tls_port)
            probe.start()
        exe = write_wrapper(os.path.join(a.results, f"pistatsd-{name}.sh"), daemon, args, quota)
        out["wrapper"] = exe
        out["args"] = " ".join(args)
        res = run_footprint(a, R, name, ["pistatsd"], exe)
        out.update(res.get("pistatsd") or {"error": res.get("error", "no pistatsd row")})
        if quota is not None:
            out["cgroup"] = quota.stat()
        if features == "all":
            probe.join(5)
            out["tls_check"] = probe.result
            hist = os.path.join(state, "history.sqlite3")
            out["history_bytes"] = os.path.getsize(hist) if os.path.exists(hist) else 0
            try:
                q = influx.query("SELECT count(requests_number) FROM requests")
                s = q["results"][0].get("series") or []
                out["influx_points"] = s[0]["values"][0][1] if s else 0
            except Exception as e:
                out["influx_points"] = 0
                out["influx_error"] = repr(e)[:200]
        else:
            out["history_files"] = res.get("_history_files", {})
    return out


def footprint_phase(a, R, py):
    """Peers once, then pistatsd with defaults and with every feature on (and both
    again under --cpu-quota); footprint.py runs its monitors in a temp dir, so
    every path handed to it is absolute."""
    py = os.path.abspath(py)
    out = {"seconds": a.fp_seconds, "notes": ensure_peers(a, R)}
    res = run_footprint(a, R, "peers", list(PEERS), R.twistd_cmd(py)[0])
    out["peers"] = {k: v for k, v in res.items() if not k.startswith("_")}
    out["defaults"] = pistatsd_run(a, R, py, "defaults", "defaults")
    out["all"] = pistatsd_run(a, R, py, "all", "all")
    if a.cpu_quota:
        out["quota"] = a.cpu_quota
        out["quota_defaults"] = pistatsd_run(a, R, py, "quota-defaults", "defaults", a.cpu_quota)
        out["quota_all"] = pistatsd_run(a, R, py, "quota-all", "all", a.cpu_quota)
    return out


# ------------------------------------------------------------------- rows
def _ok(r):
    return bool(r) and "error" not in r and isinstance(r.get("watched_cpu_pct"), (int, float))


def _cpu(r):
    if not _ok(r):
        return (r or {}).get("error", "not run")
    return "{:.2f}% watched (idle {:.2f}%)".format(r["watched_cpu_pct"], r["idle_cpu_pct"])


def _all_on_label(x):
    mqtt = x.get("mqtt", "")
    return "TLS + InfluxDB + history" + (" + MQTT" if mqtt.startswith("mqtt://") else "")


def _all_on_note(x):
    bits = [
        "TLS GET /alive: {}".format((x.get("tls_check") or {}).get("answer", "-")),
        "influxd holds {} requests points (report every {})".format(
            x.get("influx_points", "?"), _report_interval(x)
        ),
        "history db {} bytes at exit".format(x.get("history_bytes", "?")),
        x.get("mqtt", ""),
    ]
    return "; ".join(b for b in bits if b)


def _report_interval(x):
    args = x.get("args", "").split()
    return args[args.index("--report-interval") + 1] + " s" if "--report-interval" in args else "?"


def footprint_rows(R, extra):
    x = extra.get("footprint")
    if not x or "error" in x:
        return [R.Row("footprint", "-", "-", "-", "-", "n/a", (x or {}).get("error", "not run"))]
    peers = x.get("peers", {})
    mine, allon = x.get("defaults", {}), x.get("all", {})
    secs = x.get("seconds")
    watch = f"{secs:g} s per phase; watched = 1 /ws/broadcast client at 1 s (pistatsd), 1 poll/s"
    rows = []
    for peer, factor in (("node_exporter", CPU_VS_NODE_EXPORTER), ("glances -w", CPU_VS_GLANCES)):
        rows.append(cpu_row(R, "pistatsd defaults", mine, peer, peers.get(peer), factor, watch))
    rows.append(cpu_row(R, "pistatsd defaults", mine, "netdata", peers.get("netdata"), None, watch))
    rows.append(
        cpu_row(
            R,
            "pistatsd " + _all_on_label(allon),
            allon,
            "node_exporter",
            peers.get("node_exporter"),
            None,
            _all_on_note(allon),
        )
    )
    ref = ", ".join(
        "{} {}".format(
            p,
            f"{peers[p]['idle_pss_mib']:.1f} MiB"
            if _ok(peers.get(p))
            else (peers.get(p) or {}).get("error", "not run"),
        )
        for p in PEERS
    )
    rows.append(
        pss_row(
            R,
            "pistatsd defaults",
            mine,
            PSS_DEFAULTS_MIB,
            ref,
            "history on by default: {}".format(
                ", ".join(
                    f"{k} {v} bytes at exit" for k, v in mine.get("history_files", {}).items()
                )
                or "no history database found"
            ),
        )
    )
    rows.append(
        pss_row(
            R, "pistatsd " + _all_on_label(allon), allon, PSS_ALL_ON_MIB, ref, _all_on_note(allon)
        )
    )
    if x.get("quota"):
        rows += quota_footprint_rows(R, x)
    return rows


def cpu_row(R, who, mine, peer, p, factor, note):
    name = f"footprint: {who} CPU, watched, vs {peer} (1 poll/s)"
    need = "info" if factor is None else f"<= {factor:.2f}x"
    if not _ok(mine) or not _ok(p):
        return R.Row(name, _cpu(mine), _cpu(p), "-", need, "n/a", note)
    if p["watched_cpu_pct"] <= 0:
        return R.Row(
            name, _cpu(mine), _cpu(p), "-", need, "n/a", f"{peer} used no measurable CPU; " + note
        )
    r = mine["watched_cpu_pct"] / p["watched_cpu_pct"]
    result = "info" if factor is None else ("pass" if r <= factor else "MISS")
    msgs = mine.get("watch_msgs")
    if msgs is not None and "pistatsd" in who:
        note = f"{msgs} broadcast messages received; " + note
    return R.Row(name, _cpu(mine), _cpu(p), f"{r:.2f}x", need, result, note)


def pss_row(R, who, mine, limit, ref, note):
    name = f"footprint: {who} idle PSS"
    need = f"<= {limit:g} MiB"
    if not _ok(mine):
        return R.Row(name, (mine or {}).get("error", "not run"), ref, "-", need, "n/a", note)
    fig = "{:.1f} MiB (watched {:.1f} MiB, {} process)".format(
        mine["idle_pss_mib"], mine["watched_pss_mib"], mine.get("processes", "?")
    )
    ok = mine["idle_pss_mib"] <= limit
    return R.Row(name, fig, ref, "-", need, "pass" if ok else "MISS", note)


def quota_footprint_rows(R, x):
    f = x["quota"]
    rows = []
    for key, base in (("quota_defaults", "defaults"), ("quota_all", "all")):
        q, full = x.get(key, {}), x.get(base, {})
        who = "defaults" if base == "defaults" else _all_on_label(q)
        name = f"Pi Zero 2-like ({f:g} core): footprint, pistatsd {who}"
        if not _ok(q):
            rows.append(
                R.Row(
                    name,
                    (q or {}).get("error", "not run"),
                    _cpu(full),
                    "-",
                    "info",
                    "n/a",
                    q.get("quota", ""),
                )
            )
            continue
        fig = "watched {:.2f}% of this core = {:.1f}% of the quota (idle {:.1f}%); {}".format(
            q["watched_cpu_pct"],
            q["watched_cpu_pct"] / f,
            q["idle_cpu_pct"] / f,
            f"PSS {q['idle_pss_mib']:.1f} MiB",
        )
        note = "{}; {}; {} broadcast messages received in {:g}+3 s".format(
            q.get("quota", ""),
            throttle_note(q.get("cgroup") or {}),
            q.get("watch_msgs"),
            x["seconds"],
        )
        if base == "all":
            note += "; " + _all_on_note(q)
        ratio = "-"
        if _ok(full) and full["watched_cpu_pct"] > 0:
            ratio = "%.2fx" % (q["watched_cpu_pct"] / full["watched_cpu_pct"])
        rows.append(R.Row(name, fig, "unlimited: " + _cpu(full), ratio, "info", "info", note))
    return rows


# ---------------------------------------------------------- http under quota
QUOTA_HTTP = ("GET /sum", "POST /sum", "GET /stats", "GET /small.html", "GET /big.bin")


def quota_http_rows(R, mine, extra):
    """The shared http scenarios against pistatsd in the quota's cgroup, next to the
    unlimited pistatsd of the same run."""
    x = extra.get("quota_http")
    if not x:
        return []
    f = x.get("fraction")
    if "error" in x:
        return [
            R.Row(f"Pi Zero 2-like ({f:g} core): http", "-", "-", "-", "info", "n/a", x["error"])
        ]
    full = mine  # the unlimited pistatsd of the same run
    rows = []
    for sc in QUOTA_HTTP:
        s, u = (x.get("summary") or {}).get(sc), full.get(sc)
        name = f"Pi Zero 2-like ({f:g} core): {sc}"
        if not R.usable(s):
            rows.append(R.Row(name, R.cell(s), R.cell(u), "-", "info", "n/a", R.problem(s)))
            continue
        ratio = "%.2fx" % (s["rate"] / u["rate"]) if R.usable(u) else "-"
        per_cpu = "-"
        if R.usable(u) and s.get("server_cpu") and u.get("server_cpu"):
            per_cpu = "%.2fx" % ((s["rate"] / s["server_cpu"]) / (u["rate"] / u["server_cpu"]))
        note = "srv CPU {:.0f}% of this core; {}".format(
            s.get("server_cpu") or 0, x.get("quota", "")
        )
        if x.get("cgroup"):
            note += "; " + throttle_note(x["cgroup"])
        rows.append(
            R.Row(name, R.cell(s), "unlimited " + R.cell(u), ratio, "info", "info", note, per_cpu)
        )
    return rows
